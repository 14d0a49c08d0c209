"""Stage 6, predict: 30 m quarterly GPP/NPP from the cube and the selected models, mass-preserved, as Zarr.

Three steps, each resumable:

1. **Raw maps** (``work/predict_raw.zarr``): :func:`xarray.map_blocks` over the cube, one task per
   chunk region with all quarters (the RNN reads the whole sequence); each forest pixel gets the model
   selected for its type (:mod:`gppscale.stages.predict`), other pixels stay NaN. Models are loaded once
   per worker process from the run store's checkpoints (never unpickled) and run on CUDA when the
   worker has a device.
2. **Mass preservation** (``predict.mass_preservation``): in every coarse cell that lies inside the
   30 m grid and is at least ``predict.min_forest_fraction`` modelled forest, the 30 m values are
   scaled by one factor per cell and quarter so that their area-weighted mean equals the coarse value.
   A pixel takes the factor of the cell holding its centre; pixels straddling two cells make one pass
   inexact, so the factors are refined ``predict.iterations`` times (``f ← f · C / A(f)``). Scaling keeps
   values non-negative. The consistency error ``|A - C| / C`` of the corrected cells is reported per
   forest type and target. Other cells keep the predicted values (their coarse value also holds other
   land covers).
3. **Output** (``gpp.zarr``): ``gpp``, ``npp`` (corrected), ``gpp_uncorrected``, ``npp_uncorrected``
   (quarter, y, x) float32 in gC m-2 quarter-1; ``forest_type`` and ``model_gpp``/``model_npp`` (uint8
   model codes); CF attributes, ``time_bnds``, ``spatial_ref`` + ``grid_mapping``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr
from odc.geo.geobox import GeoBox

from gppscale.compute import compute
from gppscale.io.store import RunStore
from gppscale.stages.aggregate import aggregate_mean, pixel_cells
from gppscale.stages.forest import FOREST_TYPE_FILL, FOREST_TYPE_IDS
from gppscale.stages.predict import predict_block
from gppscale.stages.quarters import Quarter
from gppscale.stages.samples import labels_by_cell
from gppscale.stages.uncertainty import Z90, interval

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "MODEL_CODES",
    "OUTPUT_REL",
    "RAW_REL",
    "TARGETS",
    "apply_factors",
    "consistency",
    "ensemble_mean_std",
    "mass_factors",
    "output_dataset",
    "raw_dataset",
]

RAW_REL = "work/predict_raw.zarr"
"""The uncorrected maps, before mass preservation (removed once the output is complete)."""

OUTPUT_REL = "gpp.zarr"
"""The 30 m output in the run store."""

TARGETS = ("gpp", "npp")
ACTIVE_MIN = 10.0
"""Least coarse value (gC m-2 quarter-1) for a cell-quarter to count in relative consistency errors."""
UNITS = "gC m-2 quarter-1"

MODEL_CODES = {"none": 0, "dnn": 1, "cnn": 2, "bpnn": 3, "rnn": 4}
"""uint8 codes of ``model_gpp``/``model_npp``."""

Progress = Callable[[str], None]
Selection = Mapping[str, Mapping[str, str]]
F32 = npt.NDArray[np.float32]

_CACHE: dict[str, dict[str, list[dict[int, Any]]]] = {}
_CACHE_LOCK = threading.Lock()


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _models(
    store_url: str, selection: Selection, mode: str, fingerprint: str, members: int
) -> dict[str, list[dict[int, Any]]]:
    """The selected models' ensemble members by target, member and forest-type id, loaded once per process.

    ``fingerprint`` names the checkpoints' contents, so a long-lived worker loads retrained models anew;
    only the latest run's models are kept.
    """
    from gppscale.io.models import load_type_model

    key = json.dumps([store_url, selection, mode, fingerprint, members], sort_keys=True)
    with _CACHE_LOCK:
        if key not in _CACHE:
            store = RunStore(store_url)
            loaded = {
                target: [
                    {
                        FOREST_TYPE_IDS[t]: load_type_model(store, mode, t, target, kinds[target], m).to(
                            _device()
                        )
                        for t, kinds in selection.items()
                        if target in kinds
                    }
                    for m in range(members)
                ]
                for target in TARGETS
            }
            _CACHE.clear()
            _CACHE[key] = loaded
        return _CACHE[key]


def _model_codes(types: npt.NDArray[np.uint8], selection: Selection, target: str) -> npt.NDArray[np.uint8]:
    codes = np.zeros(types.shape, np.uint8)
    for forest_type, kinds in selection.items():
        if target in kinds:
            codes[types == FOREST_TYPE_IDS[forest_type]] = MODEL_CODES[kinds[target]]
    return codes


def _predict_kernel(
    block: xr.Dataset,
    *,
    store_url: str,
    selection: Selection,
    predictors: Sequence[str],
    quarters: Sequence[Quarter],
    batch_px: int,
    mode: str,
    fingerprint: str,
    members: int,
) -> xr.Dataset:
    layers = {name: block[name].values for name in predictors}
    types = np.asarray(block["forest_type"].values, np.uint8)
    models = _models(store_url, selection, mode, fingerprint, members)
    out: dict[str, Any] = {"forest_type": (("y", "x"), types)}
    for target in TARGETS:
        preds = [
            predict_block(layers, types, member, predictors, quarters, device=_device(), batch_size=batch_px)
            for member in models[target]
        ]
        mean, std = ensemble_mean_std(preds)
        out[f"{target}_uncorrected"] = (("time", "y", "x"), mean)
        if std is not None:
            out[f"{target}_std_uncorrected"] = (("time", "y", "x"), std)
        out[f"model_{target}"] = (("y", "x"), _model_codes(types, selection, target))
    return xr.Dataset(out, coords={k: block.coords[k] for k in ("time", "y", "x")})


def ensemble_mean_std(preds: Sequence[F32]) -> tuple[F32, F32 | None]:
    """The members' mean and sample standard deviation (None for a single member), float32.

    Example:
        >>> mean, std = ensemble_mean_std([np.array([1.0, 2.0]), np.array([3.0, 2.0])])
        >>> mean.tolist(), std.tolist()
        ([2.0, 2.0], [1.4142135381698608, 0.0])
        >>> ensemble_mean_std([np.array([1.0])])[1] is None
        True
    """
    stacked = np.stack([np.asarray(p, np.float64) for p in preds])
    mean = stacked.mean(axis=0).astype(np.float32)
    if len(preds) < 2:
        return mean, None
    return mean, stacked.std(axis=0, ddof=1).astype(np.float32)


def _template(cube: xr.Dataset, chunks: dict[str, int], members: int) -> xr.Dataset:
    import dask.array as da

    nt, ny, nx = cube.sizes["time"], cube.sizes["y"], cube.sizes["x"]
    quarterly = da.zeros((nt, ny, nx), dtype=np.float32, chunks=(nt, chunks["y"], chunks["x"]))
    static = da.zeros((ny, nx), dtype=np.uint8, chunks=(chunks["y"], chunks["x"]))
    data: dict[str, Any] = {"forest_type": (("y", "x"), static)}
    for target in TARGETS:
        data[f"{target}_uncorrected"] = (("time", "y", "x"), quarterly)
        if members > 1:
            data[f"{target}_std_uncorrected"] = (("time", "y", "x"), quarterly)
        data[f"model_{target}"] = (("y", "x"), static)
    return xr.Dataset(data, coords={k: cube.coords[k] for k in ("time", "y", "x")})


def raw_dataset(
    cube: xr.Dataset,
    *,
    store_url: str,
    selection: Selection,
    predictors: Sequence[str],
    quarters: Sequence[Quarter],
    fingerprint: str,
    mode: str = "paper",
    batch_px: int = 65536,
    members: int = 1,
) -> xr.Dataset:
    """The lazy uncorrected maps: one task per y/x chunk of the cube, all quarters at once.

    With ``members`` > 1 each selected model is a deep ensemble: ``<target>_uncorrected`` is the
    members' mean and ``<target>_std_uncorrected`` their standard deviation.

    ``fingerprint`` identifies the cube, selection and checkpoints; it is part of every task's key, so a
    scheduler never mistakes another run's blocks (or another model's) for these.
    """
    wanted = [*predictors, "forest_type"]
    source = cube[wanted].drop_vars("spatial_ref", errors="ignore").chunk({"time": -1})
    chunks = {"y": source.chunksizes["y"][0], "x": source.chunksizes["x"][0]}
    kwargs = {
        "store_url": store_url,
        "selection": {t: dict(k) for t, k in selection.items()},
        "predictors": list(predictors),
        "quarters": list(quarters),
        "batch_px": batch_px,
        "mode": mode,
        "fingerprint": fingerprint,
        "members": members,
    }
    template = _template(source, chunks, members)
    return xr.map_blocks(_predict_kernel, source, kwargs=kwargs, template=template)


# --- mass preservation ----------------------------------------------------------------------------------


def apply_factors(values: F32, cells: npt.NDArray[np.int64], factors: F32) -> F32:
    """``values (T, y, x)`` times the factor ``factors[t, cell]`` of each pixel's cell (1 where cell < 0).

    Example:
        >>> v = np.ones((1, 1, 3), np.float32)
        >>> apply_factors(v, np.array([[0, 1, -1]]), np.array([[2.0, 0.5]], np.float32)).tolist()
        [[[2.0, 0.5, 1.0]]]
    """
    f = np.ones((values.shape[0], *cells.shape), np.float32)
    inside = cells >= 0
    f[:, inside] = factors[:, cells[inside]]
    return np.asarray(values * f, np.float32)


def _cells_of(block: xr.DataArray, fine: GeoBox, coarse: GeoBox) -> npt.NDArray[np.int64]:
    """Coarse cell of each pixel of a block, from the block's position on the fine grid."""
    x0, y0 = fine.coords["x"].values[0], fine.coords["y"].values[0]
    col = round((float(block.x.values[0]) - x0) / fine.resolution.x)
    row = round((float(block.y.values[0]) - y0) / fine.resolution.y)
    return pixel_cells(fine, coarse, slice(row, row + block.sizes["y"]), slice(col, col + block.sizes["x"]))


