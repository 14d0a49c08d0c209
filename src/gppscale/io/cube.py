"""Stage 3, cube: frozen STAC items → the lazy 30 m predictor cube (quarter, y, x), then Zarr.

Reading happens here (odc-stac, always onto the run's target GeoBox, in Dask chunks equal to the Zarr
chunks); the computations are the pure stages in :mod:`gppscale.stages`:

* Landsat: loaded as float32 with NaN for nodata, ``raster:bands`` scale/offset applied (odc-stac does
  not), observations flagged in QA_PIXEL (``cube.qa_mask``) dropped, scenes of one solar day fused,
  quarterly median of clear observations with ``n_clear``, then NDVI, kNDVI, EVI, NDWI, NDMI.
* DEM: bilinear to the target grid; elevation, slope, northness, eastness.
* Forest type: GLC_FCS30 codes, nearest, the map year closest to the run's years; ``forest_type`` ids
  (0 non-forest, 1 ENF, 2 DBF, 3 MF, 4 DNF, 5 EBF, 255 fill) and the raw ``land_cover`` codes.
* Meteorology: quarterly day-weighted means on the product's own grid (8-day windows prorated by day),
  temperature reduced to sea level with the DEM averaged onto that grid, bilinear to 30 m, brought back
  to the 30 m elevation with ``cube.lapse_rate_k_per_km``; shortwave times the terrain factor of
  :func:`gppscale.stages.meteo.radiation_terrain_factor` at the quarter's middle day.

Building the cube reads only metadata (the frozen items); pixels are read when regions are written.

Example:
    >>> window_of({"properties": {"start_datetime": "2021-01-01T00:00:00Z",
    ...                           "end_datetime": "2021-01-08T23:59:59Z"}})
    (numpy.datetime64('2021-01-01'), numpy.datetime64('2021-01-09'))
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pystac
import xarray as xr
from odc.geo.geobox import GeoBox

from gppscale import __version__
from gppscale.config import RunSpec
from gppscale.errors import CatalogError, DataWarning, NoDataError
from gppscale.io.access import PatchUrl
from gppscale.io.freeze import FrozenSearch, role_assets
from gppscale.plan import RunPlan
from gppscale.stages.composite import quarterly_composite
from gppscale.stages.forest import FOREST_TYPE_FILL, forest_type
from gppscale.stages.georef import spatial_ref
from gppscale.stages.indices import add_indices
from gppscale.stages.meteo import (
    quarterly_meteo,
    radiation_terrain_factor,
    temperature_at_elevation,
    temperature_to_sea_level,
)
from gppscale.stages.qa import apply_scale_offset, clear_mask, mask_bits
from gppscale.stages.quarters import Quarter
from gppscale.stages.terrain import terrain

__all__ = [
    "CUBE_VERSION",
    "SR_BANDS",
    "build_cube",
    "cube_encoding",
    "cube_fingerprint",
    "scale_offset_of",
    "window_of",
    "windows_for",
]

CUBE_VERSION = 1
"""Bumped whenever the cube's content changes for the same inputs (it is part of the fingerprint)."""

SR_BANDS = ("coastal", "blue", "green", "red", "nir08", "swir16", "swir22")
"""Canonical Landsat surface-reflectance bands in the cube."""

_METEO_VARS = ("tmean", "prcp", "srad", "vpd")
_M_PER_DEG = 111_320.0
_PAD_CELLS = 3
"""Meteorology cells loaded beyond the area on each side, so bilinear interpolation has neighbours."""

Item = Mapping[str, Any]


def _to_pystac(items: Iterable[Item]) -> list[pystac.Item]:
    return [pystac.Item.from_dict(json.loads(json.dumps(item))) for item in items]


def _day(value: str) -> np.datetime64:
    return np.datetime64(datetime.fromisoformat(value).replace(tzinfo=None), "D")


