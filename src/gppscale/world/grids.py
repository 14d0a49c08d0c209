"""Grids of the synthetic world: the 30 m UTM grid, the MODIS sinusoidal grid and 1-degree EPSG:4326 tiles.

All grids are north-up with square or rectangular pixels; ``x0``/``y0`` are the outer top-left corner.
The MODIS sinusoidal grid is the real global one (sphere radius 6371007.181 m, 2400 x 2400 pixels of
463.312716525 m per 10-degree tile), so coarse cells line up with GLASS/MODIS products.

Example:
    >>> utm_epsg_for_lonlat(117.2, 42.1)
    32650
    >>> modis_tile_of_lonlat(117.2, 42.1)
    (26, 4)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
from affine import Affine
from pyproj import CRS, Transformer

__all__ = [
    "MODIS_PIXEL_M",
    "MODIS_SPHERE_RADIUS_M",
    "MODIS_TILE_M",
    "SINUSOIDAL_WKT",
    "Grid",
    "lonlat_grid",
    "lonlat_tile_grids",
    "modis_cover_grid",
    "modis_tile_of_lonlat",
    "snapped_utm_grid",
    "utm_epsg_for_lonlat",
]

MODIS_SPHERE_RADIUS_M = 6371007.181
MODIS_PIXEL_M = 463.312716525  # the "500 m" grid of MOD17 / GLASS
MODIS_TILE_M = 2400 * MODIS_PIXEL_M  # 10 degrees of arc on the MODIS sphere
MODIS_X_MIN = -20015109.354  # west edge of tile h00
MODIS_Y_MAX = 10007554.677  # north edge of tile v00
SINUSOIDAL_WKT = CRS.from_proj4(
    f"+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R={MODIS_SPHERE_RADIUS_M} +units=m +no_defs"
).to_wkt()


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid.

    Attributes:
        crs: Anything pyproj understands (``"EPSG:32650"``, WKT).
        x0: West edge, CRS units.
        y0: North edge, CRS units.
        res_x: Pixel width (> 0).
        res_y: Pixel height (> 0); rows go south.
        width: Number of columns.
        height: Number of rows.
    """

    crs: str
    x0: float
    y0: float
    res_x: float
    res_y: float
    width: int
    height: int

    @property
    def transform(self) -> Affine:
        """The GDAL-style affine transform of the grid."""
        return Affine(self.res_x, 0.0, self.x0, 0.0, -self.res_y, self.y0)

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``."""
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(west, south, east, north)`` in CRS units."""
        return (
            self.x0,
            self.y0 - self.height * self.res_y,
            self.x0 + self.width * self.res_x,
            self.y0,
        )

    @cached_property
    def xs(self) -> npt.NDArray[np.float64]:
        """Column-centre x coordinates."""
        return np.float64(self.x0) + (np.arange(self.width) + 0.5) * self.res_x

    @cached_property
    def ys(self) -> npt.NDArray[np.float64]:
        """Row-centre y coordinates (decreasing)."""
        return np.float64(self.y0) - (np.arange(self.height) + 0.5) * self.res_y

    def pad(self, n: int) -> Grid:
        """The grid grown by ``n`` pixels on every side."""
        return Grid(
            self.crs,
            self.x0 - n * self.res_x,
            self.y0 + n * self.res_y,
            self.res_x,
            self.res_y,
            self.width + 2 * n,
            self.height + 2 * n,
        )

    def window_of(self, inner: Grid) -> tuple[slice, slice]:
        """Row and column slices of ``inner`` (same CRS and lattice) inside this grid."""
        col = round((inner.x0 - self.x0) / self.res_x)
        row = round((self.y0 - inner.y0) / self.res_y)
        if col < 0 or row < 0 or col + inner.width > self.width or row + inner.height > self.height:
            raise ValueError(f"grid {inner} is not inside {self}")
        return slice(row, row + inner.height), slice(col, col + inner.width)

    def bounds_lonlat(self, densify: int = 21) -> tuple[float, float, float, float]:
        """Bounding box in longitude/latitude of the grid's outline (densified edges)."""
        lon, lat = _outline_to(self, "EPSG:4326", densify)
        return (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))

    def centres_in(self, crs: str) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Coordinates of every pixel centre in another CRS, each of shape ``(height, width)``."""
        xx, yy = np.meshgrid(self.xs, self.ys)
        x, y = Transformer.from_crs(self.crs, crs, always_xy=True).transform(xx, yy)
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def _outline_to(
    grid: Grid, crs: str, densify: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    w, s, e, n = grid.bounds
    t = np.linspace(0.0, 1.0, densify, endpoint=False)
    xs = np.concatenate([w + (e - w) * t, np.full_like(t, e), e - (e - w) * t, np.full_like(t, w)])
    ys = np.concatenate([np.full_like(t, s), s + (n - s) * t, np.full_like(t, n), n - (n - s) * t])
    tr = Transformer.from_crs(grid.crs, crs, always_xy=True)
    a, b = tr.transform(xs, ys)
    return np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)


def utm_epsg_for_lonlat(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 / UTM zone holding a point (326xx north, 327xx south).

    ``gppscale.config.utm_epsg_for`` does the same for the method; the world keeps its own on purpose
    (DESIGN.md: an independent implementation, so a test on the world cannot mirror the method's bug).

    Zone exceptions of Norway and Svalbard are ignored: the world never sits there.
    """
    zone = min(math.floor((lon + 180.0) / 6.0) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def snapped_utm_grid(bbox_lonlat: tuple[float, float, float, float], res_m: float, epsg: int) -> Grid:
    """The smallest grid of ``res_m`` pixels, edges on multiples of ``res_m``, covering the bbox."""
    w, s, e, n = bbox_lonlat
    probe = Grid("EPSG:4326", w, n, e - w, n - s, 1, 1)
    x, y = _outline_to(probe, f"EPSG:{epsg}", 41)
    x0 = math.floor(x.min() / res_m) * res_m
    x1 = math.ceil(x.max() / res_m) * res_m
    y0 = math.floor(y.min() / res_m) * res_m
    y1 = math.ceil(y.max() / res_m) * res_m
    return Grid(f"EPSG:{epsg}", x0, y1, res_m, res_m, round((x1 - x0) / res_m), round((y1 - y0) / res_m))


def modis_tile_of_lonlat(lon: float, lat: float) -> tuple[int, int]:
    """MODIS ``(h, v)`` tile indices of a point."""
    tr = Transformer.from_crs("EPSG:4326", SINUSOIDAL_WKT, always_xy=True)
    x, y = tr.transform(lon, lat)
    return int((x - MODIS_X_MIN) // MODIS_TILE_M), int((MODIS_Y_MAX - y) // MODIS_TILE_M)


def modis_cover_grid(grid: Grid) -> Grid:
    """The window of the global MODIS 463 m grid that covers ``grid``'s footprint."""
    x, y = _outline_to(grid, SINUSOIDAL_WKT, 41)
    c0 = math.floor((x.min() - MODIS_X_MIN) / MODIS_PIXEL_M)
    c1 = math.ceil((x.max() - MODIS_X_MIN) / MODIS_PIXEL_M)
    r0 = math.floor((MODIS_Y_MAX - y.max()) / MODIS_PIXEL_M)
    r1 = math.ceil((MODIS_Y_MAX - y.min()) / MODIS_PIXEL_M)
    return Grid(
        SINUSOIDAL_WKT,
        MODIS_X_MIN + c0 * MODIS_PIXEL_M,
        MODIS_Y_MAX - r0 * MODIS_PIXEL_M,
        MODIS_PIXEL_M,
        MODIS_PIXEL_M,
        c1 - c0,
        r1 - r0,
    )


def lonlat_grid(bbox_lonlat: tuple[float, float, float, float], res_deg: float) -> Grid:
    """An EPSG:4326 grid of ``res_deg`` pixels, edges on multiples of ``res_deg``, covering the bbox."""
    w, s, e, n = bbox_lonlat
    c0, c1 = math.floor(w / res_deg), math.ceil(e / res_deg)
    r0, r1 = math.floor(s / res_deg), math.ceil(n / res_deg)
    return Grid("EPSG:4326", c0 * res_deg, r1 * res_deg, res_deg, res_deg, c1 - c0, r1 - r0)


def lonlat_tile_grids(
    bbox_lonlat: tuple[float, float, float, float], res_deg: float, tile_deg: int
) -> list[tuple[tuple[int, int], Grid]]:
    """EPSG:4326 grids on the lattice of ``tile_deg``-degree tiles, clipped to the bbox.

    Each entry is ``((lon_floor, lat_floor), grid)`` for one tile the bbox touches; the grid keeps the
    tile's own pixel lattice (anchored at the tile's integer-degree corner), so clipped pieces line up
    with the full global tiles they stand for.
    """
    w, s, e, n = bbox_lonlat
    out: list[tuple[tuple[int, int], Grid]] = []
    for lat0 in range(math.floor(s / tile_deg) * tile_deg, math.ceil(n / tile_deg) * tile_deg, tile_deg):
        for lon0 in range(math.floor(w / tile_deg) * tile_deg, math.ceil(e / tile_deg) * tile_deg, tile_deg):
            cw, cs = max(w, lon0), max(s, lat0)
            ce, cn = min(e, lon0 + tile_deg), min(n, lat0 + tile_deg)
            if ce <= cw or cn <= cs:
                continue
            c0 = math.floor((cw - lon0) / res_deg + 1e-9)
            c1 = math.ceil((ce - lon0) / res_deg - 1e-9)
            r0 = math.floor((lat0 + tile_deg - cn) / res_deg + 1e-9)
            r1 = math.ceil((lat0 + tile_deg - cs) / res_deg - 1e-9)
            grid = Grid(
                "EPSG:4326",
                lon0 + c0 * res_deg,
                lat0 + tile_deg - r0 * res_deg,
                res_deg,
                res_deg,
                c1 - c0,
                r1 - r0,
            )
            out.append(((lon0, lat0), grid))
    return out