def _scale_block(
    block: xr.DataArray, *, factors: F32, times: npt.NDArray[np.datetime64], fine: GeoBox, coarse: GeoBox
) -> xr.DataArray:
    rows = factors[np.searchsorted(times, block.time.values)]  # the block's quarters (chunks may hold one)
    return block.copy(data=apply_factors(block.values, _cells_of(block, fine, coarse), rows))


def _scaled(values: xr.DataArray, factors: F32, fine: GeoBox, coarse: GeoBox) -> xr.DataArray:
    """``values`` times each pixel's cell factor, lazily.

    The factors go to :func:`xarray.map_blocks` as an argument, not in a closure: dask names the tasks
    from the arguments, so each pass gets its own keys. (With a closure every pass had the same keys and
    a distributed scheduler could hand one pass the previous pass's blocks.)
    """
    kwargs = {"factors": factors, "times": values.time.values, "fine": fine, "coarse": coarse}
    return xr.map_blocks(_scale_block, values, kwargs=kwargs, template=values)


def mass_factors(
    raw: xr.Dataset,
    table: pd.DataFrame,
    fine: GeoBox,
    coarse: GeoBox,
    quarters: Sequence[Quarter],
    *,
    min_forest_fraction: float,
    iterations: int,
    client: Client | None = None,
    progress: Progress | None = None,
) -> tuple[dict[str, F32], npt.NDArray[np.bool_]]:
    """Per target, the factors ``(T, cells)`` that bring each corrected cell's mean to its coarse value.

    Returns the factors and the mask of corrected cells (inside the grid, mostly modelled forest).
    """
    n_cells = coarse.shape.y * coarse.shape.x
    forest = (
        raw["gpp_uncorrected"]
        .isel(time=0)
        .notnull()
        .astype(np.float32)
        .where(raw["forest_type"] != FOREST_TYPE_FILL)
    )
    (share,) = compute(aggregate_mean(forest, fine, coarse), client=client, what="predict: forest share")
    covered = np.zeros(n_cells, bool)
    cells = table.drop_duplicates("cell")
    covered[cells.cell.to_numpy()] = cells.coverage.to_numpy() >= 0.95
    corrected = covered & (np.nan_to_num(np.asarray(share.values).ravel()) >= min_forest_fraction)
    factors = {}
    for target in TARGETS:
        wanted = labels_by_cell(table, target, quarters, n_cells)
        f = np.ones((len(quarters), n_cells), np.float32)
        for i in range(iterations):
            scaled = _scaled(raw[f"{target}_uncorrected"], f, fine, coarse)
            (mean,) = compute(
                aggregate_mean(scaled, fine, coarse),
                client=client,
                progress=progress,
                what=f"predict: mass preservation of {target}, pass {i + 1}/{iterations}",
            )
            got = np.asarray(mean.values, np.float32).reshape(len(quarters), n_cells)
            ok = corrected[None, :] & np.isfinite(wanted) & np.isfinite(got) & (got > 0)
            f = np.where(ok, f * np.where(ok, wanted, 1) / np.where(ok, got, 1), f).astype(np.float32)
        factors[target] = f
    return factors, corrected


