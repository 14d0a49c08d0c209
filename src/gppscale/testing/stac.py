"""A tiny hand-made world STAC folder for fast serve/search tests.

The folder has the layout the synthetic-world generator writes (``world.json``, then
``stac/<collection-id>/collection.json`` and ``items.ndjson``), but only two small collections and a
few 8 x 8 GeoTIFFs, so tests of the STAC API and search do not depend on :mod:`gppscale.world`.

Contents (all datetimes UTC, all hrefs ``file://`` absolute paths):

* ``landsat-c2-l2`` (role ``landsat``): ``n_items`` items in :data:`TINY_YEAR`, item ``i`` dated the
  15th of month ``i + 1``; even items cover the west half of :data:`TINY_BBOX`, odd items the east
  half. Assets ``red`` and ``qa_pixel`` (uint16, UTM 50N, 30 m).
* ``cop-dem-glo-30`` (role ``dem``): :data:`TINY_DEM_TILES` 1-degree tiles that together cover
  :data:`TINY_BBOX`; static, dated 2021 (outside :data:`TINY_YEAR`, like the real Copernicus DEM),
  so it must be searched without a datetime filter. Asset ``data`` (float32, EPSG:4326).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> world = make_tiny_world_stac(Path(tempfile.mkdtemp()), n_items=3)
    >>> sorted(p.parent.name for p in (world / "stac").glob("*/collection.json"))
    ['cop-dem-glo-30', 'landsat-c2-l2']
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np

from gppscale.errors import WorldError

__all__ = [
    "TINY_BBOX",
    "TINY_COLLECTIONS",
    "TINY_DEM_TILES",
    "TINY_YEAR",
    "make_tiny_world_stac",
]

TINY_BBOX: tuple[float, float, float, float] = (116.6, 41.7, 117.8, 42.6)
"""West, south, east, north in degrees: part of the paper's upper Luanhe basin."""

TINY_YEAR = 2020
"""The year of every Landsat item."""

TINY_COLLECTIONS: Mapping[str, str] = {"landsat": "landsat-c2-l2", "dem": "cop-dem-glo-30"}
"""Role to collection id, as in a world's ``world.json``."""

TINY_DEM_TILES = 4
"""Number of DEM items (1-degree tiles of lon 116-118, lat 41-43)."""

_STAC_VERSION = "1.1.0"
_PROJ_EXT = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
_PIXELS = 8
_UTM50N = 32650
_MAX_ITEMS = 12


def _polygon(bbox: tuple[float, float, float, float]) -> dict[str, Any]:
    w, s, e, n = bbox
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def landsat_bbox(i: int) -> tuple[float, float, float, float]:
    """Footprint of Landsat item ``i``: west half of :data:`TINY_BBOX` if ``i`` is even, else east half."""
    w, s, e, n = TINY_BBOX
    mid = round((w + e) / 2, 6)
    return (w, s, mid, n) if i % 2 == 0 else (mid, s, e, n)


def landsat_datetime(i: int) -> datetime:
    """Acquisition time of Landsat item ``i``: the 15th of month ``i + 1`` of :data:`TINY_YEAR`."""
    return datetime(TINY_YEAR, i + 1, 15, 3, 0, 0, tzinfo=UTC)


def _utm_transform(i: int) -> list[float]:
    # An arbitrary 30 m grid inside UTM 50N; search tests never read pixels against geometry.
    x0 = 450_000.0 + 50_000.0 * (i % 2)
    return [30.0, 0.0, x0, 0.0, -30.0, 4_700_000.0]


def collection_dict(
    collection_id: str, description: str, bbox: tuple[float, float, float, float], interval: tuple[str, str]
) -> dict[str, Any]:
    """A STAC 1.1.0 Collection without item links, as the world generator writes it."""
    return {
        "type": "Collection",
        "stac_version": _STAC_VERSION,
        "stac_extensions": [_PROJ_EXT],
        "id": collection_id,
        "description": description,
        "license": "CC-BY-4.0",
        "extent": {"spatial": {"bbox": [list(bbox)]}, "temporal": {"interval": [list(interval)]}},
        "links": [],
    }


def _asset(path: Path, title: str, roles: list[str]) -> dict[str, Any]:
    return {
        "href": path.resolve().as_uri(),
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "title": title,
        "roles": roles,
    }


def landsat_item(i: int, data_dir: Path) -> dict[str, Any]:
    """Landsat item ``i`` (see the module docstring) with assets under ``data_dir``."""
    item_id = f"LC08_TINY_{i:03d}"
    bbox = landsat_bbox(i)
    return {
        "type": "Feature",
        "stac_version": _STAC_VERSION,
        "stac_extensions": [_PROJ_EXT],
        "id": item_id,
        "collection": TINY_COLLECTIONS["landsat"],
        "geometry": _polygon(bbox),
        "bbox": list(bbox),
        "properties": {
            "datetime": _iso(landsat_datetime(i)),
            "platform": "landsat-8",
            "eo:cloud_cover": float(10 * (i % 5)),
            "proj:code": f"EPSG:{_UTM50N}",
            "proj:shape": [_PIXELS, _PIXELS],
            "proj:transform": _utm_transform(i),
        },
        "assets": {
            "red": _asset(data_dir / f"{item_id}_red.tif", "Red", ["data"]),
            "qa_pixel": _asset(data_dir / f"{item_id}_qa_pixel.tif", "Pixel quality", ["cloud"]),
        },
        "links": [],
    }


