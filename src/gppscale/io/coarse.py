"""Coarse GPP/NPP from frozen STAC items, on the product's own grid (no resampling, ever).

The coarse product keeps its native grid (MODIS sinusoidal 463.3 m for GLASS): the window of that grid
covering the run's area is cut from the first item's ``proj:transform``/``proj:shape``/CRS and every item
is loaded onto exactly that window, so odc-stac never snaps or resamples the cells. The physical decoding
and the proration of 8-day windows into quarters are the pure stage :mod:`gppscale.stages.coarse`.

Example:
    >>> item = {"id": "g", "properties": {"proj:code": "EPSG:32650", "proj:shape": [2, 3],
    ...         "proj:transform": [500, 0, 1000, 0, -500, 9000]}, "assets": {"data": {"href": "x"}}}
    >>> gbox = item_geobox(item, "data")
    >>> gbox.shape, gbox.transform.c
    (Shape2d(y=2, x=3), 1000.0)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pystac
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox
from odc.geo.geom import Geometry
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from gppscale.config import RunSpec
from gppscale.errors import CatalogError, NoDataError
from gppscale.io.access import PatchUrl
from gppscale.io.cube import windows_for
from gppscale.plan import RunPlan
from gppscale.stages.coarse import decode_coarse, quarterly_sums

__all__ = ["area_window", "check_covers", "coarse_grid", "coarse_quarterly", "item_geobox", "load_native"]

Item = Mapping[str, Any]


def _crs_of(item: Item, asset_key: str) -> str | dict[str, Any]:
    asset, props = item["assets"][asset_key], item["properties"]
    for key in ("proj:code", "proj:wkt2", "proj:projjson"):
        value = asset.get(key) or props.get(key)
        if value:
            crs: str | dict[str, Any] = value
            return crs
    epsg = asset.get("proj:epsg") or props.get("proj:epsg")
    if epsg:
        return f"EPSG:{epsg}"
    raise CatalogError(f"item {item.get('id')!r} asset {asset_key!r} has no proj:code/proj:wkt2/proj:epsg")


def item_geobox(item: Item, asset_key: str) -> GeoBox:
    """The pixel grid of an item's asset from its projection metadata (asset level first)."""
    asset, props = item["assets"][asset_key], item["properties"]
    transform = asset.get("proj:transform") or props.get("proj:transform")
    shape_yx = asset.get("proj:shape") or props.get("proj:shape")
    if transform is None or shape_yx is None:
        raise CatalogError(f"item {item.get('id')!r} asset {asset_key!r} has no proj:transform/proj:shape")
    return GeoBox(tuple(shape_yx), Affine(*transform[:6]), _crs_of(item, asset_key))


def area_window(native: GeoBox, area: Geometry) -> GeoBox:
    """The smallest window of ``native``'s grid (extended beyond its edges if needed) covering ``area``.

    Works for any affine grid (sheared too): the area's densified outline goes to pixel coordinates
    through the inverse transform.
    """
    if native.crs is None:
        raise CatalogError("the coarse product's grid has no CRS")
    outline = area.to_crs(native.crs).boundary
    dense = outline.segmented(abs(native.resolution.x) / 4)
    xs, ys = np.asarray(dense.coords).T
    cols, rows = ~native.transform * (xs, ys)
    c0, c1 = math.floor(float(np.min(cols))), math.ceil(float(np.max(cols)))
    r0, r1 = math.floor(float(np.min(rows))), math.ceil(float(np.max(rows)))
    affine = native.transform * Affine.translation(c0, r0)
    return GeoBox((r1 - r0, c1 - c0), affine, native.crs)


def check_covers(items: Sequence[Item], area_lonlat: BaseGeometry, what: str) -> None:
    """Raise :class:`NoDataError` unless the items' footprints together cover the area (lon/lat)."""
    footprints = [shape(i["geometry"]) for i in items if i.get("geometry")]
    if not footprints:
        raise NoDataError(f"{what}: no item has a footprint; the product cannot be placed")
    union = unary_union(footprints).buffer(1e-9)
    missing = area_lonlat.difference(union)
    if missing.area > 1e-6 * max(area_lonlat.area, 1e-12):
        w, s, e, n = (round(v, 4) for v in missing.bounds)
        raise NoDataError(
            f"{what} does not cover the whole area: nothing over [{w}, {s}, {e}, {n}] (lon/lat). Check the "
            "collection, the area and the product's tiles (a neighbouring tile may be missing)"
        )


def load_native(
    items: Sequence[Item],
    asset_key: str,
    area: Geometry,
    *,
    chunk_px: int = 1024,
    patch_url: PatchUrl | None = None,
) -> tuple[xr.DataArray, np.ndarray, np.ndarray]:
    """Lazy float32 raster (NaN for nodata) of ``asset_key`` on the native window covering ``area``.

    Items of one time step (tiles) are fused. Returns the raster (time, y, x) and the ``[start, end)``
    day window of each time step (see :func:`gppscale.io.cube.window_of`).
    """
    from odc.stac import load

    window = area_window(item_geobox(items[0], asset_key), area)
    ds = load(
        [pystac.Item.from_dict(json.loads(json.dumps(i))) for i in items],
        bands=[asset_key],
        geobox=window,
        chunks={"time": 1, "y": chunk_px, "x": chunk_px},
        resampling="nearest",
        dtype="float32",
        nodata=float("nan"),
        groupby="time",
        patch_url=patch_url,
    )
    starts, ends = windows_for(ds.time.values, items)
    raster: xr.DataArray = ds[asset_key]
    return raster, starts, ends


def coarse_grid(spec: RunSpec, plan: RunPlan, items: Sequence[Item], role: str) -> GeoBox:
    """The window of a coarse role's native grid that covers the run's 30 m grid (what it is loaded on).

    Raises:
        NoDataError: If the role has no items.
    """
    collection = getattr(spec.collections, role)
    if not items:
        raise NoDataError(f"{collection.id!r} (role {role}): no items were frozen for this run")
    return area_window(item_geobox(items[0], collection.assets["data"]), plan.geobox.extent)


def coarse_quarterly(
    spec: RunSpec, plan: RunPlan, items: Sequence[Item], role: str, patch_url: PatchUrl | None = None
) -> xr.DataArray:
    """Quarterly sums (gC m-2 quarter-1) of a coarse role on its native window covering the run's area.

    Raises:
        NoDataError: If the role's items do not cover the area or a quarter has no window.
    """
    collection = getattr(spec.collections, role)
    what = f"{collection.id!r} (role {role})"
    if not items:
        raise NoDataError(f"{what}: no items were frozen for this run")
    check_covers(items, spec.area.geometry_lonlat(), what)
    raster, starts, ends = load_native(
        items, collection.assets["data"], plan.geobox.extent, patch_url=patch_url
    )
    rate = decode_coarse(raster, spec.coarse)
    sums = quarterly_sums(rate, starts, ends, plan.quarters)
    return sums.rename(role.removeprefix("coarse_")).assign_attrs(source=collection.id)
