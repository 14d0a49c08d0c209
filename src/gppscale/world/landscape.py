"""Terrain, land cover and the static canopy of the synthetic world.

Everything here is a function of position in the world's UTM CRS (metres), built from
:class:`~gppscale.world.fields.FourierField` s, so the 30 m truth grid and the EPSG:4326 products (DEM,
GLC_FCS30 tiles) sample one and the same landscape.

Land cover uses GLC_FCS30 codes: tens digit 5 EBF, 6 DBF, 7 ENF, 8 DNF, 9 MF; units digit 1 open
(canopy cover 15-40 %), 2 closed (> 40 %). Non-forest: 10 rainfed cropland, 120 shrubland,
130 grassland, 190 impervious, 210 water. The place follows the paper's study area: larch (DNF) high up,
Scots pine and spruce (ENF) on mid slopes, birch (DBF) lower, mixed forest where they meet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gppscale.world.fields import FourierField, seeded_rng

__all__ = [
    "CLASS_PARAMS",
    "FOREST_TYPE_OF_TENS",
    "LAND_COVER_CODES",
    "ClassParams",
    "Landscape",
    "Points",
    "forest_type_name",
]

F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]

FOREST_TYPE_OF_TENS = {5: "EBF", 6: "DBF", 7: "ENF", 8: "DNF", 9: "MF"}


@dataclass(frozen=True)
class ClassParams:
    """Physiology of one land-cover kind.

    Attributes:
        eps_max: Maximum light-use efficiency, gC MJ-1 (MOD17 structure).
        tmin_min: Minimum daily temperature (degC) at which the temperature scalar is 0.
        tmin_max: Minimum daily temperature (degC) above which it is 1.
        vpd_min: VPD (hPa) below which the VPD scalar is 1.
        vpd_max: VPD (hPa) at which it reaches 0.
        npp_ratio: NPP / GPP.
        lai_max: Peak leaf area index of a closed stand.
        deciduous: Leaves off in winter.
        spectrum: Leaf/canopy reflectance, bands coastal, blue, green, red, nir08, swir16, swir22.
    """

    eps_max: float
    tmin_min: float
    tmin_max: float
    vpd_min: float
    vpd_max: float
    npp_ratio: float
    lai_max: float
    deciduous: bool
    spectrum: tuple[float, float, float, float, float, float, float]


_CONIFER = (0.025, 0.028, 0.055, 0.030, 0.27, 0.12, 0.055)
_BROADLEAF = (0.028, 0.033, 0.080, 0.038, 0.42, 0.19, 0.080)
_LARCH = (0.027, 0.030, 0.070, 0.034, 0.36, 0.16, 0.070)
_HERB = (0.035, 0.040, 0.090, 0.050, 0.36, 0.22, 0.110)

CLASS_PARAMS: dict[str, ClassParams] = {
    "ENF": ClassParams(1.211, -8.0, 8.31, 6.5, 46.0, 0.45, 4.5, False, _CONIFER),
    "DNF": ClassParams(1.227, -8.0, 9.09, 6.5, 41.0, 0.50, 4.0, True, _LARCH),
    "DBF": ClassParams(1.526, -6.0, 9.94, 6.5, 39.0, 0.52, 4.5, True, _BROADLEAF),
    "MF": ClassParams(1.226, -7.0, 9.50, 6.5, 44.0, 0.48, 4.5, True, _BROADLEAF),
    "EBF": ClassParams(1.259, -8.0, 9.09, 8.0, 31.0, 0.48, 5.0, False, _BROADLEAF),
    "crop": ClassParams(1.044, -8.0, 12.02, 6.5, 43.0, 0.50, 3.0, True, _HERB),
    "grass": ClassParams(0.860, -8.0, 12.02, 6.5, 43.0, 0.55, 1.8, True, _HERB),
    "shrub": ClassParams(0.774, -8.0, 8.61, 6.5, 44.0, 0.50, 1.5, True, _HERB),
    "bare": ClassParams(0.0, -8.0, 12.0, 6.5, 43.0, 0.50, 0.0, True, _HERB),
}

_CODE_KIND = {10: "crop", 120: "shrub", 130: "grass", 190: "bare", 210: "bare"}
#: Every land-cover code this world writes (forest open/closed of each type, then the others).
LAND_COVER_CODES: tuple[int, ...] = (*(t * 10 + u for t in FOREST_TYPE_OF_TENS for u in (1, 2)), *_CODE_KIND)


def forest_type_name(code: int) -> str:
    """Kind of a GLC_FCS30 code used in this world: forest type (ENF, ...) or crop/grass/shrub/bare."""
    if 51 <= code <= 92:
        return FOREST_TYPE_OF_TENS[code // 10]
    return _CODE_KIND[code]


@dataclass(frozen=True)
class Points:
    """Where to evaluate the landscape: a regular grid (``xs`` columns x ``ys`` rows) or scattered points."""

    x: F64
    y: F64
    grid: bool

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the arrays this evaluates to."""
        return (self.y.size, self.x.size) if self.grid else self.x.shape

    def eval(self, f: FourierField) -> F64:
        """A field at these points."""
        return f.on_grid(self.x, self.y) if self.grid else f.at(self.x, self.y)


