"""The 90 % interval of the 30 m maps: the ensemble's spread plus an error scale from held-out cells.

The members of a deep ensemble disagree where the data leave a model free, but they share its
structural error, so their spread alone makes intervals that are far too narrow. The interval's
half-width therefore adds, in quadrature, a relative error ``e`` measured on the held-out test cells::

    h = sqrt((z * std)**2 + (e * value)**2),   interval = [max(0, value - h), value + h]

with ``z`` the normal 90 % quantile. What ``e`` is depends on the maps:

* maps **as predicted**: ``e`` is the 90 % quantile of ``|A - G| / G`` over the test cells (``A`` the
  model's cell mean, ``G`` the coarse value): the model's error at the scale it is checked at
  (:func:`cell_error`);
* **mass-preserved** maps: the correction removes each cell's mean error and leaves the error *within*
  a cell, which no coarse value shows. It is estimated one scale up (:func:`within_block_error`): the
  test cells are grouped into blocks of ``block`` x ``block`` cells, their model means scaled so that each
  block's mean matches its cells' coarse mean (mass preservation of blocks), and ``e`` is the 90 %
  quantile of the remaining ``|Â - G| / G``: the error within a block of cells stands in for the error
  within a cell of pixels.

Only cell-quarters with ``G >= min_value`` count (dormant quarters make relative errors meaningless);
with fewer than ``min_cells`` of them ``e`` is NaN and the caller falls back (:func:`fill_errors`).

Example:
    >>> pred = np.array([[90.0], [110.0], [100.0], [100.0]])
    >>> obs = np.array([[100.0], [100.0], [100.0], [100.0]])
    >>> cell_error(pred, obs, min_cells=1)
    [0.1]
    >>> within_block_error(pred, obs, np.array([0, 0, 1, 1]), min_cells=1)  # the block means agree
    [0.1]
    >>> interval(np.array([100.0]), np.array([10.0]), np.array([0.1]), z=1.0)
    (array([85.85786438]), array([114.14213562]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gppscale.errors import SpecError

__all__ = [
    "BLOCK_CELLS",
    "QUANTILE",
    "Z90",
    "block_ids",
    "cell_error",
    "fill_errors",
    "interval",
    "within_block_error",
]

QUANTILE = 0.9
"""The interval's coverage, and the quantile of the held-out relative errors."""

Z90 = 1.6448536269514722
"""The standard normal quantile of a two-sided 90 % interval: the ensemble spread's share of it."""

BLOCK_CELLS = 3
"""Side, in coarse cells, of the blocks whose within-block error stands in for the within-cell error."""

MIN_VALUE = 10.0
"""Least coarse value (gC m-2 quarter-1) for a cell-quarter's relative error to count."""

MIN_CELLS = 20
"""Least cell-quarters for an error quantile; fewer give NaN."""

F64 = npt.NDArray[np.float64]


def _check(prediction: npt.ArrayLike, observation: npt.ArrayLike, where: str) -> tuple[F64, F64]:
    p, o = np.asarray(prediction, np.float64), np.asarray(observation, np.float64)
    if p.ndim != 2 or p.shape != o.shape:
        raise SpecError(
            f"{where}: prediction {p.shape} and observation {o.shape} must both be (cells, quarters)"
        )
    return p, o


def _quantiles(errors: F64, counted: npt.NDArray[np.bool_], min_cells: int) -> list[float]:
    """Per quarter (column), the :data:`QUANTILE` of ``errors`` where ``counted``; NaN below ``min_cells``."""
    return [
        float(np.quantile(errors[counted[:, t], t], QUANTILE))
        if counted[:, t].sum() >= min_cells
        else math.nan
        for t in range(errors.shape[1])
    ]


def cell_error(
    prediction: npt.ArrayLike,
    observation: npt.ArrayLike,
    *,
    min_value: float = MIN_VALUE,
    min_cells: int = MIN_CELLS,
) -> list[float]:
    """Per quarter, the 90 % quantile of ``|prediction - observation| / observation`` over test cells.

    Args:
        prediction: Model cell means ``(cells, T)``.
        observation: Coarse values ``(cells, T)``; NaN where unknown.
        min_value: Least observation for a cell-quarter to count.
        min_cells: Least counted cells for a quantile (else NaN).
    """
    p, o = _check(prediction, observation, "cell_error")
    counted = np.isfinite(p) & np.isfinite(o) & (o >= min_value)
    errors = np.abs(p - o) / np.where(counted, o, 1.0)
    return _quantiles(errors, counted, min_cells)


