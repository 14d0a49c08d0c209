"""Quarterly median composites of clear Landsat observations, with the count of clear observations.

The kernel works on one block ``(band, time, y, x)``; the wrapper selects each quarter's time steps,
merges them into one time chunk (y/x chunks stay as loaded), applies the kernel block by block and
stacks the quarters on a new ``time`` axis holding the quarters' first days.

Example:
    >>> v = np.array([[[[0.1]], [[0.3]], [[0.2]]]], dtype=np.float32)  # (band, time, y, x)
    >>> clear = np.array([[[True]], [[True]], [[False]]])
    >>> med, n = median_composite_kernel(v, clear)
    >>> med.ravel().tolist() == [np.float32(0.2)], n.ravel().tolist()
    (True, [2])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask.array as dsa
import numpy as np
import numpy.typing as npt
import xarray as xr

from gppscale.errors import SpecError
from gppscale.stages.quarters import Quarter

__all__ = ["median_composite_kernel", "quarterly_composite"]

F32 = npt.NDArray[np.float32]
U16 = npt.NDArray[np.uint16]

_N_CLEAR_ATTRS = {"long_name": "number of clear observations in the quarter", "units": "1"}


def median_composite_kernel(
    values_btyx: npt.NDArray[np.floating[Any]], clear_tyx: npt.NDArray[np.bool_]
) -> tuple[F32, U16]:
    """Per-pixel median over time of the observations that are clear and finite in every band.

    Args:
        values_btyx: Reflectances ``(band, time, y, x)``, NaN where nothing was read.
        clear_tyx: True where the observation is clear ``(time, y, x)``.

    Returns:
        ``(median_byx, n_clear_yx)``: the median (float32, NaN where no observation counts; the mean of
        the two middle values for an even count, as ``np.nanmedian``) and the number of observations
        that count (uint16, saturating at 65535).

    Example:
        >>> v = np.array([[[[1.0]], [[np.nan]], [[3.0]], [[4.0]]]], dtype=np.float32)
        >>> med, n = median_composite_kernel(v, np.ones((4, 1, 1), dtype=bool))
        >>> float(med[0, 0, 0]), int(n[0, 0])
        (3.0, 3)
    """
    values = np.asarray(values_btyx, dtype=np.float32)
    ok = np.asarray(clear_tyx, dtype=bool) & np.all(np.isfinite(values), axis=0)
    n = ok.sum(axis=0)
    if values.shape[1] == 0:
        return np.full(values.shape[:1] + values.shape[2:], np.nan, np.float32), n.astype(np.uint16)
    # Sorting puts NaN last, so the counted values of a pixel are the first n along time; picking the
    # middle one(s) by index gives the median without np.nanmedian's All-NaN RuntimeWarning.
    ordered = np.sort(np.where(ok[None], values, np.float32(np.nan)), axis=1)
    lo = np.maximum((n - 1) // 2, 0)[None, None]
    hi = np.maximum(n // 2, 0)[None, None]
    a = np.take_along_axis(ordered, lo, axis=1)[:, 0]
    b = np.take_along_axis(ordered, hi, axis=1)[:, 0]
    median = np.where(n[None] > 0, (a + b) / np.float32(2), np.float32(np.nan))
    return median.astype(np.float32), np.minimum(n, np.iinfo(np.uint16).max).astype(np.uint16)


def _median_composite_block(values_yxbt: F32, clear_yxt: npt.NDArray[np.bool_]) -> tuple[F32, U16]:
    """The kernel on apply_ufunc's layout: core dims last, ``(y, x, band, time)`` → ``(y, x, band)``."""
    med, n = median_composite_kernel(
        np.moveaxis(values_yxbt, (-2, -1), (0, 1)), np.moveaxis(clear_yxt, -1, 0)
    )
    return np.moveaxis(med, 0, -1), n


def _time_index(times: npt.NDArray[np.datetime64], quarter: Quarter) -> npt.NDArray[np.intp]:
    return np.flatnonzero((times >= quarter.start) & (times < quarter.end))