def window_of(item: Item) -> tuple[np.datetime64, np.datetime64]:
    """The days ``[start, end)`` an item's values stand for.

    ``start_datetime``/``end_datetime`` when given (an end at midnight is exclusive, any other end
    time closes its day, as in GLASS's ``...T23:59:59``), else the one day of ``datetime``.
    """
    props = item["properties"]
    start_s = props.get("start_datetime") or props.get("datetime")
    if start_s is None:
        raise CatalogError(f"item {item.get('id')!r} has neither datetime nor start_datetime")
    start = _day(start_s)
    end_s = props.get("end_datetime")
    if end_s is None:
        return start, start + np.timedelta64(1, "D")
    end_dt = datetime.fromisoformat(end_s).replace(tzinfo=None)
    end = np.datetime64(end_dt, "D")
    exclusive_midnight = end_dt.time() == datetime.min.time() and end > start
    return start, end if exclusive_midnight else end + np.timedelta64(1, "D")


def scale_offset_of(items: Sequence[Item], asset_key: str, collection: str) -> tuple[float, float]:
    """The ``raster:bands`` scale and offset of ``asset_key``, which must agree across ``items``.

    Raises:
        CatalogError: If items disagree (the message names two of them).
    """
    seen: dict[tuple[float, float], str] = {}
    for item in items:
        bands = item["assets"][asset_key].get("raster:bands") or [{}]
        pair = (float(bands[0].get("scale", 1.0)), float(bands[0].get("offset", 0.0)))
        seen.setdefault(pair, str(item["id"]))
    if len(seen) > 1:
        (a, ia), (b, ib) = list(seen.items())[:2]
        raise CatalogError(
            f"{collection!r} asset {asset_key!r}: raster:bands scale/offset differ between items "
            f"{ia!r} {a} and {ib!r} {b}; gppscale needs one scale/offset per asset — split the run"
        )
    return next(iter(seen), (1.0, 0.0))


def _load(
    items: Sequence[Item],
    bands: Sequence[str],
    geobox: GeoBox,
    chunk_px: int,
    *,
    resampling: str,
    dtype: str = "float32",
    groupby: str | Callable[[pystac.Item, Any, int], Any] = "solar_day",
    patch_url: PatchUrl | None = None,
) -> xr.Dataset:
    """Lazy odc-stac load of ``bands`` onto ``geobox`` (an explicit GeoBox: never odc's CRS guess)."""
    from odc.stac import load

    nodata: dict[str, Any] = {"nodata": float("nan")} if dtype.startswith("float") else {}
    return load(
        _to_pystac(items),
        bands=list(bands),
        geobox=geobox,
        chunks={"time": 1, "y": chunk_px, "x": chunk_px},
        resampling=resampling,
        dtype=dtype,
        groupby=groupby,
        patch_url=patch_url,
        **nodata,
    )


def _one_layer(_item: pystac.Item, _parsed: object, _idx: int) -> int:
    """odc-stac groupby key that fuses all items into one layer (tiles of a static map)."""
    return 0


def _in_quarters(items: Sequence[Item], quarters: Sequence[Quarter]) -> list[Item]:
    lo, hi = quarters[0].start, quarters[-1].end
    return [i for i in items if lo <= window_of(i)[0] < hi]


def _check_quarters_have(items: Sequence[Item], quarters: Sequence[Quarter], what: str) -> None:
    starts = np.array([window_of(i)[0] for i in items], dtype="datetime64[D]")
    ends = np.array([window_of(i)[1] for i in items], dtype="datetime64[D]")
    empty = [q.label for q in quarters if not np.any((starts < q.end) & (ends > q.start))]
    if empty:
        raise NoDataError(
            f"no {what} items for quarter(s) {', '.join(empty)}; widen catalog.max_cloud_cover_pct, check "
            "the catalog's coverage of these dates, or drop the quarters from the run spec"
        )


