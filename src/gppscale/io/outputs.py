"""STAC description of a run's 30 m outputs, and the run manifest.

The predict stage writes ``<store>/gpp.zarr``: one Zarr 3 group holding an xarray Dataset with dims
``(time, y, x)`` (``time`` = first day of each quarter) and the variables ``gpp``, ``npp`` (30 m,
gC m-2 quarter-1, NaN outside forest), their ``*_uncorrected`` twins, ``forest_type``, ``model_gpp``,
``model_npp`` and ``time_bnds``. This module describes that store in STAC 1.1 and writes::

    <store>/stac/collection.json          one Collection: the whole cube (datacube + projection fields)
    <store>/stac/items/<id>.json          one Item per quarter, id ``gppscale-<run>-2021Q3``
    <store>/manifest.json                 spec, software versions, input/output checksums, timings

Every Item's asset points at the *same* Zarr group; its ``gppscale:time_index`` says which position
along ``time`` the quarter is, so ``xr.open_dataset(href, **asset["xarray:open_kwargs"]).isel(time=i)``
gives that quarter.

Extensions used (identifiers as published at stac-extensions.github.io):

* datacube v2.2.0: ``cube:dimensions`` and ``cube:variables`` on the Collection. The ``x``/``y``
  ``extent`` holds the first and last **pixel centre** (the values of the ``x``/``y`` coordinates in the
  store, so ``extent[0] + k * step`` gives them back); ``step`` is the pixel size, a positive distance
  (the orientation is in ``proj:transform``). The ``time`` extent holds the first and last quarter start
  (the coordinate values) and ``step`` is ``"P3M"`` when the quarters are consecutive, null otherwise.
* projection v2.0.0: ``proj:code`` (``"EPSG:32650"``) or, for a CRS without an EPSG code,
  ``proj:wkt2``; ``proj:shape`` ``[y, x]``, ``proj:transform`` (the six affine terms ``a b c d e f``),
  ``proj:bbox`` (pixel edges, in the CRS). On Item properties and on the Collection's asset.
* processing v1.2.0: ``processing:level`` ``"L4"`` (model output), ``processing:lineage``,
  ``processing:software``, ``processing:datetime``; on the Collection these sit in the ``gppscale``
  provider (roles ``producer``, ``processor``), where the extension puts Collection-level fields.
* zarr v1.0.0: ``zarr:zarr_format`` 3, ``zarr:node_type`` ``"group"``, ``zarr:consolidated`` false.
* xarray-assets v1.0.0: ``xarray:open_kwargs`` ``{"engine": "zarr", "consolidated": false,
  "decode_coords": "all"}``. The zarr extension says it supersedes xarray-assets, but it carries no
  open arguments, and ``decode_coords="all"`` is what turns ``spatial_ref``/``time_bnds`` back into
  coordinates; so both are declared.

Custom fields (prefix ``gppscale:``): ``gppscale:inputs`` on the Collection (input file -> SHA-256, the
run's input fingerprints), ``gppscale:quarter`` (``"2021Q3"``) on Items, ``gppscale:time_index`` on Item
assets.

The Zarr media type is ``application/vnd.zarr; version=3``, as the STAC Zarr best practices now give it
(radiantearth/stac-best-practices#37; pystac issue #1546 explains why ``application/vnd+zarr``, which
older pystac releases still spell, is malformed). The license is ``"other"`` (STAC 1.1 deprecates
``"proprietary"``): the outputs are derived from inputs with their own terms, and the user who runs
gppscale sets the terms of what it makes.

Example:
    >>> import tempfile, datetime as dt
    >>> import numpy as np, pystac, xarray as xr
    >>> from odc.geo.geobox import GeoBox
    >>> from odc.geo.xr import xr_coords
    >>> from gppscale.io.store import RunStore
    >>> gb = GeoBox.from_bbox((500000, 4400000, 500150, 4400120), "epsg:32650", resolution=30)
    >>> t = np.array(["2021-01-01", "2021-04-01"], dtype="datetime64[ns]")
    >>> gpp = np.zeros((2, *gb.shape), "float32")
    >>> ds = xr.Dataset({"gpp": (("time", "y", "x"), gpp, {"units": "gC m-2 quarter-1"})},
    ...                 coords={"time": t, **xr_coords(gb)})
    >>> store = RunStore(tempfile.mkdtemp())
    >>> created = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    >>> url = write_output_stac(store, ds, gb, run_name="demo", created=created,
    ...                         software={"gppscale": "0.1"}, inputs={})
    >>> collection = pystac.read_file(url)
    >>> [item.id for item in collection.get_items()]
    ['gppscale-demo-2021Q1', 'gppscale-demo-2021Q2']
"""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr
from pyproj.enums import WktVersion
from shapely.geometry import Polygon, mapping
from shapely.geometry.polygon import orient

