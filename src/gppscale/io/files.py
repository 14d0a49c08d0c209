r"""Coarse GPP/NPP items from local files, shaped like the STAC items of a coarse collection.

When ``collections.coarse_gpp.files`` (or ``coarse_npp``) is set, the search stage builds that role's
items from local rasters instead of searching the catalog: one item per file, dated by a regex on the
file name (``file_date``, GLASS's ``A2021161`` by default) and standing for ``window_days`` days from
that date, clipped at the year's end. Each item carries what the rest of gppscale reads from a STAC
item: ``start_datetime``/``end_datetime``, ``proj:code`` (or ``proj:wkt2``), ``proj:shape``,
``proj:transform``, a lon/lat footprint (``geometry``, ``bbox``) and one asset. Its href is a
``file://`` URL for a plain raster (GeoTIFF) or, for a container (HDF4, HDF5, NetCDF), GDAL's name of
the chosen subdataset behind GDAL's ``vrt://`` prefix, e.g. ``vrt://HDF4_EOS:EOS_GRID:"/d/f.hdf":G:GPP``:
pystac sees no URL scheme in a bare ``HDF4_EOS:...`` name and odc-stac then refuses the asset, while
GDAL (>= 3.1) opens ``vrt://<dataset name>`` as that dataset.

The date rules are pure functions; opening the rasters happens in :func:`file_item` only.

Example:
    >>> first = date_from_name("GLASS_GPP_A2021361_h26v04.tif", r"A(?P<year>\d{4})(?P<doy>\d{3})")
    >>> file_window(first, 8)
    (datetime.date(2021, 12, 27), datetime.date(2021, 12, 31))
"""

from __future__ import annotations

import functools
import glob
import json
import re
import warnings
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from affine import Affine
from odc.geo.geobox import GeoBox
from pyproj import CRS, Transformer
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from gppscale.config import CoarseCollection
from gppscale.errors import CatalogError, DataWarning, MissingDependencyError, NoDataError

__all__ = [
    "date_from_name",
    "file_item",
    "file_items",
    "file_window",
    "files_signature",
    "footprint_lonlat",
    "gdal_drivers",
    "match_files",
]

Item = dict[str, Any]

_HDF4_SUFFIXES = frozenset({".hdf", ".hdf4", ".h4", ".he4"})
_HDF4_MAGIC = b"\x0e\x03\x13\x01"
_MEDIA_TYPES = {
    "GTiff": "image/tiff; application=geotiff",
    "COG": "image/tiff; application=geotiff",
    "HDF4": "application/x-hdf",
    "HDF4Image": "application/x-hdf",
    "HDF5": "application/x-hdf5",
    "HDF5Image": "application/x-hdf5",
    "netCDF": "application/netcdf",
}
_EXTENSIONS = [
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/file/v2.1.0/schema.json",
]
_LIST_AT_MOST = 20


# --- dates (pure) ----------------------------------------------------------------------------------


def date_from_name(name: str, pattern: str) -> date | None:
    r"""The date that ``pattern`` finds in a file name; ``None`` when it finds nothing.

    ``pattern`` has named groups ``year`` and ``doy`` (day of year, 1 = 1 January), or ``year``,
    ``month`` and ``day``.

    Raises:
        ValueError: If the name matches but the numbers are no date (day 366 of 2021, month 13).

    Example:
        >>> date_from_name("GLASS_GPP_A2020366.hdf", r"A(?P<year>\d{4})(?P<doy>\d{3})")
        datetime.date(2020, 12, 31)
        >>> date_from_name("gpp_20210610.tif", r"(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})")
        datetime.date(2021, 6, 10)
        >>> date_from_name("readme.txt", r"A(?P<year>\d{4})(?P<doy>\d{3})") is None
        True
    """
    found = re.search(pattern, name)
    if found is None:
        return None
    parts = {k: int(v) for k, v in found.groupdict().items() if v is not None}
    if "doy" not in parts:
        return date(parts["year"], parts["month"], parts["day"])
    first = date(parts["year"], 1, 1)
    if not 1 <= parts["doy"] <= date(parts["year"], 12, 31).timetuple().tm_yday:
        raise ValueError(f"day of year {parts['doy']} does not exist in {parts['year']}")
    return first + timedelta(days=parts["doy"] - 1)