def landsat_predictors(
    spec: RunSpec, plan: RunPlan, items: Sequence[Item], patch_url: PatchUrl | None
) -> xr.Dataset:
    """Quarterly Landsat composites with ``n_clear`` and the spectral indices, lazily."""
    assets = role_assets(spec, "landsat")
    collection = spec.collections.landsat.id
    items = _in_quarters(items, plan.quarters)
    _check_quarters_have(items, plan.quarters, f"Landsat ({collection!r})")
    keys = [assets[b] for b in SR_BANDS]
    raw = _load(
        items,
        [*keys, assets["qa_pixel"]],
        plan.geobox,
        plan.chunk_px,
        resampling="nearest",
        patch_url=patch_url,
    )
    bands = xr.Dataset(
        {
            b: apply_scale_offset(raw[assets[b]], *scale_offset_of(items, assets[b], collection))
            for b in SR_BANDS
        }
    )
    clear = clear_mask(raw[assets["qa_pixel"]], mask_bits(spec.cube.qa_mask))
    composite = add_indices(quarterly_composite(bands, clear, plan.quarters))
    for b in SR_BANDS:
        composite[b].attrs.update(
            long_name=f"surface reflectance {b}, quarterly median of clear scenes", units="1"
        )
    return composite


def dem_elevation(
    spec: RunSpec,
    items: Sequence[Item],
    geobox: GeoBox,
    chunk_px: int,
    patch_url: PatchUrl | None,
    *,
    resampling: str = "bilinear",
) -> xr.DataArray:
    """The DEM (metres, tiles fused) on ``geobox``, lazily."""
    key = role_assets(spec, "dem")["data"]
    ds = _load(items, [key], geobox, chunk_px, resampling=resampling, groupby=_one_layer, patch_url=patch_url)
    return ds[key].isel(time=0, drop=True)


def _pick_map_year(items: Sequence[Item], years: Sequence[int]) -> list[Item]:
    """The items of the map year closest to the middle of the run (later year on a tie)."""
    by_year: dict[int, list[Item]] = {}
    for item in items:
        by_year.setdefault(int(str(window_of(item)[0])[:4]), []).append(item)
    mid = (min(years) + max(years)) / 2.0
    year = min(by_year, key=lambda y: (abs(y - mid), -y))
    return by_year[year]


def forest_predictors(
    spec: RunSpec, plan: RunPlan, items: Sequence[Item], patch_url: PatchUrl | None
) -> xr.Dataset:
    """``land_cover`` (GLC_FCS30 codes) and ``forest_type`` ids on the target grid, lazily."""
    key = role_assets(spec, "forest_type")["classification"]
    chosen = _pick_map_year(items, spec.years)
    ds = _load(
        chosen,
        [key],
        plan.geobox,
        plan.chunk_px,
        resampling="nearest",
        dtype="uint8",
        groupby=_one_layer,
        patch_url=patch_url,
    )
    codes = ds[key].isel(time=0, drop=True)
    types = forest_type(codes, spec.forest_types.code_to_type(), spec.forest_types.fill)
    codes = codes.assign_attrs(long_name="GLC_FCS30 land-cover code", units="1")
    return xr.Dataset({"land_cover": codes, "forest_type": types})


def _native_res_m(item: Item, asset_key: str) -> float:
    """Pixel size of an item's asset in metres (degrees taken as 111.32 km)."""
    asset, props = item["assets"][asset_key], item["properties"]
    transform = asset.get("proj:transform") or props["proj:transform"]
    code = str(asset.get("proj:code") or props.get("proj:code") or props.get("proj:epsg") or "")
    res = abs(float(transform[0]))
    return res * _M_PER_DEG if code in ("EPSG:4326", "4326") or res < 0.5 else res