def consistency(
    output: xr.Dataset,
    table: pd.DataFrame,
    corrected: npt.NDArray[np.bool_],
    fine: GeoBox,
    coarse: GeoBox,
    quarters: Sequence[Quarter],
    *,
    client: Client | None = None,
) -> dict[str, dict[str, Any]]:
    """Per target and forest type (cell majority): how far corrected cells' means are from the coarse values.

    ``mean_abs_error`` (gC m-2 quarter-1) over every corrected cell and quarter; ``median_rel_error`` and
    ``p95_rel_error`` of ``|A - C| / C`` over those with ``C >= ACTIVE_MIN`` (dormant quarters, where ``C``
    is near zero, make relative errors meaningless).
    """
    n_cells = coarse.shape.y * coarse.shape.x
    means = compute(*(aggregate_mean(output[t], fine, coarse) for t in TARGETS), client=client)
    cell_type = np.full(n_cells, "", object)
    cells = table.drop_duplicates("cell")
    cell_type[cells.cell.to_numpy()] = cells.forest_type.to_numpy()
    report: dict[str, dict[str, Any]] = {}
    for target, mean in zip(TARGETS, means, strict=True):
        got = np.asarray(mean.values, np.float64).reshape(len(quarters), n_cells)
        wanted = labels_by_cell(table, target, quarters, n_cells).astype(np.float64)
        ok = corrected[None, :] & np.isfinite(got) & np.isfinite(wanted)
        active = ok & (wanted >= ACTIVE_MIN)
        report[target] = {}
        for forest_type in sorted(set(cell_type[corrected])):
            of_type = (cell_type == forest_type)[None, :]
            diff = np.abs(got - wanted)[ok & of_type]
            rel = (np.abs(got - wanted) / np.where(active, wanted, 1.0))[active & of_type]
            report[target][forest_type] = {
                "cells": int((corrected & (cell_type == forest_type)).sum()),
                "mean_abs_error": float(diff.mean()) if diff.size else None,
                "median_rel_error": float(np.median(rel)) if rel.size else None,
                "p95_rel_error": float(np.percentile(rel, 95)) if rel.size else None,
            }
    return report


