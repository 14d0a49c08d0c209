"""Landsat 8 Collection 2 Level-2 scenes of the synthetic world.

Two neighbouring WRS-2 paths image the world 7 days apart, each every 16 days; each path's scene covers
part of the world, so the overlap is seen twice per cycle and the rest once, and pixels beyond a scene's
(tilted) edge are fill. Surface reflectance comes from the same canopy state as the truth:

    rho = fc * rho_leaf(kind) + (1 - fc) * rho_background,   fc = 1 - exp(-0.5 LAI)

with a background of litter or soil mixed with visible snow, plus a smooth per-scene haze residual and
sensor noise. Clouds (thick and thin), cirrus, dilated-cloud rings, shadows displaced away from the sun by
the cloud height, winter snow and scene-edge fill are drawn per scene and flagged in QA_PIXEL exactly as
USGS does (bit 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 shadow, 5 snow, 6 clear = neither cloud nor
dilated cloud, 7 water; bits 8-15 confidence pairs for cloud, shadow, snow, cirrus: 1 low, 3 high).
Reflectance is stored as ``DN = (rho + 0.2) / 2.75e-5`` in uint16 with 0 as nodata.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from gppscale.world.climate import day_of_year, sun_elevation_deg
from gppscale.world.fields import FourierField, seeded_rng
from gppscale.world.grids import Grid
from gppscale.world.landscape import CLASS_PARAMS
from gppscale.world.truth import KINDS, Canopy

__all__ = [
    "BANDS",
    "QA",
    "SR_OFFSET",
    "SR_SCALE",
    "Scene",
    "SceneMasks",
    "clean_reflectance",
    "scene_schedule",
    "scene_sun_elevation_deg",
    "simulate_scene",
]

F32 = npt.NDArray[np.float32]
Bool = npt.NDArray[np.bool_]

BANDS = ("coastal", "blue", "green", "red", "nir08", "swir16", "swir22")
CENTER_WAVELENGTH_UM = (0.44, 0.48, 0.56, 0.655, 0.865, 1.61, 2.2)
SR_SCALE = 2.75e-5
SR_OFFSET = -0.2


SUN_AZIMUTH_DEG = 150.0  # about 10:50 local solar time at mid-northern latitudes
OVERPASS_HOUR_ANGLE_DEG = -17.5  # 10:50 local solar time


class QA:
    """QA_PIXEL bit positions (Landsat Collection 2)."""

    FILL = 0
    DILATED_CLOUD = 1
    CIRRUS = 2
    CLOUD = 3
    SHADOW = 4
    SNOW = 5
    CLEAR = 6
    WATER = 7
    CLOUD_CONF = 8
    SHADOW_CONF = 10
    SNOW_CONF = 12
    CIRRUS_CONF = 14


_SOIL = np.array([0.07, 0.08, 0.11, 0.14, 0.21, 0.29, 0.24])
_LITTER = np.array([0.045, 0.055, 0.085, 0.11, 0.24, 0.27, 0.17])
_SNOW = np.array([0.88, 0.87, 0.85, 0.82, 0.72, 0.09, 0.06])
_WATER = np.array([0.055, 0.05, 0.05, 0.03, 0.02, 0.01, 0.005])
_URBAN = np.array([0.11, 0.12, 0.14, 0.16, 0.22, 0.26, 0.22])
_CLOUD = np.array([0.55, 0.56, 0.57, 0.58, 0.58, 0.42, 0.30])
_HAZE = np.array([1.5, 1.2, 0.9, 0.7, 0.4, 0.15, 0.08])


@dataclass(frozen=True)
class Scene:
    """One acquisition.

    Attributes:
        path: WRS-2 path (the higher path lies west).
        row: WRS-2 row.
        date: Acquisition day.
        edge_frac: Where the scene edge crosses the world's middle row, as a fraction of its width.
        covers_west: Whether the scene covers the part west of its edge.
    """

    path: int
    row: int
    date: np.datetime64
    edge_frac: float
    covers_west: bool

    @property
    def item_id(self) -> str:
        """A Collection 2 style product id."""
        d = str(self.date).replace("-", "")
        return f"LC08_L2SP_{self.path:03d}{self.row:03d}_{d}_02_T1"

    @property
    def doy(self) -> int:
        """Day of year."""
        return day_of_year(self.date)


def scene_schedule(years: tuple[int, ...]) -> list[Scene]:
    """Acquisitions of paths 124 (west) and 123 (east, 7 days later) every 16 days within ``years``."""
    ref = np.datetime64("2013-04-07", "D")  # an arbitrary path-124 date; the 16-day cycle runs on
    first = np.datetime64(f"{years[0]}-01-01", "D")
    last = np.datetime64(f"{years[-1] + 1}-01-01", "D")
    k0 = int(np.floor((first - ref).astype(int) / 16))
    scenes = []
    for k in range(k0, k0 + int((last - first).astype(int)) // 16 + 3):
        for path, lag, edge, west in ((124, 0, 0.72, True), (123, 7, 0.30, False)):
            date = ref + np.timedelta64(16 * k + lag, "D")
            if first <= date < last and int(str(date)[:4]) in years:
                scenes.append(Scene(path, 31, date, edge, west))
    return sorted(scenes, key=lambda s: (s.date, s.path))


def scene_sun_elevation_deg(acq: Scene, grid: Grid) -> float:
    """Solar elevation at the overpass over the centre of ``grid``."""
    _, s, _, n = grid.bounds_lonlat()
    return sun_elevation_deg(acq.doy, (s + n) / 2, OVERPASS_HOUR_ANGLE_DEG)


@dataclass(frozen=True)
class SceneMasks:
    """Truth of what a scene's QA_PIXEL should say."""

    fill: Bool
    cloud: Bool
    dilated: Bool
    cirrus: Bool
    shadow: Bool
    snow: Bool
    water: Bool


