"""Where the flux towers and field plots of a world stand."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pyproj import Transformer

from gppscale.world.fields import seeded_rng
from gppscale.world.grids import Grid
from gppscale.world.landscape import FOREST_TYPE_OF_TENS, forest_type_name
from gppscale.world.truth import Canopy

__all__ = ["SiteSet", "choose_plots", "choose_towers", "window_mean_3x3"]

TOWER_TYPES = ("DNF", "ENF", "DBF", "MF")
TENS_OF_TYPE = {name: tens for tens, name in FOREST_TYPE_OF_TENS.items()}


@dataclass(frozen=True)
class SiteSet:
    """Pixels (row, col in the world grid), their forest types and lon/lat."""

    pixels: list[tuple[int, int]]
    types: list[str]
    lonlat: list[tuple[float, float]]


def window_mean_3x3(values: npt.NDArray[np.floating], r: int, c: int) -> float:
    """Mean of the 3 x 3 pixels centred on (r, c), as the paper compares towers and plots."""
    return float(np.mean(values[r - 1 : r + 2, c - 1 : c + 2], dtype=np.float64))


def _homogeneous_forest(canopy: Canopy, grid: Grid, inner: Grid, margin: int) -> npt.NDArray[np.bool_]:
    code = canopy.code.astype(np.int16)
    same = np.ones(code.shape, dtype=bool)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            same &= np.roll(np.roll(code, dr, 0), dc, 1) == code
    rows, cols = grid.window_of(inner)
    ok = np.zeros(code.shape, dtype=bool)
    ok[rows.start + margin : rows.stop - margin, cols.start + margin : cols.stop - margin] = True
    return same & ok & (code >= 51) & (code <= 92)


def _lonlat(grid: Grid, pixels: list[tuple[int, int]]) -> list[tuple[float, float]]:
    tr = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    out = []
    for r, c in pixels:
        lon, lat = tr.transform(grid.xs[c], grid.ys[r])
        out.append((round(float(lon), 6), round(float(lat), 6)))
    return out


def choose_towers(canopy: Canopy, grid: Grid, inner: Grid, n: int, seed: int) -> SiteSet:
    """Towers in homogeneous closed forest, larch first (the paper's dominant type), >= 1.5 km apart."""
    rng = seeded_rng(seed, "towers")
    ok = _homogeneous_forest(canopy, grid, inner, margin=10) & (canopy.code % 10 == 2)
    pixels: list[tuple[int, int]] = []
    types: list[str] = []
    for t in TOWER_TYPES:
        if len(pixels) == n:
            break
        cand = np.argwhere(ok & (canopy.code // 10 == TENS_OF_TYPE[t]))
        far = [p for p in cand if all(np.hypot(p[0] - r, p[1] - c) * grid.res_x > 1500 for r, c in pixels)]
        if far:
            r, c = far[int(rng.integers(len(far)))]
            pixels.append((int(r), int(c)))
            types.append(t)
    return SiteSet(pixels, types, _lonlat(grid, pixels))


def choose_plots(canopy: Canopy, grid: Grid, inner: Grid, n: int, seed: int) -> SiteSet:
    """Field plots at random homogeneous forest pixels of the area."""
    rng = seeded_rng(seed, "plots")
    cand = np.argwhere(_homogeneous_forest(canopy, grid, inner, margin=3))
    pick = rng.choice(len(cand), size=min(n, len(cand)), replace=False) if len(cand) else np.zeros(0, int)
    pixels = sorted((int(cand[i][0]), int(cand[i][1])) for i in pick)
    types = [forest_type_name(int(canopy.code[r, c])) for r, c in pixels]
    return SiteSet(pixels, types, _lonlat(grid, pixels))
