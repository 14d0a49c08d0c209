"""Peers in the same run: other ways to do a stage's core work, timed on the same data and cluster.

* Loading: ``odc.stac.load`` (what the cube uses) against ``stackstac.stack``, the same Landsat items and
  assets onto the same 30 m grid, one layer per item, nearest resampling, float32 with NaN nodata.
* Aggregation: :func:`gppscale.stages.aggregate.aggregate_mean` (area-exact on the sheared sinusoidal
  grid) against a naive ``xarray.coarsen`` (15 x 15 blocks of the UTM grid: the wrong grid, shown for
  speed only) and rioxarray ``reproject(..., Resampling.average)`` onto the true coarse grid (GDAL's
  average, not area-exact: compared numerically).
* Inference: the project's map_blocks inference path (:func:`gppscale.io.predict.raw_dataset`, computed,
  not written) against the pure-forward floor.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from gppscale.config import RunSpec
from gppscale.io.freeze import FrozenSearch, role_assets
from gppscale.plan import RunPlan

if TYPE_CHECKING:
    from distributed import Client

Item = dict[str, Any]


def _timed_compute(client: Client | None, obj: Any) -> tuple[Any, float]:  # noqa: ANN401 - dask objects
    import dask

    start = time.perf_counter()
    value = client.gather(client.compute(obj)) if client is not None else dask.compute(obj)[0]
    return value, time.perf_counter() - start


def _with_epsg(item: Item) -> Item:
    """stackstac 0.5 reads only ``proj:epsg``; the catalog writes ``proj:code`` (a metadata shim)."""
    props = dict(item["properties"])
    code = str(props.get("proj:code", ""))
    if code.upper().startswith("EPSG:"):
        props["proj:epsg"] = int(code.split(":")[1])
    return {**item, "properties": props}


def landsat_items(spec: RunSpec, plan: RunPlan, frozen: FrozenSearch, limit: int | None) -> list[Item]:
    """The Landsat items the cube reads (in the run's quarters), at most ``limit``, in time order."""
    from bench.floors import role_items

    items = sorted(role_items(spec, plan, frozen, "landsat"), key=lambda i: i["properties"]["datetime"])
    return items[:limit] if limit else items


def _odc(items: Sequence[Item], keys: list[str], plan: RunPlan) -> xr.DataArray:
    import pystac
    from odc.stac import load

    ds = load(
        [pystac.Item.from_dict(i) for i in items],
        bands=keys,
        geobox=plan.geobox,
        chunks={"time": 1, "y": plan.chunk_px, "x": plan.chunk_px},
        resampling="nearest",
        dtype="float32",
        nodata=float("nan"),
        groupby="id",
    )
    return ds.to_array("band").transpose("time", "band", "y", "x")


def _stackstac(items: Sequence[Item], keys: list[str], plan: RunPlan) -> xr.DataArray:
    import stackstac
    from rasterio.enums import Resampling

    bb = plan.geobox.boundingbox
    return stackstac.stack(
        [_with_epsg(i) for i in items],
        assets=keys,
        epsg=plan.epsg,
        resolution=abs(plan.geobox.resolution.x),
        bounds=(bb.left, bb.bottom, bb.right, bb.top),
        snap_bounds=False,
        chunksize=plan.chunk_px,
        dtype="float32",
        fill_value=np.float32(np.nan),
        rescale=False,
        resampling=Resampling.nearest,
        xy_coords="center",
        sortby_date="asc",
    )


def _agreement(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    both = np.isfinite(a) & np.isfinite(b)
    either = np.isfinite(a) | np.isfinite(b)
    diff = np.abs(a[both] - b[both])
    return {
        "shape_equal": a.shape == b.shape,
        "px_compared": int(both.sum()),
        "valid_px_shared": float(both.sum() / max(either.sum(), 1)),
        "identical_share": float(np.mean(diff == 0)) if diff.size else None,
        "max_abs_diff": float(diff.max()) if diff.size else None,
    }


def loader_peers(
    spec: RunSpec,
    plan: RunPlan,
    frozen: FrozenSearch,
    client: Client | None,
    limit: int | None,
) -> dict[str, Any]:
    """odc-stac against stackstac: the same Landsat items and assets on the same grid, computed."""
    items = landsat_items(spec, plan, frozen, limit)
    keys = list(role_assets(spec, "landsat").values())
    odc_da, odc_graph_s = _build(lambda: _odc(items, keys, plan))
    out: dict[str, Any] = {"items": len(items), "assets": keys, "grid": list(plan.geobox.shape)}
    odc_np, odc_s = _timed_compute(client, odc_da.data)
    out["odc_stac"] = {"seconds": odc_s, "graph_build_s": odc_graph_s, "tasks": len(odc_da.data.dask)}
    try:
        ss_da, ss_graph_s = _build(lambda: _stackstac(items, keys, plan))
        ss_np, ss_s = _timed_compute(client, ss_da.data)
    except Exception as e:
        out["stackstac"] = {"error": f"{type(e).__name__}: {e}"}
        return out
    out["stackstac"] = {"seconds": ss_s, "graph_build_s": ss_graph_s, "tasks": len(ss_da.data.dask)}
    out["stackstac_over_odc"] = ss_s / odc_s
    out["agreement"] = _agreement(odc_np, ss_np) if odc_np.shape == ss_np.shape else {
        "shape_equal": False, "odc": list(odc_np.shape), "stackstac": list(ss_np.shape)
    }  # fmt: skip
    return out


def _build(make: Any) -> tuple[Any, float]:  # noqa: ANN401 - a zero-argument factory
    start = time.perf_counter()
    value = make()
    return value, time.perf_counter() - start


def coarse_grid(run_dir: Path) -> Any:  # noqa: ANN401 - an odc GeoBox
    """The run's coarse grid, as the samples stage recorded it."""
    import json

    from affine import Affine
    from odc.geo.geobox import GeoBox

    grid = json.loads((run_dir / "samples.json").read_text())["coarse_grid"]
    return GeoBox(tuple(grid["shape"]), Affine(*grid["transform"]), grid["crs"])


def _rio_average(values: xr.DataArray, plan: RunPlan, coarse: Any) -> np.ndarray:  # noqa: ANN401
    import rioxarray  # noqa: F401 - registers the .rio accessor
    from rasterio.enums import Resampling

    da = values.rio.write_crs(f"EPSG:{plan.epsg}").rio.write_nodata(np.nan)
    da = da.rio.write_transform(plan.geobox.transform)
    out = da.rio.reproject(
        coarse.crs.to_wkt(),
        shape=tuple(coarse.shape),
        transform=coarse.transform,
        resampling=Resampling.average,
        nodata=np.nan,
    )
    return np.asarray(out.values, np.float32)


def aggregation_peers(
    plan: RunPlan,
    run_dir: Path,
    client: Client | None,
    variable: str = "ndvi",
) -> dict[str, Any]:
    """aggregate_mean against xarray coarsen and rioxarray average, on one cube variable, all quarters."""
    from gppscale.stages.aggregate import aggregate_mean

    coarse = coarse_grid(run_dir)
    cube = xr.open_zarr(run_dir / "cube.zarr", consolidated=False)
    da = cube[variable].drop_vars("spatial_ref", errors="ignore")
    ours, ours_s = _timed_compute(client, aggregate_mean(da, plan.geobox, coarse).data)
    factor = round(abs(coarse.resolution.x) / abs(plan.geobox.resolution.x))
    _, coarsen_s = _timed_compute(client, da.coarsen(y=factor, x=factor, boundary="trim").mean().data)
    start = time.perf_counter()
    loaded = da.load()
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    rio = _rio_average(loaded, plan, coarse)
    rio_s = time.perf_counter() - start
    ours_np = np.asarray(ours, np.float32)
    both = np.isfinite(ours_np) & np.isfinite(rio)
    rel = np.abs(rio[both] - ours_np[both]) / np.maximum(np.abs(ours_np[both]), 1e-6)
    return {
        "variable": variable,
        "fine_shape": list(da.shape),
        "coarse_shape": list(coarse.shape),
        "aggregate_mean_s": ours_s,
        "xarray_coarsen_s": coarsen_s,
        "coarsen_block": factor,
        "rioxarray_average_s": rio_s,
        "rioxarray_load_s": load_s,
        "rio_vs_ours_median_rel_diff": float(np.median(rel)) if rel.size else None,
        "rio_vs_ours_p95_rel_diff": float(np.quantile(rel, 0.95)) if rel.size else None,
        "cells_compared": int(both.sum()),
    }


def inference_peer(spec: RunSpec, plan: RunPlan, run_dir: Path, client: Client | None) -> dict[str, Any]:
    """The project's inference path (map_blocks over the cube zarr, all models), computed, not written."""
    import json

    from gppscale.io.models import read_selection
    from gppscale.io.predict import raw_dataset
    from gppscale.io.store import RunStore

    store = RunStore(str(run_dir))
    cube = xr.open_zarr(run_dir / "cube.zarr", consolidated=False)
    raw = raw_dataset(
        cube,
        store_url=store.url,
        selection=read_selection(store),
        predictors=json.loads((run_dir / "samples.json").read_text())["features"],
        quarters=plan.quarters,
        fingerprint=f"bench-{time.time_ns()}",
        batch_px=spec.predict.batch_px,
    )
    arrays = [raw[v].data for v in raw.data_vars if str(v).endswith("_uncorrected")]
    _, seconds = _timed_compute(client, arrays)
    return {"seconds": seconds, "pixels": int(plan.geobox.shape.y * plan.geobox.shape.x)}