# --- output -------------------------------------------------------------------------------------------------


def _time_bounds(quarters: Sequence[Quarter]) -> npt.NDArray[np.datetime64]:
    return np.array([[q.start, q.end] for q in quarters], dtype="datetime64[ns]")


def output_dataset(
    raw: xr.Dataset,
    factors: Mapping[str, F32] | None,
    fine: GeoBox,
    coarse: GeoBox,
    quarters: Sequence[Quarter],
    spatial_ref: xr.DataArray,
    *,
    errors: Mapping[str, F32] | None = None,
) -> xr.Dataset:
    """The final lazy dataset: corrected and uncorrected maps, types, model codes, CF metadata.

    With an ensemble (``<target>_std_uncorrected`` in ``raw``) it adds ``<target>_std``, the members'
    standard deviation scaled by the same mass-preservation factor as the mean (each member is scaled
    alike), and the 90 % interval ``<target>_lower``/``<target>_upper``
    (:func:`gppscale.stages.uncertainty.interval`) from it and ``errors[target]``, the relative
    held-out error ``(T, 256)`` of each quarter and forest-type id (0 where missing).
    """
    out = xr.Dataset(
        attrs={
            "title": "gppscale 30 m quarterly GPP and NPP",
            "Conventions": "CF-1.10",
            "mass_preservation": "on" if factors is not None else "off",
        }
    )
    for target in TARGETS:
        raw_var = raw[f"{target}_uncorrected"]
        long = "gross" if target == "gpp" else "net"
        base = {"units": UNITS, "grid_mapping": "spatial_ref", "cell_methods": "time: sum"}
        out[target] = (
            raw_var if factors is None else _scaled(raw_var, factors[target], fine, coarse)
        ).assign_attrs(
            long_name=f"{long} primary production, 30 m"
            + (", mass-preserved" if factors is not None else ""),
            **base,
        )
        out[f"{target}_uncorrected"] = raw_var.assign_attrs(
            long_name=f"{long} primary production, 30 m, as predicted", **base
        )
        if f"{target}_std_uncorrected" in raw:
            std = raw[f"{target}_std_uncorrected"]
            if factors is not None:
                std = _scaled(std, factors[target], fine, coarse)
            table = (errors or {}).get(target, np.zeros((len(quarters), 256), np.float32))
            out.update(_interval(out[target], std, raw["forest_type"], table, target))
        codes = " ".join(MODEL_CODES)
        out[f"model_{target}"] = raw[f"model_{target}"].assign_attrs(
            long_name=f"model used for {target}",
            flag_values=list(MODEL_CODES.values()),
            flag_meanings=codes,
            grid_mapping="spatial_ref",
        )
    names = " ".join(n.replace("-", "_") for n in FOREST_TYPE_IDS)
    out["forest_type"] = raw["forest_type"].assign_attrs(
        long_name="forest type",
        flag_values=list(FOREST_TYPE_IDS.values()),
        flag_meanings=names,
        grid_mapping="spatial_ref",
    )
    out = out.assign_coords(time_bnds=(("time", "nv"), _time_bounds(quarters)), spatial_ref=spatial_ref)
    out["time"].attrs.update(bounds="time_bnds", long_name="first day of the quarter")
    return out