def dem_tile_bboxes() -> list[tuple[float, float, float, float]]:
    """The 1-degree DEM tiles: lon 116-118 by lat 41-43, west to east, south to north."""
    return [(lon, lat, lon + 1.0, lat + 1.0) for lat in (41.0, 42.0) for lon in (116.0, 117.0)]


def dem_item(bbox: tuple[float, float, float, float], data_dir: Path) -> dict[str, Any]:
    """A static Copernicus-DEM-like tile item with one ``data`` asset under ``data_dir``."""
    w, s, _, _ = bbox
    item_id = f"Copernicus_DSM_COG_10_N{int(s):02d}_00_E{int(w):03d}_00_DEM"
    return {
        "type": "Feature",
        "stac_version": _STAC_VERSION,
        "stac_extensions": [_PROJ_EXT],
        "id": item_id,
        "collection": TINY_COLLECTIONS["dem"],
        "geometry": _polygon(bbox),
        "bbox": list(bbox),
        "properties": {
            "datetime": None,
            "start_datetime": "2021-04-22T00:00:00Z",
            "end_datetime": "2021-04-22T00:00:00Z",
            "proj:code": "EPSG:4326",
            "proj:shape": [_PIXELS, _PIXELS],
            "proj:transform": [1.0 / _PIXELS, 0.0, w, 0.0, -1.0 / _PIXELS, s + 1.0],
        },
        "assets": {"data": _asset(data_dir / f"{item_id}.tif", "Elevation", ["data"])},
        "links": [],
    }


def _write_geotiff(
    path: Path, data: np.ndarray[Any, Any], crs: str, transform: list[float], nodata: float | None
) -> None:
    import rasterio
    from rasterio.transform import Affine

    profile = {
        "driver": "GTiff",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": Affine(*transform),
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def _write_item_rasters(item: Mapping[str, Any], seed: int) -> None:
    props = item["properties"]
    rng = np.random.default_rng(seed)
    for key, asset in item["assets"].items():
        path = Path(url2pathname(urlparse(asset["href"]).path))
        nodata: float | None
        if item["collection"] == TINY_COLLECTIONS["dem"]:
            data: np.ndarray[Any, Any] = rng.uniform(900.0, 1800.0, (_PIXELS, _PIXELS)).astype("float32")
            nodata = None
        elif key == "qa_pixel":
            data = np.full((_PIXELS, _PIXELS), 1 << 6, dtype="uint16")  # bit 6: clear
            nodata = 1  # bit 0: fill
        else:
            data = rng.integers(7_500, 12_000, (_PIXELS, _PIXELS)).astype("uint16")
            nodata = 0
        _write_geotiff(path, data, props["proj:code"], props["proj:transform"], nodata)


def _write_collection(
    stac_dir: Path, collection: Mapping[str, Any], items: Iterable[Mapping[str, Any]]
) -> None:
    folder = stac_dir / collection["id"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "collection.json").write_text(json.dumps(collection, indent=2) + "\n")
    lines = [json.dumps(item, separators=(",", ":")) for item in items]
    (folder / "items.ndjson").write_text("".join(line + "\n" for line in lines))


def make_tiny_world_stac(dir: Path, n_items: int = 5) -> Path:
    """Write a tiny world folder with two STAC collections into ``dir`` and return ``dir``.

    Args:
        dir: Folder to write (created if needed). Existing files with the same names are overwritten.
        n_items: Number of Landsat items, 1 to 12 (one per month of :data:`TINY_YEAR`).

    Returns:
        The world folder, the same path as ``dir`` (absolute).

    Raises:
        WorldError: If ``n_items`` is out of range.

    Example:
        >>> import tempfile
        >>> world = make_tiny_world_stac(Path(tempfile.mkdtemp()), n_items=2)
        >>> sum(1 for _ in open(world / "stac" / "landsat-c2-l2" / "items.ndjson"))
        2
    """
    if not 1 <= n_items <= _MAX_ITEMS:
        raise WorldError(f"n_items={n_items!r} is out of range; give 1 to {_MAX_ITEMS} (one item per month)")
    world = dir.resolve()
    data_dir = world / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    landsat = [landsat_item(i, data_dir) for i in range(n_items)]
    dem = [dem_item(b, data_dir) for b in dem_tile_bboxes()]
    for seed, item in enumerate([*landsat, *dem]):
        _write_item_rasters(item, seed)
    last = landsat_datetime(n_items - 1)
    stac_dir = world / "stac"
    _write_collection(
        stac_dir,
        collection_dict(
            TINY_COLLECTIONS["landsat"],
            "Tiny Landsat Collection 2 Level-2 look-alike for tests",
            TINY_BBOX,
            (_iso(landsat_datetime(0)), _iso(last)),
        ),
        landsat,
    )
    _write_collection(
        stac_dir,
        collection_dict(
            TINY_COLLECTIONS["dem"],
            "Tiny Copernicus DEM GLO-30 look-alike for tests (static)",
            (116.0, 41.0, 118.0, 43.0),
            ("2021-04-22T00:00:00Z", "2021-04-22T00:00:00Z"),
        ),
        dem,
    )
    meta = {
        "preset": "tiny",
        "seed": 0,
        "bbox_lonlat": list(TINY_BBOX),
        "years": [TINY_YEAR],
        "collections": dict(TINY_COLLECTIONS),
    }
    (world / "world.json").write_text(json.dumps(meta, indent=2) + "\n")
    return world
