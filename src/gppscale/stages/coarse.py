"""Coarse GPP/NPP: stored values to physical daily rates, and 8-day windows to quarterly sums.

The coarse product stays on its own grid (MODIS sinusoidal for GLASS). :func:`decode_coarse` turns stored
integers into a mean daily rate in gC m-2 d-1 (no data, fill and water become NaN);
:func:`quarterly_sums` prorates each window into the quarters by the days it shares with them
(:func:`~.quarters.overlap_days`) and gives gC m-2 quarter-1.

Example:
    >>> from gppscale.config import CoarseSpec
    >>> raw = np.array([[[200]], [[200]]], np.uint16)  # two GLASS windows of 2.00 gC m-2 d-1
    >>> rate = xr.DataArray(decode_coarse(raw, CoarseSpec()), dims=("time", "y", "x"))
    >>> s = np.array(["2021-03-26", "2021-04-03"], dtype="datetime64[D]")
    >>> q1 = quarterly_sums(rate, s, s + np.timedelta64(8, "D"), [Quarter(2021, 1)], min_coverage=0.0)
    >>> float(q1[0, 0, 0])  # 6 valid days at 2.0, the other 84 days of Q1 filled with that mean
    180.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
import xarray as xr

from gppscale.config import CoarseSpec
from gppscale.errors import NoDataError, SpecError
from gppscale.stages.quarters import Quarter, overlap_days, reduce_quarter

__all__ = ["QUARTER_SUM_UNITS", "RATE_UNITS", "decode_coarse", "quarter_sum_kernel", "quarterly_sums"]

RATE_UNITS = "gC m-2 d-1"
"""Units of :func:`decode_coarse`'s output: mean daily rate."""

QUARTER_SUM_UNITS = "gC m-2 quarter-1"
"""Units of :func:`quarterly_sums`'s output: total over the quarter."""

# Attributes that describe the stored encoding, not the decoded values; dropped by decode_coarse.
_ENCODING_ATTRS = ("nodata", "_FillValue", "scale_factor", "add_offset", "units")

Raw = TypeVar("Raw", xr.DataArray, npt.NDArray[Any])
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Dates = npt.NDArray[np.datetime64]


def decode_kernel(
    raw: npt.NDArray[Any], scale: float, offset: float, nodata: float, max_valid: float, to_gc_m2_d: float
) -> F32:
    """NumPy kernel of :func:`decode_coarse`; ``max_valid`` is in the product's units, before conversion.

    Example:
        >>> decode_kernel(np.array([0, 150, 65535, 3001]), 0.01, 0.0, 65535, 30.0, 1.0).tolist()
        [0.0, 1.5, nan, nan]
    """
    raw64 = np.asarray(raw, dtype=np.float64)
    value = raw64 * scale + offset
    # NaN (already masked on load) fails every comparison, so it stays NaN.
    ok = (raw64 != nodata) & (value >= 0.0) & (value <= max_valid)
    return np.where(ok, value * to_gc_m2_d, np.nan).astype(np.float32)


def decode_coarse(raw: Raw, coarse: CoarseSpec) -> Raw:
    """Stored coarse values to the physical mean daily rate, gC m-2 d-1 (float32).

    ``value = raw * coarse.scale + coarse.offset`` in ``coarse.units``, then times
    ``coarse.to_gc_m2_d``. NaN where ``raw`` is ``coarse.nodata`` or NaN, and where the scaled value
    is below 0 or above ``coarse.max_valid`` (GLASS stores fill and water as large codes such as
    65534). Negative values are treated as no data: GLASS GPP/NPP are non-negative by construction.

    Args:
        raw: Stored values, any numeric dtype; a DataArray (lazy for dask) or a NumPy array.
        coarse: The run spec's coarse-product decoding.

    Returns:
        float32 like ``raw``; a DataArray keeps dims, coords and attrs (minus the encoding ones:
        ``nodata``, ``_FillValue``, ``scale_factor``, ``add_offset``) with ``units`` "gC m-2 d-1".

    Example:
        >>> from gppscale.config import CoarseSpec
        >>> spec = CoarseSpec(scale=0.01, nodata=65535, units="gC m-2 8d-1", max_valid=240.0)
        >>> decode_coarse(np.array([800, 65535, 65534, 24000], np.uint16), spec).tolist()  # 8-day totals
        [1.0, nan, nan, 30.0]
    """
    kwargs = {
        "scale": float(coarse.scale),
        "offset": float(coarse.offset),
        "nodata": float(coarse.nodata),
        "max_valid": float(coarse.max_valid),
        "to_gc_m2_d": float(coarse.to_gc_m2_d),
    }
    if not isinstance(raw, xr.DataArray):
        return cast(Raw, decode_kernel(raw, **kwargs))
    out: Raw = xr.apply_ufunc(
        decode_kernel, raw, kwargs=kwargs, dask="parallelized", output_dtypes=[np.float32], keep_attrs=False
    )
    out.attrs = {k: v for k, v in raw.attrs.items() if k not in _ENCODING_ATTRS} | {"units": RATE_UNITS}
    return out