def within_block_error(
    prediction: npt.ArrayLike,
    observation: npt.ArrayLike,
    blocks: npt.ArrayLike,
    *,
    min_value: float = MIN_VALUE,
    min_cells: int = MIN_CELLS,
) -> list[float]:
    """Per quarter, the 90 % quantile of the relative error left after mass preservation of blocks.

    In each block (cells with the same id in ``blocks``) and quarter, the cells' predictions are scaled
    by ``sum(observation) / sum(prediction)`` over the block's cells where both are finite; blocks with
    fewer than two such cells are left out (nothing to spread within them).

    Args:
        prediction: Model cell means ``(cells, T)``.
        observation: Coarse values ``(cells, T)``; NaN where unknown.
        blocks: Block id of each cell ``(cells,)``, e.g. from :func:`block_ids`.
        min_value: Least observation for a cell-quarter to count.
        min_cells: Least counted cells for a quantile (else NaN).
    """
    p, o = _check(prediction, observation, "within_block_error")
    ids = np.asarray(blocks)
    if ids.shape != (p.shape[0],):
        raise SpecError(f"within_block_error: blocks has shape {ids.shape}; expected ({p.shape[0]},)")
    _, group = np.unique(ids, return_inverse=True)
    n_groups = int(group.max()) + 1 if group.size else 0
    both = np.isfinite(p) & np.isfinite(o)
    scaled = np.full(p.shape, np.nan)
    counts = np.zeros((n_groups, p.shape[1]))
    for t in range(p.shape[1]):
        ok = both[:, t]
        sum_p = np.bincount(group[ok], p[ok, t], minlength=n_groups)
        sum_o = np.bincount(group[ok], o[ok, t], minlength=n_groups)
        counts[:, t] = np.bincount(group[ok], minlength=n_groups)
        factor = np.divide(sum_o, sum_p, out=np.full(n_groups, np.nan), where=sum_p > 0)
        scaled[ok, t] = p[ok, t] * factor[group[ok]]
    shared = counts[group] >= 2 if group.size else np.zeros(p.shape, bool)
    counted = both & shared & np.isfinite(scaled) & (o >= min_value)
    errors = np.abs(scaled - o) / np.where(counted, o, 1.0)
    return _quantiles(errors, counted, min_cells)


def block_ids(rows: npt.ArrayLike, cols: npt.ArrayLike, block: int = BLOCK_CELLS) -> npt.NDArray[np.int64]:
    """The id of the ``block`` x ``block`` block of coarse cells at ``rows``/``cols``.

    Example:
        >>> block_ids(np.array([0, 2, 3, 0]), np.array([0, 2, 0, 3])).tolist()
        [0, 0, 4294967296, 1]
    """
    r = np.asarray(rows, np.int64) // block
    c = np.asarray(cols, np.int64) // block
    return (r << 32) + c


def fill_errors(errors: Sequence[float | None]) -> list[float]:
    """Quarters without an error quantile (NaN or None) take the largest of the others (0 when none).

    Example:
        >>> fill_errors([None, 0.1, float("nan"), 0.3])
        [0.3, 0.1, 0.3, 0.3]
    """
    values = [math.nan if e is None else float(e) for e in errors]
    finite = [v for v in values if math.isfinite(v)]
    top = max(finite) if finite else 0.0
    return [v if math.isfinite(v) else top for v in values]


def interval(value: npt.ArrayLike, std: npt.ArrayLike, error: npt.ArrayLike, *, z: float) -> tuple[F64, F64]:
    """``(lower, upper)`` = ``value -/+ sqrt((z * std)**2 + (error * value)**2)``, lower cut at 0.

    NaN where ``value`` or ``std`` is NaN. Arrays broadcast against each other.
    """
    v, s, e = (np.asarray(a, np.float64) for a in (value, std, error))
    half = np.sqrt((z * s) ** 2 + (e * v) ** 2)
    return np.maximum(v - half, 0.0), v + half