from gppscale.errors import SpecError
from gppscale.stages.quarters import Quarter

if TYPE_CHECKING:
    from odc.geo.crs import CRS
    from odc.geo.geobox import GeoBox

    from gppscale.io.store import RunStore

__all__ = [
    "COLLECTION_REL",
    "EXTENSIONS",
    "ITEMS_REL",
    "MANIFEST_FORMAT",
    "MANIFEST_REL",
    "OPEN_KWARGS",
    "ZARR_MEDIA_TYPE",
    "output_collection",
    "output_items",
    "package_versions",
    "run_manifest",
    "write_manifest",
    "write_output_stac",
]

STAC_VERSION = "1.1.0"
EXTENSIONS = {
    "datacube": "https://stac-extensions.github.io/datacube/v2.2.0/schema.json",
    "projection": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "processing": "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
    "zarr": "https://stac-extensions.github.io/zarr/v1.0.0/schema.json",
    "xarray": "https://stac-extensions.github.io/xarray-assets/v1.0.0/schema.json",
}
"""Schema URIs of the STAC extensions the output Collection and Items declare."""
ZARR_MEDIA_TYPE = "application/vnd.zarr; version=3"
OPEN_KWARGS: Mapping[str, Any] = {"engine": "zarr", "consolidated": False, "decode_coords": "all"}
"""``xarray.open_dataset`` keyword arguments for the output store (``xarray:open_kwargs``)."""
COLLECTION_REL = "stac/collection.json"
ITEMS_REL = "stac/items"
MANIFEST_REL = "manifest.json"
MANIFEST_FORMAT = "gppscale-manifest/1"

_LEVEL = "L4"  # processing extension: model output derived from lower-level data
_FOOTPRINT_SEGMENTS = 16  # densify the grid outline so its longest edge has 16 segments before reprojecting
_LONLAT_DIGITS = 7  # about 1 cm on the ground; more digits only add bytes
_KEYWORDS = ["GPP", "NPP", "gross primary production", "net primary production", "forest", "downscaling"]
_PAPER = "Yu, Pang, Sun & Niu, IEEE Access 2022, doi:10.1109/ACCESS.2022.3210218"
_SECRET_KEY = re.compile(
    r"secret|passw(or)?d|token|access[_-]?key|credential|api[_-]?key|private[_-]?key", re.I
)
_URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]*@", re.I)
_CREDENTIALS_FIX = (
    "gppscale takes credentials only from the environment (AWS_PROFILE or AWS_ACCESS_KEY_ID/"
    "AWS_SECRET_ACCESS_KEY, an instance or pod role); remove it from the spec"
)
_VERSIONED = (
    "gppscale",
    "numpy",
    "xarray",
    "dask",
    "distributed",
    "zarr",
    "odc-stac",
    "odc-geo",
    "pystac",
    "rasterio",
    "torch",
    "pyproj",
)
_NOT_INSTALLED = "not installed"


# ----------------------------------------------------------------------------------------------- times