def windows_for(times: np.ndarray, items: Sequence[Item]) -> tuple[np.ndarray, np.ndarray]:
    """Window start/end of each loaded time step, from the items of that step."""
    by_time: dict[np.datetime64, tuple[np.datetime64, np.datetime64]] = {}
    for item in items:
        props = item["properties"]
        nominal = props.get("datetime") or props.get("start_datetime")
        t = np.datetime64(datetime.fromisoformat(nominal).replace(tzinfo=None), "s")
        by_time.setdefault(t, window_of(item))
    try:
        pairs = [by_time[np.datetime64(t, "s")] for t in times]
    except KeyError as e:
        raise CatalogError(f"meteorology time step {e} matches no item's datetime") from e
    return (
        np.array([p[0] for p in pairs], dtype="datetime64[D]"),
        np.array([p[1] for p in pairs], dtype="datetime64[D]"),
    )


def meteo_predictors(
    spec: RunSpec,
    plan: RunPlan,
    met_items: Sequence[Item],
    dem_items: Sequence[Item],
    topo: xr.Dataset,
    patch_url: PatchUrl | None,
) -> xr.Dataset:
    """Quarterly tmean, prcp, srad, vpd at 30 m with lapse-rate and terrain corrections, lazily."""
    from odc.stac import load

    assets = role_assets(spec, "meteorology")
    collection = spec.collections.meteorology.id
    _check_quarters_have(met_items, plan.quarters, f"meteorology ({collection!r})")
    keys = [assets[v] for v in _METEO_VARS]
    pad_m = _PAD_CELLS * _native_res_m(met_items[0], keys[0])
    native = load(
        _to_pystac(met_items),
        bands=keys,
        geopolygon=plan.geobox.extent.buffer(pad_m),
        chunks={"time": 1, "y": 1024, "x": 1024},
        dtype="float32",
        nodata=float("nan"),
        groupby="time",
    )
    native = native.rename({assets[v]: v for v in _METEO_VARS})
    starts, ends = windows_for(native.time.values, met_items)
    quarterly = quarterly_meteo(native, starts, ends, plan.quarters)
    lapse = spec.cube.lapse_rate_k_per_km / 1000.0
    z_native = dem_elevation(spec, dem_items, native.odc.geobox, 1024, patch_url, resampling="average")
    reduced = quarterly.assign(tmean=temperature_to_sea_level(quarterly.tmean, z_native, lapse))
    reduced = reduced.odc.assign_crs(native.odc.crs)  # the quarterly stage keeps no CRS coordinate
    # Output chunks default to the *source* chunk shape (a few coarse cells): tens of thousands of tiny
    # warps. Ask for the cube's chunks instead.
    fine = reduced.odc.reproject(plan.geobox, resampling="bilinear", chunks=(plan.chunk_px, plan.chunk_px))
    fine = fine.chunk({"time": 1, "y": plan.chunk_px, "x": plan.chunk_px})
    fine = fine.assign_coords(y=topo.y, x=topo.x)
    factor = xr.concat(
        [
            radiation_terrain_factor(
                topo.slope,
                topo.northness,
                topo.eastness,
                plan.centre_lat,
                q.mid_doy,
                spec.cube.diffuse_fraction,
            )
            for q in plan.quarters
        ],
        dim=fine.time,
    )
    out: xr.Dataset = fine.assign(
        tmean=temperature_at_elevation(fine.tmean, topo.elevation, lapse),
        srad=fine.srad * factor,
    )
    for name, src in quarterly.items():
        out[name].attrs = dict(src.attrs)
    out.tmean.attrs["comment"] = (
        f"lapse-rate corrected to 30 m elevation ({spec.cube.lapse_rate_k_per_km} K km-1)"
    )
    out.srad.attrs["comment"] = "times the slope/aspect terrain factor at the quarter's middle day"
    return out