def file_window(first: date, window_days: int) -> tuple[date, date]:
    """First and last day (inclusive) a file stands for: ``window_days`` from ``first``, within its year.

    Example:
        >>> file_window(date(2020, 12, 26), 8)  # GLASS's last window of a leap year: 6 days
        (datetime.date(2020, 12, 26), datetime.date(2020, 12, 31))
        >>> file_window(date(2021, 6, 10), 8)
        (datetime.date(2021, 6, 10), datetime.date(2021, 6, 17))
    """
    last = min(first + timedelta(days=window_days - 1), date(first.year, 12, 31))
    return first, last


def _overlaps(window: tuple[date, date], years: Sequence[int], margin: timedelta) -> bool:
    lo = date(min(years), 1, 1) - margin
    hi = date(max(years), 12, 31) + margin
    return window[0] <= hi and window[1] >= lo


# --- finding files ---------------------------------------------------------------------------------


def match_files(files: str) -> list[Path]:
    """The regular files a ``files`` setting names, sorted: a glob (``**`` recurses) or a folder's files.

    Example:
        >>> match_files("/definitely/not/here/*.tif")
        []
    """
    pattern = str(Path(files) / "*") if Path(files).is_dir() else files
    return sorted(p for p in map(Path, glob.glob(pattern, recursive=True)) if p.is_file())


def files_signature(files: str) -> list[tuple[str, int, int]]:
    """``(path, size in bytes, mtime in ns)`` of every matched file: changes when any file does."""
    return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in match_files(files)]


def _dated(
    paths: Sequence[Path], pattern: str, window_days: int
) -> tuple[list[tuple[Path, tuple[date, date]]], list[str]]:
    """Each path with its window, and ``"name: reason"`` for the paths that have none."""
    dated: list[tuple[Path, tuple[date, date]]] = []
    undated: list[str] = []
    for path in paths:
        try:
            first = date_from_name(path.name, pattern)
        except ValueError as e:
            undated.append(f"{path.name}: {e}")
            continue
        if first is None:
            undated.append(f"{path.name}: no match")
        else:
            dated.append((path, file_window(first, window_days)))
    return dated, undated


def _listed(lines: Sequence[str]) -> str:
    shown = "\n".join(f"  {line}" for line in lines[:_LIST_AT_MOST])
    more = f"\n  ... and {len(lines) - _LIST_AT_MOST} more" if len(lines) > _LIST_AT_MOST else ""
    return shown + more


# --- opening rasters -------------------------------------------------------------------------------


@functools.cache
def gdal_drivers() -> frozenset[str]:
    """Short names of the GDAL raster and vector drivers of this rasterio build."""
    with rasterio.Env() as env:
        return frozenset(env.drivers())


def _is_hdf4(path: Path) -> bool:
    if path.suffix.lower() in _HDF4_SUFFIXES:
        return True
    with path.open("rb") as f:
        return f.read(4) == _HDF4_MAGIC


def _require_driver(path: Path) -> None:
    if _is_hdf4(path) and "HDF4" not in gdal_drivers():
        raise MissingDependencyError(
            f"{str(path)!r} is an HDF4 file, but this GDAL build (GDAL {rasterio.__gdal_version__} in "
            f"rasterio {rasterio.__version__}) has no HDF4 driver (the rasterio wheels on PyPI are built "
            "without it). Convert the files to GeoTIFF with a GDAL that reads HDF4 (check with "
            "`gdalinfo --formats | grep HDF4`): `gdalinfo f.hdf` lists the subdatasets, then "
            "`gdal_translate 'HDF4_EOS:EOS_GRID:\"f.hdf\":GRID:GPP' f.tif` and point 'files' at the .tif "
            "files; or install a rasterio built against a GDAL with the HDF4 driver"
        )