def _one_quarter(stack: xr.DataArray, clear: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Median and count over all of ``stack``'s time steps (one quarter)."""
    if stack.chunks is not None:
        # One time chunk per quarter: the kernel needs the whole quarter at once, and merging only
        # within a quarter keeps the graph linear in the number of y/x chunks.
        stack = stack.chunk({"band": -1, "time": -1})
        clear = clear.chunk({"time": -1})
    med, n = xr.apply_ufunc(
        _median_composite_block,
        stack,
        clear,
        input_core_dims=[["band", "time"], ["time"]],
        output_core_dims=[["band"], []],
        dask="parallelized",
        output_dtypes=[np.float32, np.uint16],
    )
    return med, n


def _empty_quarter(stack: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """All-NaN median and zero count shaped like one quarter of ``stack`` (lazy when it is)."""
    coords = {k: v for k, v in stack.coords.items() if "time" not in v.dims}
    shape = (stack.sizes["band"], stack.sizes["y"], stack.sizes["x"])
    if stack.chunks is not None:
        yc, xc = stack.chunksizes["y"], stack.chunksizes["x"]
        med_data: Any = dsa.full(  # type: ignore[no-untyped-call,unused-ignore]
            shape, np.nan, dtype=np.float32, chunks=((shape[0],), yc, xc)
        )
        n_data: Any = dsa.zeros(shape[1:], dtype=np.uint16, chunks=(yc, xc))
    else:
        med_data = np.full(shape, np.nan, dtype=np.float32)
        n_data = np.zeros(shape[1:], dtype=np.uint16)
    med = xr.DataArray(med_data, dims=("band", "y", "x"), coords=coords)
    n = xr.DataArray(
        n_data, dims=("y", "x"), coords={k: v for k, v in coords.items() if "band" not in v.dims}
    )
    return med, n


def _check_inputs(bands: xr.Dataset, clear: xr.DataArray) -> None:
    for name, var in bands.data_vars.items():
        if set(var.dims) != {"time", "y", "x"}:
            raise SpecError(f"band {name!r} has dims {var.dims}; quarterly_composite needs (time, y, x)")
    if set(clear.dims) != {"time", "y", "x"}:
        raise SpecError(f"clear mask has dims {clear.dims}; quarterly_composite needs (time, y, x)")
    if not np.issubdtype(bands["time"].dtype, np.datetime64):
        raise SpecError(f"time coordinate has dtype {bands['time'].dtype}; it must be datetime64")


def quarterly_composite(bands: xr.Dataset, clear: xr.DataArray, quarters: Sequence[Quarter]) -> xr.Dataset:
    """Median of the clear observations of each quarter, per band, plus ``n_clear``.

    Args:
        bands: Reflectance variables on ``(time, y, x)`` with a datetime64 ``time`` coordinate.
        clear: Boolean ``(time, y, x)``, True where an observation is clear (:func:`~.qa.clear_mask`).
        quarters: Quarters to composite, in the order of the output.

    Returns:
        The band variables (float32) and ``n_clear`` (uint16) on ``(time, y, x)``, one ``time`` step per
        quarter labelled with its first day (``datetime64[ns]``). A quarter without any time step gives
        NaN and ``n_clear`` 0. Dask inputs stay lazy; y/x chunks are kept and ``time`` has one chunk per
        quarter.

    Raises:
        SpecError: If dims are not (time, y, x), ``time`` is not datetime64, or no quarter is given.

    Example:
        >>> t = np.array(["2021-01-05", "2021-02-10", "2021-04-02"], dtype="datetime64[ns]")
        >>> red = xr.DataArray(np.array([0.1, 0.3, 0.5], np.float32).reshape(3, 1, 1),
        ...                    dims=("time", "y", "x"), coords={"time": t})
        >>> out = quarterly_composite(xr.Dataset({"red": red}), red > 0, [Quarter(2021, 1)])
        >>> round(float(out.red[0, 0, 0]), 3), int(out.n_clear[0, 0, 0])
        (0.2, 2)
    """
    if not quarters:
        raise SpecError("quarterly_composite needs at least one quarter; give the run's quarters")
    _check_inputs(bands, clear)
    names = list(bands.data_vars)
    stack = bands.to_dataarray("band").astype(np.float32).transpose("band", "time", "y", "x")
    clear = clear.astype(bool).transpose("time", "y", "x")
    times = np.asarray(bands["time"].values)
    meds, counts = [], []
    for quarter in quarters:
        idx = _time_index(times, quarter)
        if idx.size:
            med, n = _one_quarter(stack.isel(time=idx), clear.isel(time=idx))
        else:
            med, n = _empty_quarter(stack)
        meds.append(med)
        counts.append(n)
    starts = xr.DataArray(np.array([q.start for q in quarters], dtype="datetime64[ns]"), dims="time")
    med_all = xr.concat(meds, dim="time", coords="minimal", compat="override", join="override")
    n_all = xr.concat(counts, dim="time", coords="minimal", compat="override", join="override")
    out = med_all.assign_coords(time=starts).to_dataset("band")
    out = out[names].transpose("time", "y", "x")
    for name in names:
        out[name].attrs = dict(bands[name].attrs)
    n_clear = n_all.assign_coords(time=starts).transpose("time", "y", "x")
    n_clear.attrs = dict(_N_CLEAR_ATTRS)
    out["n_clear"] = n_clear
    out.attrs = dict(bands.attrs)
    return out
