"""STAC Items and Collections of the synthetic world, shaped like the public catalogs they stand for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import Polygon, mapping

from gppscale.world.grids import Grid

__all__ = [
    "EXT",
    "collection",
    "footprint_geometry",
    "item",
    "proj_properties",
    "raster_asset",
]

STAC_VERSION = "1.1.0"
EXT = {
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "view": "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "classification": "https://stac-extensions.github.io/classification/v2.0.0/schema.json",
}


def _round(v: float, nd: int = 7) -> float:
    return float(round(v, nd))


def footprint_geometry(grid: Grid, clip_utm: Polygon | None = None) -> tuple[dict[str, Any], list[float]]:
    """GeoJSON polygon (lon/lat) and bbox of a grid's outline, optionally clipped by a polygon in its CRS."""
    w, s, e, n = grid.bounds
    poly = Polygon([(w, s), (e, s), (e, n), (w, n)])
    if clip_utm is not None:
        poly = poly.intersection(clip_utm)
    poly = poly.segmentize(max(grid.res_x, grid.res_y) * 64)
    tr = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    ll = shapely.transform(poly, lambda x, y: tr.transform(x, y), interleaved=False)
    ll = Polygon([(_round(x), _round(y)) for x, y in ll.exterior.coords]).normalize()
    geom = mapping(ll)
    geom = {"type": "Polygon", "coordinates": [[list(c) for c in ring] for ring in geom["coordinates"]]}
    b = ll.bounds
    return geom, [_round(b[0]), _round(b[1]), _round(b[2]), _round(b[3])]


def proj_properties(grid: Grid, epsg: int | None) -> dict[str, Any]:
    """Projection-extension fields: ``proj:code`` when an EPSG code exists, ``proj:wkt2`` otherwise."""
    t = grid.transform
    props: dict[str, Any] = {
        "proj:shape": [grid.height, grid.width],
        "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
        "proj:bbox": list(grid.bounds),
    }
    if epsg is not None:
        props["proj:code"] = f"EPSG:{epsg}"
    else:
        props["proj:code"] = None
        props["proj:wkt2"] = grid.crs
    return props


def raster_asset(
    href: str,
    title: str,
    data_type: str,
    *,
    nodata: float | str | None = None,
    scale: float | None = None,
    offset: float | None = None,
    unit: str | None = None,
    roles: Sequence[str] = ("data",),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A COG asset with one ``raster:bands`` entry (scale/offset/nodata/unit when given)."""
    band: dict[str, Any] = {"data_type": data_type}
    for key, value in (("nodata", nodata), ("scale", scale), ("offset", offset), ("unit", unit)):
        if value is not None:
            band[key] = value
    asset: dict[str, Any] = {
        "href": href,
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "title": title,
        "roles": list(roles),
        "raster:bands": [band],
    }
    asset.update(extra or {})
    return asset


def item(
    item_id: str,
    collection_id: str,
    geometry: dict[str, Any],
    bbox: list[float],
    *,
    datetime: str | None,
    start: str | None = None,
    end: str | None = None,
    properties: Mapping[str, Any] | None = None,
    assets: Mapping[str, dict[str, Any]],
    extensions: Sequence[str] = ("proj", "raster"),
) -> dict[str, Any]:
    """A STAC Item dict; ``datetime`` may be None when ``start``/``end`` are given."""
    props: dict[str, Any] = {"datetime": datetime}
    if start is not None:
        props["start_datetime"] = start
        props["end_datetime"] = end
    props.update(properties or {})
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [EXT[e] for e in extensions],
        "id": item_id,
        "collection": collection_id,
        "geometry": geometry,
        "bbox": bbox,
        "properties": props,
        "links": [],
        "assets": dict(assets),
    }


def collection(
    collection_id: str,
    title: str,
    description: str,
    items: Sequence[Mapping[str, Any]],
    *,
    keywords: Sequence[str] = (),
    summaries: Mapping[str, Any] | None = None,
    extensions: Sequence[str] = ("proj", "raster"),
) -> dict[str, Any]:
    """A STAC Collection whose extent covers ``items``."""
    boxes = np.array([it["bbox"] for it in items], dtype=np.float64)
    times = []
    for it in items:
        p = it["properties"]
        times += [t for t in (p.get("datetime"), p.get("start_datetime"), p.get("end_datetime")) if t]
    return {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": [EXT[e] for e in extensions],
        "id": collection_id,
        "title": title,
        "description": description,
        "license": "CC-BY-4.0",
        "keywords": ["gppscale", "synthetic", *keywords],
        "providers": [{"name": "gppscale synthetic world", "roles": ["producer", "processor", "host"]}],
        "extent": {
            "spatial": {
                "bbox": [
                    [
                        float(boxes[:, 0].min()),
                        float(boxes[:, 1].min()),
                        float(boxes[:, 2].max()),
                        float(boxes[:, 3].max()),
                    ]
                ]
            },
            "temporal": {"interval": [[min(times), max(times)]]},
        },
        "summaries": dict(summaries or {}),
        "links": [],
    }