def _open(name: str, what: str) -> rasterio.DatasetReader:
    try:
        return rasterio.open(name)
    except RasterioIOError as e:
        raise CatalogError(
            f"cannot open {what} {name!r} ({e}); 'files' must name rasters GDAL can read "
            "(GeoTIFF, or HDF4/HDF5/NetCDF with 'subdataset' set)"
        ) from e


def _subdatasets(src: rasterio.DatasetReader) -> list[tuple[str, str]]:
    """``(GDAL name, description)`` of each subdataset of an open container, in GDAL's order."""
    tags = src.tags(ns="SUBDATASETS")
    count = sum(1 for key in tags if key.endswith("_NAME"))
    return [(tags[f"SUBDATASET_{i}_NAME"], tags.get(f"SUBDATASET_{i}_DESC", "")) for i in range(1, count + 1)]


def _is_named(name: str, desc: str, wanted: str) -> bool:
    """Whether a subdataset is ``wanted``: its GDAL name ends with it, or its description names it.

    GDAL names end with the variable for NetCDF/HDF5/HDF-EOS (``...:GPP``) but with an index for plain
    HDF4 scientific datasets (``HDF4_SDS:UNKNOWN:"f.hdf":0``), whose description holds the name
    (``[2400x2400] GPP (16-bit unsigned integer)``).
    """
    described = desc.split("] ", 1)[-1].split(" ", 1)[0].lstrip("/")
    return name.endswith(wanted) or described == wanted


def _pick_subdataset(path: Path, subs: Sequence[tuple[str, str]], wanted: str | None, role: str) -> str:
    listing = _listed([f"{name}  {desc}" for name, desc in subs])
    if wanted is None:
        raise CatalogError(
            f"{str(path)!r} (role {role}) is a container of {len(subs)} subdatasets; set "
            f"collections.{role}.subdataset to the variable to read (e.g. GPP). Available:\n{listing}"
        )
    chosen = [name for name, desc in subs if _is_named(name, desc, wanted)]
    if len(chosen) != 1:
        problem = "no subdataset" if not chosen else f"{len(chosen)} subdatasets"
        raise CatalogError(
            f"{str(path)!r} (role {role}): {problem} named {wanted!r}; set collections.{role}.subdataset "
            f"to the end of exactly one of these names:\n{listing}"
        )
    return chosen[0]


def _href_of(path: Path, subdataset: str | None, role: str) -> tuple[str, str]:
    """The href odc-stac reads for ``path`` (see the module docstring) and the file's GDAL driver."""
    with warnings.catch_warnings():
        # A container has no geotransform of its own; its subdatasets do.
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with _open(str(path), "file") as src:
            subs, driver = _subdatasets(src), src.driver
    if not subs:
        if subdataset is not None:
            raise CatalogError(
                f"{str(path)!r} (role {role}) has no subdatasets, but collections.{role}.subdataset is "
                f"{subdataset!r}; remove 'subdataset' to read the file itself"
            )
        return path.as_uri(), driver
    return "vrt://" + _pick_subdataset(path, subs, subdataset, role), driver