class Landscape:
    """Terrain, land cover and static canopy traits of one world (seeded)."""

    def __init__(self, seed: int) -> None:
        def mk(name: str, length_m: float) -> FourierField:
            return FourierField.make(seeded_rng(seed, "landscape", name), length_m)

        self._z = (mk("z-large", 9000.0), mk("z-mid", 2500.0), mk("z-small", 500.0))
        self._forest = mk("forest", 1800.0)
        self._types = (mk("dnf", 2000.0), mk("enf", 2000.0), mk("dbf", 2000.0))
        self._cover = mk("cover", 900.0)
        self._wet = mk("wet", 700.0)
        self._town = mk("town", 600.0)
        self._crop = mk("crop", 1500.0)
        self._vigor = mk("vigor", 1200.0)
        self._efficiency = mk("efficiency", 800.0)
        self._phenology = mk("phenology", 3000.0)

    def elevation(self, p: Points) -> F64:
        """Elevation, metres above sea level (roughly 900-2000 m)."""
        large, mid, small = self._z
        return 1450.0 + 300.0 * p.eval(large) + 110.0 * p.eval(mid) + 20.0 * p.eval(small)

    def regional_elevation(self, p: Points) -> F64:
        """The smooth orography a ~1 km weather model sees, metres."""
        return 1450.0 + 300.0 * p.eval(self._z[0])

    def land_cover(self, p: Points, z: F64 | None = None) -> U8:
        """GLC_FCS30 land-cover codes."""
        z = self.elevation(p) if z is None else z
        relief = z - self.regional_elevation(p)  # local relief: ridges > 0, valleys < 0
        forest = p.eval(self._forest) + 0.0015 * (z - 1450.0) + 0.004 * relief > -0.35
        s_dnf = 1.2 * p.eval(self._types[0]) + relief / 90.0 + (z - 1500.0) / 700.0
        s_enf = 1.2 * p.eval(self._types[1]) + 0.2
        s_dbf = 1.2 * p.eval(self._types[2]) - relief / 110.0 - (z - 1500.0) / 900.0
        scores = np.stack([s_dnf, s_enf, s_dbf])
        order = np.sort(scores, axis=0)
        tens = np.array([8, 7, 6])[np.argmax(scores, axis=0)]
        tens = np.where(order[-1] - order[-2] < 0.25, 9, tens)
        closed = p.eval(self._cover) > -0.6
        forest_code = tens * 10 + np.where(closed, 2, 1)
        crop = p.eval(self._crop)
        other = np.where(crop > 0.0, np.where(z < 1400.0, 10, 130), np.where(crop < -1.2, 120, 130))
        code = np.where(forest, forest_code, other)
        code = np.where((p.eval(self._town) > 2.3) & (z < 1350.0), 190, code)
        code = np.where((p.eval(self._wet) < -2.0) & (z < 1400.0), 210, code)
        return code.astype(np.uint8)

    def canopy_cover(self, p: Points, code: U8) -> F64:
        """Fraction of the ground under green canopy at peak season (0-1)."""
        c = p.eval(self._cover)
        closed = np.clip(0.72 + 0.12 * c, 0.45, 0.95)
        open_ = np.clip(0.30 + 0.06 * c, 0.16, 0.40)
        forest = (code >= 51) & (code <= 92)
        herb = np.isin(code, (10, 120, 130))
        out = np.where(forest, np.where(code % 10 == 2, closed, open_), np.where(herb, 0.85, 0.0))
        return np.asarray(out, dtype=np.float64)

    def vigor(self, p: Points) -> F64:
        """Multiplier of peak LAI (site fertility seen by the canopy, hence by Landsat)."""
        return np.exp(0.15 * p.eval(self._vigor))

    def efficiency(self, p: Points) -> F64:
        """Multiplier of light-use efficiency that no reflectance reveals (stand age, nutrients)."""
        return np.exp(0.10 * p.eval(self._efficiency))

    def season(self, p: Points, z: F64) -> tuple[F64, F64]:
        """Start and end of the growing season, day of year (later start, earlier end up high)."""
        shift = 6.0 * p.eval(self._phenology)
        sos = 128.0 + 0.03 * (z - 1450.0) + shift
        eos = 278.0 - 0.025 * (z - 1450.0) + 0.5 * shift
        return sos, eos


def slope_aspect(z: F64, res_m: float) -> tuple[F64, F64]:
    """Slope (radians) and aspect (radians clockwise from north, downslope direction) of a DEM grid."""
    dz_dy_rows, dz_dx = np.gradient(z, res_m)
    dz_dy = -dz_dy_rows  # rows run south
    slope = np.arctan(np.hypot(dz_dx, dz_dy))
    aspect = np.mod(np.arctan2(-dz_dx, -dz_dy), 2.0 * np.pi)
    return slope, aspect