def _interval_block(
    block: xr.Dataset, *, errors: F32, times: npt.NDArray[np.datetime64], z: float
) -> xr.Dataset:
    rows = errors[np.searchsorted(times, block.time.values)]  # the block's quarters (chunks may hold one)
    per_pixel = rows[:, np.asarray(block["forest_type"].values, np.intp)]
    lower, upper = interval(block["mean"].values, block["std"].values, per_pixel, z=z)
    dims = block["mean"].dims
    return xr.Dataset(
        {"lower": (dims, lower.astype(np.float32)), "upper": (dims, upper.astype(np.float32))},
        coords=block["mean"].coords,
    )


def _interval(
    mean: xr.DataArray, std: xr.DataArray, forest_type: xr.DataArray, errors: F32, target: str
) -> dict[str, xr.DataArray]:
    """``<target>_std`` and the 90 % interval ``<target>_lower``/``_upper`` (lazy, one task per chunk)."""
    long = "gross" if target == "gpp" else "net"
    base = {"units": UNITS, "grid_mapping": "spatial_ref", "cell_methods": "time: sum"}
    parts = xr.Dataset({"mean": mean, "std": std, "forest_type": forest_type})
    template = xr.Dataset({"lower": mean, "upper": mean})
    kwargs = {"errors": np.asarray(errors, np.float32), "times": mean.time.values, "z": Z90}
    bounds = xr.map_blocks(_interval_block, parts, kwargs=kwargs, template=template)
    how = f"mean -/+ sqrt(({Z90:.3f} std)^2 + (e mean)^2), e: the held-out relative error (intervals.json)"
    return {
        f"{target}_std": std.assign_attrs(
            long_name=f"standard deviation of the ensemble's {long} primary production, 30 m", **base
        ),
        f"{target}_lower": bounds["lower"].assign_attrs(
            long_name=f"lower end of the 90 % interval of {long} primary production, 30 m",
            comment=how,
            **base,
        ),
        f"{target}_upper": bounds["upper"].assign_attrs(
            long_name=f"upper end of the 90 % interval of {long} primary production, 30 m",
            comment=how,
            **base,
        ),
    }


def output_fingerprint(raw_fingerprint: str, factors: Mapping[str, F32] | None) -> str:
    """A digest of the raw maps' fingerprint and the correction factors."""
    h = hashlib.sha256(raw_fingerprint.encode())
    for target in sorted(factors or {}):
        h.update(np.ascontiguousarray((factors or {})[target]).tobytes())
    return h.hexdigest()[:16]