def _grid_of(href: str, path: Path) -> tuple[GeoBox, dict[str, Any]]:
    """The pixel grid of ``href`` and its ``raster:bands`` entry."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # checked below, with a better message
        with _open(href, "raster") as src:
            crs, transform, shape = src.crs, src.transform, (src.height, src.width)
            band: dict[str, Any] = {"data_type": src.dtypes[0]}
            if src.nodata is not None and np.isfinite(src.nodata):
                band["nodata"] = src.nodata
    if crs is None:
        raise CatalogError(
            f"{href!r} (file {str(path)!r}) has no CRS; give the files one, e.g. gdal_translate -a_srs "
            "'+proj=sinu +R=6371007.181 +units=m' -a_ullr ULX ULY LRX LRY in.hdf out.tif"
        )
    return GeoBox(shape, Affine(*transform[:6]), crs.to_wkt()), band


def _proj_fields(gbox: GeoBox) -> dict[str, Any]:
    assert gbox.crs is not None  # _grid_of always gives one
    # Only an exact match: an EPSG code that is merely close would make odc-stac resample the file.
    epsg = gbox.crs.proj.to_epsg(min_confidence=100)
    crs = {"proj:code": f"EPSG:{epsg}"} if epsg is not None else {"proj:wkt2": gbox.crs.to_wkt()}
    return {**crs, "proj:shape": list(gbox.shape.yx), "proj:transform": list(gbox.transform)[:6]}


# --- footprints ------------------------------------------------------------------------------------


def _natural_origin_lon(crs: CRS) -> float:
    op = crs.coordinate_operation
    params = {p.name: p.value for p in op.params} if op is not None else {}
    return float(params.get("Longitude of natural origin", 0.0))


def _sinusoidal_domain(crs: CRS) -> Polygon | None:
    """Where a sinusoidal CRS is defined, in its own coordinates; ``None`` for other CRSs.

    PROJ's inverse sinusoidal does not refuse points beyond the ±180° meridians: it wraps their
    longitude round the globe, so a MODIS tile at the world's edge would get a footprint on the
    other side of the antimeridian. Clipping the tile to this domain first avoids that.
    """
    op = crs.coordinate_operation
    if op is None or op.method_name != "Sinusoidal":
        return None
    lon0, lats = _natural_origin_lon(crs), np.linspace(-90.0, 90.0, 721)
    edge = 180.0 - 1e-7  # just inside, so the edge keeps its side of the antimeridian
    lons = np.concatenate([np.full_like(lats, lon0 + edge), np.full_like(lats, lon0 - edge)])
    to_native = Transformer.from_crs(crs.geodetic_crs, crs, always_xy=True)
    xs, ys = to_native.transform(lons, np.concatenate([lats, lats[::-1]]))
    return Polygon(zip(xs, ys, strict=True))


def footprint_lonlat(gbox: GeoBox) -> BaseGeometry:
    """The lon/lat (EPSG:4326) outline of a pixel grid, densified (about 100 points a side).

    A sinusoidal grid is first clipped to where the projection is defined (see
    :func:`_sinusoidal_domain`).

    Raises:
        CatalogError: If the grid lies wholly outside its projection's domain.
    """
    assert gbox.crs is not None
    crs: CRS = gbox.crs.proj
    outline: BaseGeometry = gbox.extent.geom
    domain = _sinusoidal_domain(crs)
    if domain is not None:
        outline = outline.intersection(domain)
    if outline.is_empty:
        raise CatalogError(f"the grid {gbox!r} lies outside the domain of its CRS; check its georeference")
    x0, y0, x1, y1 = outline.bounds
    dense = shapely.segmentize(outline, max(x1 - x0, y1 - y0) / 100)
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lonlat = shapely.transform(dense, lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1])))
    return lonlat if lonlat.is_valid else lonlat.buffer(0)


# --- items -----------------------------------------------------------------------------------------


def _utc(day: date, end_of_day: bool) -> str:
    return f"{day:%Y-%m-%d}T23:59:59Z" if end_of_day else f"{day:%Y-%m-%d}T00:00:00Z"


def _asset(href: str, driver: str, band: dict[str, Any], path: Path) -> dict[str, Any]:
    stat = path.stat()
    updated = datetime.fromtimestamp(stat.st_mtime_ns / 1e9, UTC)
    asset: dict[str, Any] = {"href": href, "roles": ["data"], "raster:bands": [band]}
    if driver in _MEDIA_TYPES:
        asset["type"] = _MEDIA_TYPES[driver]
    # Size and time stamp make the frozen item (and so every later stage's fingerprint) change when a
    # file is replaced under the same name.
    return asset | {"file:size": stat.st_size, "updated": updated.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}


def file_item(
    path: Path, window: tuple[date, date], asset_key: str, *, role: str, subdataset: str | None = None
) -> Item:
    """A STAC-like item (a plain dict) for one file standing for the days ``window`` (inclusive).

    ``role`` (``coarse_gpp``...) only names the setting to change in error messages.

    Raises:
        MissingDependencyError: For an HDF4 file when GDAL has no HDF4 driver.
        CatalogError: If the file cannot be opened, has no CRS, or its subdataset cannot be chosen.
    """
    path = path.resolve()
    _require_driver(path)
    href, driver = _href_of(path, subdataset, role)
    gbox, band = _grid_of(href, path)
    footprint = footprint_lonlat(gbox)
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": list(_EXTENSIONS),
        "id": path.stem,
        "geometry": json.loads(shapely.to_geojson(footprint)),
        "bbox": [float(v) for v in footprint.bounds],
        "properties": {
            "datetime": None,
            "start_datetime": _utc(window[0], end_of_day=False),
            "end_datetime": _utc(window[1], end_of_day=True),
            **_proj_fields(gbox),
        },
        "assets": {asset_key: _asset(href, driver, band, path)},
        "links": [],
    }


def _check_unique_ids(paths: Sequence[Path], role: str) -> None:
    seen: dict[str, Path] = {}
    for path in paths:
        if path.stem in seen:
            raise CatalogError(
                f"role {role}: files {str(seen[path.stem])!r} and {str(path)!r} share the item id "
                f"{path.stem!r} (the file name without its suffix); narrow collections.{role}.files"
            )
        seen[path.stem] = path


def _in_years(
    collection: CoarseCollection, role: str, years: Sequence[int], margin: timedelta
) -> list[tuple[Path, tuple[date, date]]]:
    """The matched, dated files whose windows overlap ``years`` (± ``margin``); warns about undated ones."""
    assert collection.files is not None
    paths = match_files(collection.files)
    if not paths:
        raise NoDataError(
            f"collections.{role}.files {collection.files!r} matches no file; check the path (relative "
            "paths start at the spec file's folder) or give a folder or a glob such as /data/glass/*.tif"
        )
    dated, undated = _dated(paths, collection.file_date, collection.window_days)
    if undated:
        warnings.warn(
            f"collections.{role}.files: skipped {len(undated)} of {len(paths)} file(s) whose name gives no "
            f"date with file_date {collection.file_date!r}:\n{_listed(undated)}",
            DataWarning,
            stacklevel=3,
        )
    kept = [(path, window) for path, window in dated if _overlaps(window, years, margin)]
    if not kept:
        windows = [window for _, window in dated]
        span = f"windows {min(windows)[0]} to {max(windows)[1]}" if windows else "no dated file"
        raise NoDataError(
            f"collections.{role}.files {collection.files!r}: none of {len(paths)} file(s) has a window in "
            f"the years {list(years)} ({span}); check the years, the files and file_date"
        )
    return kept


def file_items(
    collection: CoarseCollection,
    years: Sequence[int],
    *,
    role: str,
    margin: timedelta = timedelta(days=16),
) -> list[Item]:
    """Items of a coarse role built from ``collection.files``, for windows overlapping ``years``.

    Files whose name gives no date are skipped with one :class:`DataWarning`; windows outside the
    years (widened by ``margin``, as the catalog search is) are left out silently. The asset key is
    ``collection.assets["data"]``.

    Raises:
        NoDataError: If the glob matches no file, or no file's window falls in the years.
        MissingDependencyError: For HDF4 files when GDAL has no HDF4 driver.
        CatalogError: If a file cannot be opened, has no CRS, two files share an id, or a container's
            subdataset cannot be chosen.
    """
    if collection.files is None:
        raise ValueError(f"collections.{role}.files is not set; search the catalog instead")
    kept = _in_years(collection, role, years, margin)
    _check_unique_ids([path for path, _ in kept], role)
    key = collection.assets["data"]
    return [file_item(p, w, key, role=role, subdataset=collection.subdataset) for p, w in kept]
