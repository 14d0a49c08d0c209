"""Stage 1, plan: a run spec becomes the target 30 m GeoBox, the quarters and the chunking.

Pure: no I/O. The target grid is the smallest grid of ``grid.resolution_m`` pixels whose edges lie on
multiples of the resolution in the target CRS and that covers the area's outline (densified before
reprojection, so the curved edges of a lon/lat box in UTM are covered too).

Example:
    >>> from gppscale.config import parse_spec
    >>> spec = parse_spec({"name": "x", "area": {"bbox": [117.15, 42.06, 117.24, 42.13]}, "years": 2021,
    ...                    "catalog": {"url": "https://example.com/stac"}, "output": {"store": "s3://b/r"}})
    >>> plan = plan_run(spec)
    >>> plan.geobox.shape, plan.epsg, plan.quarters[0].label
    (Shape2d(y=261, x=250), 32650, '2021Q1')
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine
from odc.geo.geobox import GeoBox
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from gppscale.config import RunSpec
from gppscale.stages.quarters import Quarter, quarters_of

__all__ = ["RunPlan", "plan_run", "target_geobox"]

_DENSIFY_DEG = 0.002
"""Longest outline segment, degrees, before reprojection (about 200 m)."""


@dataclass(frozen=True)
class RunPlan:
    """What a run covers: the target grid, the quarters and the chunk size.

    Attributes:
        geobox: Target 30 m grid (north-up, square pixels).
        epsg: EPSG code of the target CRS.
        quarters: Calendar quarters to map, in time order.
        chunk_px: Side of a square Dask/Zarr chunk, pixels.
        bbox_lonlat: Area bounds (west, south, east, north), degrees.
    """

    geobox: GeoBox
    epsg: int
    quarters: tuple[Quarter, ...]
    chunk_px: int
    bbox_lonlat: tuple[float, float, float, float]

    @property
    def chunks_yx(self) -> tuple[int, int]:
        """Number of chunks along y and x."""
        ny, nx = self.geobox.shape
        return math.ceil(ny / self.chunk_px), math.ceil(nx / self.chunk_px)

    @property
    def centre_lat(self) -> float:
        """Latitude of the area centre, degrees."""
        return (self.bbox_lonlat[1] + self.bbox_lonlat[3]) / 2.0


def _outline_xy(area: BaseGeometry, epsg: int) -> tuple[np.ndarray, np.ndarray]:
    """The area's outline, densified in degrees, in the target CRS."""
    outline = area.boundary.segmentize(_DENSIFY_DEG)
    coords = np.concatenate([np.asarray(g.coords) for g in getattr(outline, "geoms", [outline])])
    to_target = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    x, y = to_target.transform(coords[:, 0], coords[:, 1])
    return np.asarray(x), np.asarray(y)


def target_geobox(area: BaseGeometry, epsg: int, res_m: float) -> GeoBox:
    """The snapped grid of ``res_m`` pixels in ``EPSG:epsg`` that covers ``area`` (lon/lat).

    Example:
        >>> from shapely.geometry import box
        >>> gbox = target_geobox(box(117.15, 42.06, 117.24, 42.13), 32650, 30.0)
        >>> gbox.transform.c, gbox.transform.f, gbox.shape.x, gbox.shape.y
        (512370.0, 4664250.0, 250, 261)
    """
    x, y = _outline_xy(area, epsg)
    x0 = math.floor(float(x.min()) / res_m) * res_m
    x1 = math.ceil(float(x.max()) / res_m) * res_m
    y0 = math.floor(float(y.min()) / res_m) * res_m
    y1 = math.ceil(float(y.max()) / res_m) * res_m
    shape = (round((y1 - y0) / res_m), round((x1 - x0) / res_m))
    return GeoBox(shape, Affine(res_m, 0.0, x0, 0.0, -res_m, y1), f"EPSG:{epsg}")


def plan_run(spec: RunSpec) -> RunPlan:
    """The plan of a run: target GeoBox, quarters and chunking from the spec."""
    epsg = spec.epsg()
    return RunPlan(
        geobox=target_geobox(spec.area.geometry_lonlat(), epsg, spec.grid.resolution_m),
        epsg=epsg,
        quarters=quarters_of(spec.years, spec.quarters),
        chunk_px=spec.grid.chunk_px,
        bbox_lonlat=spec.area.bounds_lonlat(),
    )