def build_cube(
    spec: RunSpec, plan: RunPlan, frozen: FrozenSearch, patch_url: PatchUrl | None = None
) -> xr.Dataset:
    """The lazy predictor cube of a run: Landsat composites and indices, terrain, meteorology, forest type.

    Raises:
        NoDataError: If a quarter has no Landsat or meteorology item.
        CatalogError: If item metadata is inconsistent (scale/offset, windows).
    """
    dem_items = frozen.role("dem")
    topo = terrain(
        dem_elevation(spec, dem_items, plan.geobox, plan.chunk_px, patch_url), plan.geobox.resolution.x
    )
    landsat = landsat_predictors(spec, plan, frozen.role("landsat"), patch_url)
    met = meteo_predictors(spec, plan, frozen.role("meteorology"), dem_items, topo, patch_url)
    forest = forest_predictors(spec, plan, frozen.role("forest_type"), patch_url)
    cube = xr.merge(
        [landsat, met, topo, forest], compat="override", join="exact", combine_attrs="drop_conflicts"
    )
    cube.attrs = {}
    cube = cube.drop_vars([c for c in cube.coords if c not in ("time", "y", "x")])
    cube = cube.assign_coords(spatial_ref=spatial_ref(plan.geobox))
    for name in cube.data_vars:
        cube[name].attrs["grid_mapping"] = "spatial_ref"
    cube.time.attrs.update(long_name="start of the calendar quarter")
    cube.x.attrs.update(standard_name="projection_x_coordinate", units="m")
    cube.y.attrs.update(standard_name="projection_y_coordinate", units="m")
    cube.attrs.update(
        title="gppscale 30 m predictor cube",
        Conventions="CF-1.10",
        source=f"gppscale {__version__}",
        quarters=[q.label for q in plan.quarters],
    )
    _warn_empty_quarters(frozen, plan)
    return cube


def _warn_empty_quarters(frozen: FrozenSearch, plan: RunPlan) -> None:
    """Warn about quarters with very few Landsat scenes (composites there will be patchy)."""
    items = _in_quarters(frozen.role("landsat"), plan.quarters)
    starts = np.array([window_of(i)[0] for i in items], dtype="datetime64[D]")
    thin = [
        f"{q.label} ({n})"
        for q in plan.quarters
        if (n := int(np.sum((starts >= q.start) & (starts < q.end)))) < 2
    ]
    if thin:
        warnings.warn(
            f"few Landsat scenes in {', '.join(thin)}: expect gaps (n_clear = 0)", DataWarning, stacklevel=3
        )


def cube_encoding(cube: xr.Dataset, chunk_px: int) -> dict[str, dict[str, Any]]:
    """Zarr v3 encoding of every variable: chunks of ``chunk_px`` (one quarter deep), explicit fill values."""
    fills: dict[str, Any] = {"n_clear": 0, "forest_type": FOREST_TYPE_FILL, "land_cover": 0}
    encoding: dict[str, dict[str, Any]] = {}
    for name, var in cube.data_vars.items():
        chunks = tuple(1 if d == "time" else chunk_px for d in var.dims)
        fill = fills.get(str(name), float("nan") if var.dtype.kind == "f" else None)
        if fill is None:
            raise CatalogError(
                f"cube variable {name!r} ({var.dtype}) has no fill value; add it to cube_encoding"
            )
        encoding[str(name)] = {"chunks": chunks, "fill_value": fill}
    return encoding


def cube_fingerprint(spec: RunSpec, plan: RunPlan, frozen: FrozenSearch) -> str:
    """A digest of everything that decides the cube's content: inputs, grid, quarters and settings."""
    parts = {
        "version": CUBE_VERSION,
        "search": {role: info.get("sha256") for role, info in frozen.manifest.get("roles", {}).items()},
        "geobox": [plan.epsg, list(plan.geobox.shape), list(plan.geobox.transform)[:6]],
        "quarters": [q.label for q in plan.quarters],
        "chunk_px": plan.chunk_px,
        "cube": spec.cube.model_dump(mode="json"),
        "collections": spec.collections.model_dump(mode="json"),
        "forest_types": spec.forest_types.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


ProgressFn = Callable[[str], None]
