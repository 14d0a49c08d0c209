"""Assemble and write a whole synthetic world (``gppscale world``).

The world is written into a hidden sibling folder and moved into place only when complete, so an
interrupted run never leaves a half world behind and an earlier world survives a failed rebuild. Memory
stays bounded by a few full-grid arrays: weather, truth and scenes are produced one 8-day window at a
time, and truth quarters are written to Zarr as soon as they are complete.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gppscale.errors import WorldError
from gppscale.world import layout
from gppscale.world.climate import (
    Climate,
    glass_windows,
    quarter_day_overlap,
    quarter_of,
    terrain_radiation_factor,
)
from gppscale.world.coarse import CoarseOperator
from gppscale.world.fields import FourierField, seeded_rng
from gppscale.world.grids import (
    lonlat_grid,
    modis_cover_grid,
    modis_tile_of_lonlat,
    snapped_utm_grid,
    utm_epsg_for_lonlat,
)
from gppscale.world.landsat import scene_schedule
from gppscale.world.landscape import Landscape, Points, slope_aspect
from gppscale.world.presets import WorldPreset, resolve_preset
from gppscale.world.products import ProductWriter
from gppscale.world.sites import choose_plots, choose_towers, window_mean_3x3
from gppscale.world.truth import Canopy, gpp_rate, window_weather
from gppscale.world.truthstore import TruthStore

__all__ = ["make_world"]

F32 = npt.NDArray[np.float32]
Progress = Callable[[str], None]


@dataclass
class _Quarter:
    """Running sums of one quarter; at most two quarters are open at once (bounded memory)."""

    gpp: F32
    npp: F32
    clean: F32
    n_scenes: int = 0

    @staticmethod
    def empty(shape: tuple[int, int]) -> _Quarter:
        return _Quarter(
            np.zeros(shape, np.float32), np.zeros(shape, np.float32), np.zeros((7, *shape), np.float32)
        )


def make_world(preset: str, out_dir: Path, *, seed: int = 0, progress: Progress | None = None) -> Path:
    """Generate the world ``preset`` with ``seed`` into ``out_dir`` and return ``out_dir``.

    Args:
        preset: ``small`` (seconds), ``demo`` (minutes) or ``basin`` (benchmarks).
        out_dir: Destination folder; an existing world there is replaced only once the new one is complete.
        seed: Random seed; the same seed gives byte-identical files.
        progress: Called with a line of text at each step.

    Raises:
        WorldError: Unknown preset, or ``out_dir`` exists and is not a world folder.
    """
    say = progress or (lambda _msg: None)
    pr = resolve_preset(preset)
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / layout.WORLD_JSON).exists():
        raise WorldError(
            f"{out_dir} exists and is not a gppscale world (no {layout.WORLD_JSON}); "
            "choose an empty or new folder with --out"
        )
    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _generate(pr, seed, tmp, out_dir, say)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out_dir.with_name(f".{out_dir.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return out_dir


def _generate(pr: WorldPreset, seed: int, root: Path, final: Path, say: Progress) -> None:
    t0 = time.perf_counter()
    w, s, e, n = pr.bbox_lonlat
    lon_c, lat_c = (w + e) / 2, (s + n) / 2
    epsg = utm_epsg_for_lonlat(lon_c, lat_c)
    inner = snapped_utm_grid(pr.bbox_lonlat, 30.0, epsg)
    grid = inner.pad(pr.pad_px)
    say(
        f"world {pr.name!r} seed {seed}: {inner.width}x{inner.height} px area "
        f"({grid.width}x{grid.height} simulated)"
    )

    land = Landscape(seed)
    pts = Points(grid.xs, grid.ys, grid=True)
    ratio_field = FourierField.make(seeded_rng(seed, "npp-ratio"), 1500.0).on_grid(grid.xs, grid.ys)
    canopy = Canopy.build(land, pts, ratio_field)
    slope, aspect = slope_aspect(canopy.z.astype(np.float64), grid.res_x)
    lat = grid.centres_in("EPSG:4326")[1]
    climate = Climate(seed, pr.years)
    coarse_grid = modis_cover_grid(grid)
    say(f"fine-to-coarse weights onto {coarse_grid.width}x{coarse_grid.height} MODIS cells")
    op = CoarseOperator.build(grid, coarse_grid)
    water_frac = op.apply((canopy.code == 210).astype(np.float32))
    met_grid = lonlat_grid(grid.bounds_lonlat(), 0.01)
    met_z = land.regional_elevation(Points(*met_grid.centres_in(grid.crs), grid=False))
    met_lat = np.broadcast_to(met_grid.ys[:, None], met_grid.shape)

    h, v = modis_tile_of_lonlat(lon_c, lat_c)
    tile = f"h{h:02d}v{v:02d}"
    writer = ProductWriter(root, final, grid, epsg, seed, tile)
    writer.static_products(land, canopy, say)
    towers = choose_towers(canopy, grid, inner, pr.n_towers, seed)
    plots = choose_plots(canopy, grid, inner, pr.n_plots, seed)
    truth = TruthStore.create(root / layout.TRUTH_ZARR, grid, pr.years, canopy)
    scenes = scene_schedule(pr.years)
    plot_npp: dict[int, list[float]] = {}
    tower_forcing: list[dict[str, list[float]]] = [{} for _ in towers.pixels]

    for year in pr.years:
        starts, n_days = glass_windows(year)
        overlap = quarter_day_overlap(starts, n_days, year)
        open_q: dict[int, _Quarter] = {}
        plot_npp[year] = [0.0] * len(plots.pixels)
        for wi, start in enumerate(starts):
            doy = float(climate.weather[year].mid_doy[wi])
            terrain = terrain_radiation_factor(doy, lat_c, slope, aspect, climate.direct_fraction(year, wi))
            tmean, srad, vpd = window_weather(climate, year, wi, canopy, lat, terrain)
            gpp = gpp_rate(canopy, doy, tmean, srad, vpd)
            npp = (gpp * canopy.npp_ratio).astype(np.float32)
            for q in np.flatnonzero(overlap[:, wi]).tolist():
                acc = open_q.setdefault(q, _Quarter.empty(grid.shape))
                acc.gpp += gpp * overlap[q, wi]
                acc.npp += npp * overlap[q, wi]
            if year == pr.years[0]:
                for k, (r, c) in enumerate(towers.pixels):
                    rec = tower_forcing[k]
                    rec.setdefault("gpp", []).append(window_mean_3x3(gpp, r, c))
                    rec.setdefault("tmean", []).append(float(tmean[r, c]))
                    rec.setdefault("srad", []).append(float(srad[r, c]))
                    rec.setdefault("vpd", []).append(float(vpd[r, c]))
            writer.coarse_window(year, wi, start, int(n_days[wi]), gpp, npp, op, water_frac)
            met = _met_window(climate, year, wi, met_z, met_lat)
            writer.met_window(year, start, int(n_days[wi]), met_grid, met)
            end = start + np.timedelta64(int(n_days[wi]), "D")
            for sc in (sc for sc in scenes if start <= sc.date < end):
                clean = writer.landsat_scene(sc, canopy, tmean.astype(np.float32))
                acc = open_q[quarter_of(sc.date) - 1]
                acc.clean += clean
                acc.n_scenes += 1
            for q in list(open_q):
                if wi + 1 == len(starts) or not overlap[q, wi + 1]:
                    acc = open_q.pop(q)
                    clean_q = (acc.clean / max(acc.n_scenes, 1)).astype(np.float32)
                    truth.write_quarter(year, q + 1, acc.gpp, acc.npp, clean_q)
                    writer.reference_quarter(year, q + 1, acc.gpp, acc.npp, canopy, grid.window_of(inner))
                    for k, (r, c) in enumerate(plots.pixels):
                        plot_npp[year][k] += window_mean_3x3(acc.npp, r, c)
            if wi % 8 == 0:
                say(f"  {year} window {wi + 1}/{len(starts)}")

    writer.towers(towers, tower_forcing, pr.years[0], say)
    writer.plots(plots, plot_npp)
    writer.finish_collections()
    manifest: dict[str, Any] = {
        "gppscale_world": 1,
        "preset": pr.name,
        "seed": seed,
        "bbox_lonlat": list(pr.bbox_lonlat),
        "years": list(pr.years),
        "epsg": epsg,
        "grid": layout.grid_dict(inner),
        "world_grid": layout.grid_dict(grid),
        "coarse_grid": layout.grid_dict(coarse_grid) | {"modis_tile": tile},
        "collections": dict(layout.COLLECTIONS),
        "towers": {"sites": layout.TOWER_SITES, "dir": layout.TOWERS_DIR},
        "plots": layout.PLOTS,
        "truth": layout.TRUTH_ZARR,
        "stats": writer.stats(),
    }
    layout.write_manifest(root, manifest)
    say(f"done in {time.perf_counter() - t0:.1f} s")


def _met_window(
    climate: Climate, year: int, wi: int, z: npt.NDArray[np.float64], lat: npt.NDArray[np.float64]
) -> dict[str, F32]:
    tmean = climate.tmean(year, wi, z)
    return {
        "tmean": tmean.astype(np.float32),
        "prcp": np.full(z.shape, climate.weather[year].prcp[wi], np.float32),
        "srad": climate.srad(year, wi, lat).astype(np.float32),
        "vpd": climate.vpd(year, wi, tmean).astype(np.float32),
    }