def quarter_sum_kernel(
    rate_tyx: npt.NDArray[np.floating[Any]], weights_t: F64, days: int, min_coverage: float
) -> F32:
    """Quarterly total from window rates: day-weighted mean rate of the valid windows * ``days``.

    ``weights_t`` are the days each window shares with the quarter. Days no valid (finite) window
    covers take the mean rate of the valid ones; where valid days are fewer than
    ``min_coverage * days`` the total is NaN.

    Example:
        >>> r = np.array([[2.0, 2.0], [4.0, np.nan]])  # (time, x): 30 days at 2, then 60 at 4 or missing
        >>> quarter_sum_kernel(r, np.array([30.0, 60.0]), 90, 0.3).tolist()  # 60+240; 30/90 >= 0.3 → 2*90
        [300.0, 180.0]
    """
    v = np.asarray(rate_tyx, dtype=np.float64)
    w = np.asarray(weights_t, dtype=np.float64).reshape((-1,) + (1,) * (v.ndim - 1))
    finite = np.isfinite(v)
    total = np.sum(np.where(finite, v, 0.0) * w, axis=0)
    valid_days = np.sum(np.where(finite, w, 0.0), axis=0)
    # The tolerance keeps a coverage of exactly min_coverage (58 of 90 days, 58/90) from failing on rounding.
    enough = (valid_days > 0) & (valid_days >= min_coverage * days - 1e-9)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(enough, total / valid_days * days, np.nan)
    return out.astype(np.float32)


def _check_windows(rate: xr.DataArray, window_start: Dates, window_end: Dates, min_coverage: float) -> None:
    if "time" not in rate.dims:
        raise SpecError(f"coarse rate has dims {rate.dims}, no 'time'; give it as (time, y, x)")
    n = rate.sizes["time"]
    if n == 0:
        raise NoDataError("the coarse product has no time steps; check the coarse collection's search")
    if window_start.shape != (n,) or window_end.shape != (n,):
        raise SpecError(
            f"coarse rate has {n} time steps but window_start/window_end have shapes "
            f"{window_start.shape}/{window_end.shape}; give one [start, end) window per time step"
        )
    if not 0.0 <= min_coverage <= 1.0:
        raise SpecError(f"min_coverage={min_coverage!r} is outside [0, 1]; give the least share of a quarter")


def quarterly_sums(
    rate: xr.DataArray,
    window_start: Dates,
    window_end: Dates,
    quarters: Sequence[Quarter],
    min_coverage: float = 0.75,
) -> xr.DataArray:
    """Quarterly totals (gC m-2 quarter-1) of a coarse mean daily rate given per ``[start, end)`` window.

    A window counts in a quarter for the days it shares with it, so an 8-day window across 31 March
    is split by day, and GLASS's shorter last window of a year (day 361: 27-31 December, 5 days)
    counts 5 days. Per pixel, the total is the day-weighted mean rate of the valid (finite) windows
    times the quarter's days: days no valid window covers take that mean. Where valid windows cover
    fewer than ``min_coverage`` of the quarter's days the total is NaN. Windows are expected not to
    overlap one another (a day covered twice counts twice).

    Args:
        rate: Mean daily rate, gC m-2 d-1, on (time, y, x) (see :func:`decode_coarse`).
        window_start: First day of each time step's window (datetime64, one per time step).
        window_end: Day after each window (exclusive).
        quarters: Output quarters, in order.
        min_coverage: Least share of a quarter's days covered by valid windows, [0, 1].

    Returns:
        float32 on (time, y, x), ``time`` the quarters' first days (``datetime64[ns]``), ``units``
        "gC m-2 quarter-1"; NaN in a quarter no window overlaps. Other coordinates and attrs are kept;
        dask inputs stay lazy with their y/x chunks and one time chunk per quarter.

    Raises:
        SpecError: If the windows do not match the time steps, no quarter is given, or
            ``min_coverage`` is outside [0, 1].
        NoDataError: If ``rate`` has no time steps.

    Example:
        >>> s = np.array(["2021-03-30", "2021-12-27"], dtype="datetime64[D]")
        >>> e = np.array(["2021-04-07", "2022-01-01"], dtype="datetime64[D]")
        >>> rate = xr.DataArray(np.full((2, 1, 1), 2.0, np.float32), dims=("time", "y", "x"))
        >>> q = quarterly_sums(rate, s, e, [Quarter(2021, 1), Quarter(2021, 2)], min_coverage=0.0)
        >>> q.values.ravel().tolist(), q.attrs["units"]  # 2 days and 6 days at 2.0, filled to 90 and 91
        ([180.0, 182.0], 'gC m-2 quarter-1')
    """
    if not quarters:
        raise SpecError("quarterly_sums needs at least one quarter; give the run's quarters")
    window_start, window_end = np.asarray(window_start), np.asarray(window_end)
    _check_windows(rate, window_start, window_end, float(min_coverage))
    var = rate.transpose("time", ...).astype(np.float32)
    parts = [
        reduce_quarter(
            var,
            overlap_days(window_start, window_end, q),
            quarter_sum_kernel,
            days=q.days,
            min_coverage=float(min_coverage),
        )
        for q in quarters
    ]
    stacked = xr.concat(parts, dim="time", coords="minimal", compat="override", join="override")
    starts = np.array([q.start for q in quarters], dtype="datetime64[ns]")
    stacked = stacked.assign_coords(time=starts).transpose(*var.dims)
    stacked.attrs = {**rate.attrs, "units": QUARTER_SUM_UNITS}
    return stacked