def footprint(grid: Grid, scene: Scene) -> Bool:
    """Pixels inside the scene; its edge runs about 12 degrees east of north, like WRS-2 scenes."""
    rows, cols = np.mgrid[0 : grid.height, 0 : grid.width]
    edge_col = scene.edge_frac * grid.width + np.tan(np.radians(12.0)) * (grid.height / 2 - rows)
    inside = cols < edge_col if scene.covers_west else cols >= edge_col
    return np.asarray(inside)


def background(canopy: Canopy) -> npt.NDArray[np.float64]:
    """Background reflectance per pixel and band (7, H, W): litter under forest, soil elsewhere."""
    forest = (canopy.code >= 51) & (canopy.code <= 92)
    bg = np.where(forest[None], _LITTER[:, None, None], _SOIL[:, None, None])
    bg = np.where((canopy.code == 190)[None], _URBAN[:, None, None], bg)
    return np.asarray(bg)


def clean_reflectance(canopy: Canopy, doy: float, snow_visible: F32 | None = None) -> F32:
    """Noise-free, cloud-free surface reflectance (7, H, W) on day ``doy``."""
    spectra = np.array([CLASS_PARAMS[k].spectrum for k in KINDS])  # (kinds, 7)
    leaf = np.moveaxis(spectra[canopy.kind], -1, 0)  # (7, H, W)
    fc = 1.0 - np.exp(-0.5 * canopy.lai(doy))
    bg = background(canopy)
    if snow_visible is not None:
        bg = bg * (1.0 - snow_visible) + _SNOW[:, None, None] * snow_visible
    rho = fc * leaf + (1.0 - fc) * bg
    rho = np.where((canopy.code == 210)[None], _WATER[:, None, None], rho)
    return rho.astype(np.float32)


