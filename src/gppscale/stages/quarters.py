"""Calendar quarters, the time unit of the predictor cube, and day overlaps of product windows with them.

A quarter is the three calendar months starting in January, April, July or October. Coarse products and
meteorology come in windows of 8 days (GLASS, MODIS) or one day; a window that straddles a quarter edge
is prorated by day, so ``overlap_days`` is the weight a window gets in a quarter.

Example:
    >>> q = Quarter(2021, 1)
    >>> q.label, str(q.start), str(q.end), q.days
    ('2021Q1', '2021-01-01', '2021-04-01', 90)
    >>> s = np.array(["2021-03-30"], dtype="datetime64[D]")
    >>> overlap_days(s, s + np.timedelta64(8, "D"), q).tolist()
    [2.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as dsa
import numpy as np
import numpy.typing as npt
import xarray as xr

from gppscale.errors import SpecError

__all__ = ["Quarter", "nan_frame", "overlap_days", "quarters_of", "reduce_quarter"]

_ONE_DAY = np.timedelta64(1, "D")


@dataclass(frozen=True, order=True)
class Quarter:
    """One calendar quarter: ``q`` 1 (January-March) to 4 (October-December) of ``year``.

    Quarters sort by time. ``start`` is the first day, ``end`` the first day of the next quarter
    (exclusive), both ``datetime64[D]``.

    Raises:
        SpecError: If ``q`` is not 1, 2, 3 or 4.

    Example:
        >>> q = Quarter(2021, 3)
        >>> q.label, q.days, q.mid_doy
        ('2021Q3', 92, 228)
        >>> sorted([Quarter(2022, 1), q])[0] == q
        True
    """

    year: int
    q: int

    def __post_init__(self) -> None:
        if isinstance(self.q, bool) or self.q not in (1, 2, 3, 4):
            raise SpecError(f"quarter {self.q!r} of year {self.year!r} is not 1, 2, 3 or 4; fix 'quarters'")
        if isinstance(self.year, bool) or not isinstance(self.year, int | np.integer):
            raise SpecError(f"quarter year {self.year!r} is not an integer; give years such as 2021")

    @property
    def start(self) -> np.datetime64:
        """First day of the quarter (``datetime64[D]``)."""
        return np.datetime64(f"{int(self.year):04d}-{3 * self.q - 2:02d}-01", "D")

    @property
    def end(self) -> np.datetime64:
        """First day after the quarter (``datetime64[D]``, exclusive)."""
        if self.q == 4:
            return np.datetime64(f"{int(self.year) + 1:04d}-01-01", "D")
        return np.datetime64(f"{int(self.year):04d}-{3 * self.q + 1:02d}-01", "D")

    @property
    def days(self) -> int:
        """Number of days in the quarter (90 to 92)."""
        return int((self.end - self.start) // _ONE_DAY)

    @property
    def label(self) -> str:
        """``"2021Q3"``."""
        return f"{int(self.year)}Q{self.q}"

    @property
    def mid_doy(self) -> int:
        """Day of year (1 on 1 January) of the middle day, ``start + days // 2``."""
        new_year = np.datetime64(f"{int(self.year):04d}-01-01", "D")
        return int((self.start - new_year) // _ONE_DAY) + self.days // 2 + 1


def quarters_of(years: Sequence[int], quarters: Sequence[int]) -> tuple[Quarter, ...]:
    """Every quarter ``q`` of every year, sorted by time, without duplicates.

    Raises:
        SpecError: If a quarter number is not 1-4.

    Example:
        >>> [q.label for q in quarters_of([2022, 2021], [3, 1])]
        ['2021Q1', '2021Q3', '2022Q1', '2022Q3']
    """
    return tuple(sorted({Quarter(int(y), int(q)) for y in years for q in quarters}))


def overlap_days(
    start: npt.NDArray[np.datetime64], end: npt.NDArray[np.datetime64], quarter: Quarter
) -> npt.NDArray[np.float64]:
    """Days each window ``[start, end)`` shares with ``quarter``, as float (0 when disjoint).

    ``start`` and ``end`` are ``datetime64`` arrays of any unit (fractions of a day count as such);
    a ``NaT`` bound gives 0.

    Example:
        >>> s = np.array(["2021-03-30", "2021-04-07"], dtype="datetime64[D]")
        >>> overlap_days(s, s + np.timedelta64(8, "D"), Quarter(2021, 2)).tolist()
        [6.0, 8.0]
    """
    start = np.asarray(start)
    end = np.asarray(end)
    if not (np.issubdtype(start.dtype, np.datetime64) and np.issubdtype(end.dtype, np.datetime64)):
        raise SpecError(
            f"window bounds must be datetime64 arrays, got {start.dtype} and {end.dtype}; "
            "convert them with np.asarray(..., dtype='datetime64[D]')"
        )
    lo = np.maximum(start, quarter.start)
    hi = np.minimum(end, quarter.end)
    days = (hi - lo) / _ONE_DAY
    return np.asarray(np.nan_to_num(np.maximum(days, 0.0), nan=0.0), dtype=np.float64)


def nan_frame(var: xr.DataArray) -> xr.DataArray:
    """All-NaN float32 like one time step of ``var`` (lazy, same chunks, when ``var`` is)."""
    dims = tuple(d for d in var.dims if d != "time")
    shape = tuple(var.sizes[d] for d in dims)
    coords = {k: v for k, v in var.coords.items() if "time" not in v.dims}
    if var.chunks is None:
        return xr.DataArray(np.full(shape, np.nan, np.float32), dims=dims, coords=coords)
    chunks = tuple(var.chunksizes[d] for d in dims)
    data = dsa.full(shape, np.nan, dtype=np.float32, chunks=chunks)  # type: ignore[no-untyped-call,unused-ignore]
    return xr.DataArray(data, dims=dims, coords=coords)


QuarterKernel = Callable[..., npt.NDArray[np.float32]]
"""``kernel(values_tyx, weights_t, **kw)`` -> float32 (y, x)."""


def _time_first(
    values_yxt: npt.NDArray[Any], kernel: QuarterKernel, weights_t: npt.NDArray[Any], **kw: float
) -> npt.NDArray[np.float32]:
    return kernel(np.moveaxis(values_yxt, -1, 0), weights_t, **kw)


def reduce_quarter(
    var: xr.DataArray, weights: npt.NDArray[Any], kernel: QuarterKernel, **kw: float
) -> xr.DataArray:
    """``kernel(values_tyx, weights_t, **kw)`` over the time steps with weight > 0, as float32 (y, x).

    The quarter's steps go into one time chunk with y/x chunks kept, so the graph stays linear in the
    number of y/x chunks; a quarter without steps gives all-NaN (:func:`nan_frame`).
    """
    idx = np.flatnonzero(weights > 0)
    if idx.size == 0:
        return nan_frame(var)
    part = var.isel(time=idx)
    if part.chunks is not None:
        part = part.chunk({"time": -1})
    out: xr.DataArray = xr.apply_ufunc(
        _time_first,
        part,
        input_core_dims=[["time"]],
        kwargs={"kernel": kernel, "weights_t": weights[idx], **kw},
        dask="parallelized",
        output_dtypes=[np.float32],
        keep_attrs=False,
    )
    return out