def _utc_iso(when: datetime) -> str:
    """RFC 3339 UTC timestamp to the second (``...Z``) of a timezone-aware datetime.

    Raises:
        ValueError: If ``when`` is naive (its time zone would be a guess).

    Example:
        >>> import datetime as dt
        >>> _utc_iso(dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=8))))
        '2024-05-01T04:00:00Z'
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"created={when!r} has no time zone; pass datetime.now(timezone.utc)")
    return when.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _iso(t: np.datetime64) -> str:
    return f"{np.datetime_as_string(t.astype('datetime64[s]'), unit='s')}Z"


def _quarter_of(t: np.datetime64) -> Quarter:
    months = int(t.astype("datetime64[M]").astype(np.int64))
    quarter = Quarter(1970 + months // 12, months % 12 // 3 + 1)
    if quarter.start.astype("datetime64[s]") != t.astype("datetime64[s]"):
        raise ValueError(
            f"time value {_iso(t)} of the output store is not the first day of a quarter (00:00); "
            "the predict stage labels each quarter by its first day"
        )
    return quarter


def _quarters(ds: xr.Dataset) -> list[Quarter]:
    if "time" not in ds.dims or ds.sizes["time"] == 0:
        raise ValueError(f"output dataset has no quarters (dims {dict(ds.sizes)}); predict wrote nothing")
    quarters = [_quarter_of(t) for t in ds["time"].values]
    if any(a >= b for a, b in pairwise(quarters)):
        raise ValueError(f"output quarters {[q.label for q in quarters]} are not increasing and unique")
    return quarters


def _last_second(q: Quarter) -> str:
    return _iso(q.end.astype("datetime64[s]") - np.timedelta64(1, "s"))


def _consecutive(quarters: Sequence[Quarter]) -> bool:
    return all(b.start == a.end for a, b in pairwise(quarters))


# ------------------------------------------------------------------------------------------------ grid


def _check_grid(ds: xr.Dataset, geobox: GeoBox) -> None:
    _crs(geobox)  # raises when the grid has no CRS
    if not geobox.axis_aligned:
        raise ValueError(f"the run grid {geobox!r} is rotated; STAC here describes north-up grids only")
    for dim in ("y", "x"):
        if dim not in ds.dims:
            raise ValueError(f"output dataset has no {dim!r} dimension (dims {dict(ds.sizes)})")
        coord = geobox.coordinates[dim]
        expect, got = coord.values, ds[dim].values
        if got.shape != expect.shape or not np.allclose(
            got, expect, rtol=0, atol=1e-3 * abs(coord.resolution)
        ):
            raise ValueError(
                f"output {dim!r} coordinates ({got.size} values from {got[0]!r}) are not the pixel "
                f"centres of the run grid ({expect.size} from {expect[0]!r}); pass the geobox the store "
                "was written on"
            )


def _crs(geobox: GeoBox) -> CRS:
    if geobox.crs is None:
        raise ValueError(f"the run grid {geobox!r} has no CRS; pass the run plan's geobox")
    return geobox.crs


def _epsg(geobox: GeoBox) -> int | None:
    code = _crs(geobox).epsg
    return None if code is None else int(code)


def _wkt2(geobox: GeoBox) -> str:
    return _crs(geobox).to_wkt(version=WktVersion.WKT2_2019)


def _proj_fields(geobox: GeoBox) -> dict[str, Any]:
    t = geobox.transform
    epsg = _epsg(geobox)
    crs: dict[str, Any] = {"proj:code": f"EPSG:{epsg}"} if epsg is not None else {"proj:wkt2": _wkt2(geobox)}
    return {
        **crs,
        "proj:shape": [int(n) for n in geobox.shape],
        "proj:transform": [float(v) for v in (t.a, t.b, t.c, t.d, t.e, t.f)],
        "proj:bbox": [float(v) for v in geobox.extent.boundingbox],
    }


def _footprint(geobox: GeoBox) -> tuple[dict[str, Any], list[float]]:
    left, bottom, right, top = geobox.extent.boundingbox
    segment = max(right - left, top - bottom) / _FOOTPRINT_SEGMENTS
    lonlat = geobox.extent.to_crs("epsg:4326", resolution=segment).geom
    ring = [(round(x, _LONLAT_DIGITS), round(y, _LONLAT_DIGITS)) for x, y in lonlat.exterior.coords]
    poly = orient(Polygon(ring), sign=1.0)  # RFC 7946: exterior ring counter-clockwise
    west, south, east, north = poly.bounds
    if east - west > 180:
        raise ValueError(f"the run grid footprint spans {west}..{east} degrees: it crosses the antimeridian")
    rings = [[[float(x), float(y)] for x, y in r] for r in mapping(poly)["coordinates"]]
    return {"type": "Polygon", "coordinates": rings}, [float(west), float(south), float(east), float(north)]


# -------------------------------------------------------------------------------------------- datacube


def _spatial_dimension(ds: xr.Dataset, geobox: GeoBox, axis: str) -> dict[str, Any]:
    values = ds[axis].values
    res = geobox.resolution.x if axis == "x" else geobox.resolution.y
    epsg = _epsg(geobox)
    return {
        "type": "spatial",
        "axis": axis,
        "description": f"{axis} of the pixel centres, in the units of the CRS",
        "extent": [float(values.min()), float(values.max())],
        "step": float(abs(res)),
        "reference_system": epsg if epsg is not None else _wkt2(geobox),
    }


def _time_dimension(quarters: Sequence[Quarter]) -> dict[str, Any]:
    starts = [_iso(q.start) for q in quarters]
    return {
        "type": "temporal",
        "description": "first day of each quarter; time_bnds holds [start, next quarter start)",
        "extent": [starts[0], starts[-1]],
        "values": starts,
        "step": "P3M" if _consecutive(quarters) else None,
    }


def _other_dimension(ds: xr.Dataset, dim: str) -> dict[str, Any]:
    return {
        "type": "index",
        "description": f"position along {dim!r} (for time_bnds: 0 start, 1 end)",
        "extent": [0, int(ds.sizes[dim]) - 1],
        "step": 1,
    }


def _cube_dimensions(ds: xr.Dataset, geobox: GeoBox, quarters: Sequence[Quarter]) -> dict[str, Any]:
    dims: dict[str, Any] = {"time": _time_dimension(quarters)}
    dims.update({axis: _spatial_dimension(ds, geobox, axis) for axis in ("x", "y")})
    for dim in ds.dims:
        if dim not in dims:
            dims[str(dim)] = _other_dimension(ds, str(dim))
    return dims


def _described(ds: xr.Dataset) -> Iterator[tuple[str, xr.DataArray]]:
    """Data variables, then non-index coordinates with dimensions (``time_bnds``; not ``spatial_ref``)."""
    for name, var in ds.data_vars.items():
        yield str(name), var
    for name, coord in ds.coords.items():
        if name not in ds.dims and coord.ndim > 0:
            yield str(name), coord


def _is_data(name: str, var: xr.DataArray, ds: xr.Dataset) -> bool:
    bounds = {v.attrs.get("bounds") for v in ds.variables.values()}
    return np.issubdtype(var.dtype, np.floating) and "flag_values" not in var.attrs and name not in bounds


def _flags(var: xr.DataArray) -> tuple[list[Any], list[str]]:
    values = np.atleast_1d(np.asarray(var.attrs["flag_values"])).tolist()
    meanings = str(var.attrs.get("flag_meanings", "")).split()
    return values, meanings


def _long_name(name: str, var: xr.DataArray, ds: xr.Dataset) -> str:
    if "long_name" in var.attrs:
        return str(var.attrs["long_name"])
    bounded = [str(k) for k, v in ds.variables.items() if v.attrs.get("bounds") == name]
    return f"bounds of {bounded[0]}: [start, end)" if bounded else name


def _cube_variable(name: str, var: xr.DataArray, ds: xr.Dataset) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "dimensions": [str(d) for d in var.dims],
        "type": "data" if _is_data(name, var, ds) else "auxiliary",
        "description": _long_name(name, var, ds),
    }
    if "units" in var.attrs:
        entry["unit"] = str(var.attrs["units"])
    if "flag_values" in var.attrs:
        values, meanings = _flags(var)
        entry["values"] = values
        if len(meanings) == len(values):
            codes = ", ".join(f"{v} {m}" for v, m in zip(values, meanings, strict=True))
            entry["description"] += f" ({codes})"
    return entry


def _cube_variables(ds: xr.Dataset) -> dict[str, Any]:
    return {name: _cube_variable(name, var, ds) for name, var in _described(ds)}


# ---------------------------------------------------------------------------------------------- assets


def _lineage(ds: xr.Dataset) -> str:
    corrected = any(str(name).endswith("_uncorrected") for name in ds.data_vars)
    text = (
        "Coarse (about 500 m) GPP/NPP summed to quarters were downscaled to 30 m over forests with one "
        "deep-learning model (DNN, CNN, BPNN or RNN) per forest type, trained on pure coarse pixels against "
        "Landsat 8/9 quarterly composites, vegetation indices, terrain and meteorology, following "
        f"{_PAPER}."
    )
    if corrected:
        text += (
            " gpp/npp are mass-preserving: re-aggregated to the coarse grid they give back the coarse "
            "values; *_uncorrected hold the model predictions before that correction."
        )
    return text


def _zarr_asset(zarr_href: str, geobox: GeoBox, *, title: str, created: str) -> dict[str, Any]:
    return {
        "href": zarr_href,
        "type": ZARR_MEDIA_TYPE,
        "roles": ["data"],
        "title": title,
        "description": "Zarr 3 group; open with xarray.open_dataset(href, **xarray:open_kwargs)",
        "created": created,
        "zarr:zarr_format": 3,
        "zarr:node_type": "group",
        "zarr:consolidated": False,
        "xarray:open_kwargs": dict(OPEN_KWARGS),
        **_proj_fields(geobox),
    }


def _provider(ds: xr.Dataset, software: Mapping[str, str], created: str) -> dict[str, Any]:
    return {
        "name": "gppscale",
        "description": "the gppscale run that produced this collection",
        "roles": ["producer", "processor"],
        "processing:level": _LEVEL,
        "processing:lineage": _lineage(ds),
        "processing:software": {str(k): str(v) for k, v in software.items()},
        "processing:datetime": created,
    }


def _collection_id(run_name: str) -> str:
    return f"gppscale-{run_name}"


# ------------------------------------------------------------------------------------------ public API


def output_collection(
    ds: xr.Dataset,
    geobox: GeoBox,
    *,
    run_name: str,
    zarr_href: str,
    created: datetime,
    software: Mapping[str, str],
    inputs: Mapping[str, str],
) -> dict[str, Any]:
    """A STAC 1.1 Collection (as a dict) that describes the 30 m output cube of one run.

    It holds the lon/lat bbox of the grid, the temporal interval from the first quarter's first second
    to the last quarter's last second, ``cube:dimensions``/``cube:variables`` (see the module docstring
    for what the extents mean), the ``gppscale`` provider with the processing fields, the input
    fingerprints under ``gppscale:inputs``, one ``zarr`` asset, and a ``store`` link to the Zarr group.
    Its links hold only ``root`` and ``store``; :func:`write_output_stac` adds ``self`` and ``item``.

    Args:
        ds: The output Dataset (dims ``time``, ``y``, ``x``), as written or lazily opened.
        geobox: The run's 30 m grid; ``ds``'s ``x``/``y`` must be its pixel centres.
        run_name: The run's name; the id is ``gppscale-<run_name>``.
        zarr_href: Absolute URL of the Zarr group (``s3://bucket/run/gpp.zarr`` or a local path).
        created: When the outputs were made (timezone-aware).
        software: Name -> version of the software involved (``processing:software``).
        inputs: Input file -> SHA-256 (``gppscale:inputs``).

    Raises:
        ValueError: If the time values are not quarter starts, ``x``/``y`` are not the grid's pixel
            centres, the grid is rotated, or ``created`` is naive.

    Example:
        >>> import datetime as dt
        >>> import numpy as np, pystac, xarray as xr
        >>> from odc.geo.geobox import GeoBox
        >>> from odc.geo.xr import xr_coords
        >>> gb = GeoBox.from_bbox((500000, 4400000, 500150, 4400120), "epsg:32650", resolution=30)
        >>> t = np.array(["2021-07-01"], dtype="datetime64[ns]")
        >>> ds = xr.Dataset({"gpp": (("time", "y", "x"), np.zeros((1, *gb.shape), "float32"))},
        ...                 coords={"time": t, **xr_coords(gb)})
        >>> d = output_collection(ds, gb, run_name="demo", zarr_href="s3://bucket/demo/gpp.zarr",
        ...                       created=dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc),
        ...                       software={"gppscale": "0.1"}, inputs={"search/landsat.parquet": "ab12"})
        >>> d["id"], d["extent"]["temporal"]["interval"]
        ('gppscale-demo', [['2021-07-01T00:00:00Z', '2021-09-30T23:59:59Z']])
        >>> d["cube:dimensions"]["x"]["extent"], d["assets"]["zarr"]["proj:code"]
        ([499995.0, 500145.0], 'EPSG:32650')
        >>> pystac.Collection.from_dict(d).id
        'gppscale-demo'
    """
    _check_grid(ds, geobox)
    quarters = _quarters(ds)
    when = _utc_iso(created)
    _, bbox = _footprint(geobox)
    return {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": list(EXTENSIONS.values()),
        "id": _collection_id(run_name),
        "title": f"gppscale {run_name}: 30 m quarterly forest GPP and NPP",
        "description": (
            f"30 m quarterly gross and net primary production (gC m-2 quarter-1) over forests, run "
            f"{run_name!r}, downscaled from a coarse product by gppscale. All quarters are one Zarr 3 "
            "group (asset `zarr`); each Item is one quarter of it (asset field `gppscale:time_index`). "
            "`gppscale:inputs` lists the SHA-256 of the run's inputs."
        ),
        "keywords": list(_KEYWORDS),
        "license": "other",
        "providers": [_provider(ds, software, when)],
        "extent": {
            "spatial": {"bbox": [bbox]},
            "temporal": {"interval": [[_iso(quarters[0].start), _last_second(quarters[-1])]]},
        },
        "summaries": {"gppscale:quarter": [q.label for q in quarters]},
        "cube:dimensions": _cube_dimensions(ds, geobox, quarters),
        "cube:variables": _cube_variables(ds),
        "gppscale:inputs": {str(k): str(v) for k, v in sorted(inputs.items())},
        "assets": {"zarr": _zarr_asset(zarr_href, geobox, title="30 m GPP/NPP, all quarters", created=when)},
        "links": [
            {"rel": "root", "href": "./collection.json", "type": "application/json"},
            {"rel": "store", "href": zarr_href, "type": ZARR_MEDIA_TYPE, "title": "Zarr store"},
        ],
    }


def _item(
    quarter: Quarter,
    index: int,
    geobox: GeoBox,
    footprint: tuple[dict[str, Any], list[float]],
    *,
    collection_id: str,
    zarr_href: str,
    created: str,
) -> dict[str, Any]:
    geometry, bbox = footprint
    title = f"30 m GPP/NPP, all quarters; {quarter.label} is time index {index}"
    asset = _zarr_asset(zarr_href, geobox, title=title, created=created)
    asset["gppscale:time_index"] = index
    up = "../collection.json"
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [EXTENSIONS[k] for k in ("projection", "processing", "zarr", "xarray")],
        "id": f"{collection_id}-{quarter.label}",
        "collection": collection_id,
        "geometry": geometry,
        "bbox": bbox,
        "properties": {
            "datetime": None,
            "start_datetime": _iso(quarter.start),
            "end_datetime": _last_second(quarter),
            "created": created,
            "gppscale:quarter": quarter.label,
            "processing:level": _LEVEL,
            "processing:datetime": created,
            **_proj_fields(geobox),
        },
        "links": [
            {"rel": rel, "href": up, "type": "application/json"} for rel in ("root", "parent", "collection")
        ],
        "assets": {"zarr": asset},
    }


def output_items(
    ds: xr.Dataset, geobox: GeoBox, *, run_name: str, zarr_href: str, created: datetime
) -> list[dict[str, Any]]:
    """One STAC Item (as a dict) per quarter of the output cube, in time order.

    Each Item has id ``gppscale-<run_name>-<YYYYQn>``, the grid's lon/lat footprint (densified before
    reprojection, so curved edges are followed) and bbox, ``datetime`` null with ``start_datetime`` the
    quarter's first second and ``end_datetime`` its last (``...T23:59:59Z``), the projection fields, and
    a ``zarr`` asset pointing at the whole store with ``gppscale:time_index`` = the quarter's position
    along ``time``. Links ``root``/``parent``/``collection`` are ``../collection.json`` (the layout that
    :func:`write_output_stac` writes).

    Raises:
        ValueError: As :func:`output_collection`.

    Example:
        >>> import datetime as dt
        >>> import numpy as np, xarray as xr
        >>> from odc.geo.geobox import GeoBox
        >>> from odc.geo.xr import xr_coords
        >>> gb = GeoBox.from_bbox((500000, 4400000, 500150, 4400120), "epsg:32650", resolution=30)
        >>> t = np.array(["2021-01-01", "2021-04-01"], dtype="datetime64[ns]")
        >>> ds = xr.Dataset({"gpp": (("time", "y", "x"), np.zeros((2, *gb.shape), "float32"))},
        ...                 coords={"time": t, **xr_coords(gb)})
        >>> items = output_items(ds, gb, run_name="demo", zarr_href="/data/demo/gpp.zarr",
        ...                      created=dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc))
        >>> [(i["id"], i["properties"]["end_datetime"]) for i in items]
        [('gppscale-demo-2021Q1', '2021-03-31T23:59:59Z'), ('gppscale-demo-2021Q2', '2021-06-30T23:59:59Z')]
        >>> items[1]["assets"]["zarr"]["gppscale:time_index"]
        1
    """
    _check_grid(ds, geobox)
    when = _utc_iso(created)
    cid = _collection_id(run_name)
    footprint = _footprint(geobox)
    return [
        _item(q, i, geobox, footprint, collection_id=cid, zarr_href=zarr_href, created=when)
        for i, q in enumerate(_quarters(ds))
    ]


def _item_rel(item_id: str) -> str:
    return f"{ITEMS_REL}/{item_id}.json"


def _remove_stale_items(store: RunStore, keep: set[str]) -> None:
    for name in store.listdir(ITEMS_REL):
        if name.endswith(".json") and name not in keep:
            store.remove(f"{ITEMS_REL}/{name}")


def write_output_stac(
    store: RunStore,
    ds: xr.Dataset,
    geobox: GeoBox,
    *,
    run_name: str,
    zarr_rel: str = "gpp.zarr",
    created: datetime,
    software: Mapping[str, str],
    inputs: Mapping[str, str],
) -> str:
    """Write the output Collection and its Items into the run store; return the Collection's URL.

    Items go to ``stac/items/<id>.json`` first (with an absolute ``self`` link), then
    ``stac/collection.json`` with ``item`` links ``./items/<id>.json`` and an absolute ``self`` link, so
    a Collection on disk always has its Items. Item files of an earlier write that no longer match a
    quarter are removed. The assets' href is the absolute store URL of ``zarr_rel``.

    Returns:
        ``store.join("stac/collection.json")``; ``pystac.read_file`` opens it when the store is local.

    Raises:
        ValueError: As :func:`output_collection`.
        StoreError: If the store cannot be written.

    Example:
        See the module docstring.
    """
    href = store.join(zarr_rel)
    collection = output_collection(
        ds, geobox, run_name=run_name, zarr_href=href, created=created, software=software, inputs=inputs
    )
    items = output_items(ds, geobox, run_name=run_name, zarr_href=href, created=created)
    for item in items:
        rel = _item_rel(item["id"])
        item["links"].append({"rel": "self", "href": store.join(rel), "type": "application/geo+json"})
        store.write_json(rel, item)
    _remove_stale_items(store, {f"{item['id']}.json" for item in items})
    collection["links"] += [
        {"rel": "item", "href": f"./items/{i['id']}.json", "type": "application/geo+json"} for i in items
    ]
    collection["links"].append(
        {"rel": "self", "href": store.join(COLLECTION_REL), "type": "application/json"}
    )
    store.write_json(COLLECTION_REL, collection)
    return store.join(COLLECTION_REL)


# -------------------------------------------------------------------------------------------- manifest


def _refuse_secrets(obj: Any, where: str) -> None:  # noqa: ANN401 - any JSON value
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            path = f"{where}.{key}" if where else str(key)
            if _SECRET_KEY.search(str(key)):
                raise SpecError(f"run spec key {path!r} looks like a credential; {_CREDENTIALS_FIX}")
            _refuse_secrets(value, path)
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            _refuse_secrets(value, f"{where}[{i}]")
    elif isinstance(obj, str) and _URL_WITH_PASSWORD.match(obj):
        raise SpecError(f"run spec value at {where!r} is a URL with a password in it; {_CREDENTIALS_FIX}")


def _json_copy(obj: Any, what: str) -> Any:  # noqa: ANN401 - any JSON value
    try:
        return json.loads(json.dumps(obj, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise SpecError(f"{what} is not plain JSON data ({e}); pass spec.to_dict()") from e


def _timings(timings_s: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for stage, seconds in timings_s.items():
        if not np.isfinite(seconds) or seconds < 0:
            raise ValueError(f"timing of stage {stage!r} is {seconds!r} s; give a finite duration >= 0")
        out[str(stage)] = float(seconds)
    return out


def _strings(mapping: Mapping[str, str]) -> dict[str, str]:
    return {str(k): str(v) for k, v in sorted(mapping.items())}


def run_manifest(
    spec_dict: Mapping[str, Any],
    *,
    versions: Mapping[str, str],
    inputs: Mapping[str, str],
    timings_s: Mapping[str, float],
    outputs: Mapping[str, str],
    created: datetime,
) -> dict[str, Any]:
    """The run manifest: what was run, with what, on what, how long it took and what it made.

    Args:
        spec_dict: The resolved run spec as plain JSON data (``spec.to_dict()``); copied, not kept.
        versions: Software name -> version (:func:`package_versions`).
        inputs: Input file -> SHA-256.
        timings_s: Stage -> wall time in seconds.
        outputs: Output file or store -> checksum.
        created: When the manifest was made (timezone-aware); written as RFC 3339 UTC.

    Returns:
        ``{"format": "gppscale-manifest/1", "created", "spec", "versions", "inputs", "outputs",
        "timings_s"}``.

    Raises:
        SpecError: If a key anywhere in the spec looks like a credential (its name contains ``secret``,
            ``password``, ``token``, ``access_key``, ``credential``, ``api_key`` or ``private_key``, in
            any case), a value is a URL with a password, or the spec is not plain JSON data. The message
            names the key, never the value.
        ValueError: If a timing is negative or not finite, or ``created`` is naive.

    Example:
        >>> import datetime as dt
        >>> when = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
        >>> m = run_manifest({"name": "demo"}, versions={"gppscale": "0.1"}, inputs={"a.parquet": "ab"},
        ...                  timings_s={"cube": 12.5}, outputs={}, created=when)
        >>> m["format"], m["created"], m["timings_s"]
        ('gppscale-manifest/1', '2024-05-01T00:00:00Z', {'cube': 12.5})
        >>> run_manifest({"catalog": {"AWS_Secret_Access_Key": "x"}}, versions={}, inputs={},
        ...              timings_s={}, outputs={}, created=when)
        Traceback (most recent call last):
        ...
        gppscale.errors.SpecError: run spec key 'catalog.AWS_Secret_Access_Key' looks like a credential; ...
    """
    _refuse_secrets(spec_dict, "")
    return {
        "format": MANIFEST_FORMAT,
        "created": _utc_iso(created),
        "spec": _json_copy(dict(spec_dict), "the run spec"),
        "versions": _strings(versions),
        "inputs": _strings(inputs),
        "outputs": _strings(outputs),
        "timings_s": _timings(timings_s),
    }


def write_manifest(store: RunStore, manifest: Mapping[str, Any]) -> None:
    """Write ``manifest`` (from :func:`run_manifest`) to ``<store>/manifest.json``, atomically.

    Raises:
        ValueError: If ``manifest`` is not a ``gppscale-manifest/1`` document.
        StoreError: If the store cannot be written.

    Example:
        >>> import datetime as dt, tempfile
        >>> from gppscale.io.store import RunStore
        >>> store = RunStore(tempfile.mkdtemp())
        >>> m = run_manifest({}, versions={}, inputs={}, timings_s={}, outputs={},
        ...                  created=dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc))
        >>> write_manifest(store, m)
        >>> store.read_json("manifest.json")["format"]
        'gppscale-manifest/1'
    """
    if manifest.get("format") != MANIFEST_FORMAT:
        found = manifest.get("format")
        raise ValueError(
            f"manifest format is {found!r}, not {MANIFEST_FORMAT!r}; build it with run_manifest()"
        )
    store.write_json(MANIFEST_REL, dict(manifest))


def _dist_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return _NOT_INSTALLED


def _gdal_version() -> str:
    try:
        import rasterio
    except ImportError:
        return _NOT_INSTALLED
    return str(rasterio.__gdal_version__)


def package_versions() -> dict[str, str]:
    """Versions of Python, GDAL and the packages a run's results depend on; ``"not installed"`` if absent.

    Keys: ``python``, ``gdal`` and the distribution names ``gppscale``, ``numpy``, ``xarray``, ``dask``,
    ``distributed``, ``zarr``, ``odc-stac``, ``odc-geo``, ``pystac``, ``rasterio``, ``torch``, ``pyproj``.

    Example:
        >>> v = package_versions()
        >>> sorted(v)[:4], v["python"].count(".")
        (['dask', 'distributed', 'gdal', 'gppscale'], 2)
    """
    found = {"python": platform.python_version(), "gdal": _gdal_version()}
    found.update({name: _dist_version(name) for name in _VERSIONED})
    return found