def simulate_scene(
    canopy: Canopy,
    grid: Grid,
    acq: Scene,
    tmean: F32,
    snow_event: bool,
    seed: int,
) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint16], SceneMasks, float]:
    """Digital numbers (7, H, W), QA_PIXEL (H, W), the masks behind them and the cloud cover (%)."""
    rng = seeded_rng(seed, "landsat", acq.item_id)

    def field(name: str, length_m: float, on: Grid = grid) -> F32:
        f = FourierField.make(seeded_rng(seed, "landsat", acq.item_id, name), length_m, 64)
        return f.on_grid(on.xs, on.ys).astype(np.float32)

    inside = footprint(grid, acq)
    water = canopy.code == 210
    # Snow on the ground where it is cold after snowfall; under evergreen crowns it is partly hidden.
    on_ground = (
        snow_event * np.clip((-tmean + 1.0) / 4.0, 0.0, 1.0) * np.clip(0.7 + 0.3 * field("snow", 2000), 0, 1)
    )
    visible = (on_ground * (1.0 - 0.7 * canopy.evergreen * (1.0 - np.exp(-0.5 * canopy.lai_peak)))).astype(
        np.float32
    )
    visible = np.where(water, 0.0, visible).astype(np.float32)
    rho = clean_reflectance(canopy, acq.doy, visible)
    rho = rho + 0.012 * field("haze", 5000)[None] * _HAZE[:, None, None].astype(np.float32)
    rho = rho + rng.normal(0.0, 0.004, rho.shape).astype(np.float32)

    # Clouds: a smooth field thresholded at the scene's cloud fraction; optical thickness grows inward.
    summer = 0.5 + 0.5 * np.cos(2.0 * np.pi * (acq.doy - 200) / 365.25)
    frac = float(np.clip(rng.beta(0.55, 1.0) * (0.7 + 0.5 * summer), 0.0, 0.97))
    # Shadows fall away from the sun (about 10:50 local, sun in the south-east), kilometres away in
    # winter: clouds are drawn on a grid padded by the shift, so shadows of clouds beyond the edge show.
    height_m = rng.uniform(1200.0, 3000.0)
    zenith = np.radians(90.0 - scene_sun_elevation_deg(acq, grid))
    azimuth = np.radians(SUN_AZIMUTH_DEG)
    dx = -height_m * np.tan(zenith) * np.sin(azimuth) / grid.res_x
    dy_rows = height_m * np.tan(zenith) * np.cos(azimuth) / grid.res_y
    pad = int(np.ceil(max(abs(dx), abs(dy_rows)))) + 2
    core = (slice(pad, pad + grid.height), slice(pad, pad + grid.width))
    cf_big = 0.8 * field("cloud", 1500, grid.pad(pad)) + 0.45 * field("cloud-detail", 300, grid.pad(pad))
    cf = cf_big[core]
    thr = float(np.quantile(cf[inside], 1.0 - frac)) if frac > 0.005 and inside.any() else np.inf
    cloud = cf > thr
    alpha = np.where(cloud, np.clip(0.35 + 0.65 * (cf - thr) / 0.5, 0.0, 1.0), 0.0).astype(np.float32)
    cirrus_field = field("cirrus", 3000)
    cirrus = cirrus_field > float(np.quantile(cirrus_field, 1.0 - rng.uniform(0.0, 0.12)))
    dilated = ndimage.binary_dilation(cloud, iterations=3) & ~cloud
    shifted = ndimage.shift((cf_big > thr).astype(np.uint8), (dy_rows, dx), order=0, mode="constant") > 0
    shadow = shifted[core] & ~cloud
    snow = (visible > 0.4) & ~cloud

    rho = np.where(shadow[None], rho * 0.3 + 0.004, rho)
    rho = np.where(
        cirrus[None],
        rho + np.array([0.03, 0.03, 0.03, 0.03, 0.03, 0.02, 0.01], np.float32)[:, None, None],
        rho,
    )
    rho = (1.0 - alpha) * rho + alpha * _CLOUD[:, None, None].astype(np.float32)

    dn = np.clip(np.round((rho - SR_OFFSET) / SR_SCALE), 1, 65535).astype(np.uint16)
    fill = ~inside
    dn[:, fill] = 0
    masks = SceneMasks(
        fill,
        cloud & inside,
        dilated & inside,
        cirrus & inside,
        shadow & inside,
        snow & inside,
        water & inside,
    )
    cover = 100.0 * float(cloud[inside].mean()) if inside.any() else 100.0
    return dn, qa_pixel(masks), masks, round(cover, 2)


def qa_pixel(m: SceneMasks) -> npt.NDArray[np.uint16]:
    """Encode masks into QA_PIXEL the way USGS does (fill pixels carry only bit 0)."""

    def bit(mask: Bool, pos: int) -> npt.NDArray[np.uint32]:
        return mask.astype(np.uint32) << np.uint32(pos)

    def conf(mask: Bool, pos: int) -> npt.NDArray[np.uint32]:
        return np.where(mask, 3, 1).astype(np.uint32) << np.uint32(pos)

    clear = ~(m.cloud | m.dilated)
    qa = (
        bit(m.dilated, QA.DILATED_CLOUD)
        | bit(m.cirrus, QA.CIRRUS)
        | bit(m.cloud, QA.CLOUD)
        | bit(m.shadow, QA.SHADOW)
        | bit(m.snow, QA.SNOW)
        | bit(clear, QA.CLEAR)
        | bit(m.water & ~m.cloud, QA.WATER)
        | conf(m.cloud, QA.CLOUD_CONF)
        | conf(m.shadow, QA.SHADOW_CONF)
        | conf(m.snow, QA.SNOW_CONF)
        | conf(m.cirrus, QA.CIRRUS_CONF)
    )
    return np.where(m.fill, 1, qa).astype(np.uint16)
