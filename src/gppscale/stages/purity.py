"""Pure coarse cells per forest type, and the spatially blocked train/test split.

Both work on 1-D arrays with one entry per coarse cell (the sample table's rows).
:func:`select_pure` keeps, among cells mostly covered by one forest type, the share with the lowest
coefficient of variation (CV) of 30 m NDVI (the paper's "pure pixels"); when too few qualify it relaxes
the type-fraction threshold or skips the type, and says so with a :class:`~gppscale.errors.DataWarning`.
:func:`blocked_split` holds out whole square blocks of coarse cells, so that neighbouring, correlated
cells never sit on both sides of the split.

Example:
    >>> from gppscale.config import PurityParams
    >>> cv = np.array([0.05, 0.30, 0.10, 0.02])
    >>> frac = np.array([0.95, 0.99, 0.40, 0.92])  # cell 2 is mostly another type
    >>> keep, report = select_pure(cv, frac, PurityParams(fraction=0.5, min_cells=1), "DNF")
    >>> keep.tolist(), report.candidates, report.selected, report.action
    ([True, False, False, True], 3, 2, 'ok')
    >>> blocked_split(np.array([0, 1, 4, 5]), np.array([0, 0, 0, 0]), 4, 0.5, seed=1).tolist()  # 2 blocks
    [True, True, False, False]
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from gppscale.config import PurityParams
from gppscale.errors import DataWarning, SpecError

__all__ = [
    "RELAX_FLOOR",
    "RELAX_STEP",
    "PurityReport",
    "blocked_split",
    "n_selected",
    "n_test_blocks",
    "relax_steps",
    "select_pure",
]

RELAX_STEP = 0.1
"""How far each "relax" step lowers ``min_type_fraction``."""

RELAX_FLOOR = 0.5
"""Lowest ``min_type_fraction`` "relax" tries: below it a cell is no longer mostly of the type."""

Action = Literal["ok", "relaxed", "skipped"]
Bools = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]

# Counts such as 0.3 * 10 come out as 3.0000000000000004 in floating point; rounding to this many
# decimals first keeps ceil/round from stepping past the intended integer.
_DECIMALS = 9


@dataclass(frozen=True)
class PurityReport:
    """What :func:`select_pure` did for one forest type.

    Attributes:
        forest_type: The forest type, e.g. "DNF".
        candidates: Cells with a finite CV and a type fraction of at least ``min_type_fraction``.
        selected: Cells selected (0 when skipped).
        min_type_fraction: The type-fraction threshold of ``candidates``: the configured one, a relaxed
            one, or the lowest tried when relaxing failed.
        action: "ok" (configured threshold sufficed), "relaxed" or "skipped".
    """

    forest_type: str
    candidates: int
    selected: int
    min_type_fraction: float
    action: Action


def n_selected(fraction: float, n_candidates: int) -> int:
    """Cells kept out of ``n_candidates``: ⌈fraction * n⌉ (0.3 * 10 is 3, despite float rounding).

    Example:
        >>> n_selected(0.3, 10), n_selected(0.3, 11), n_selected(0.3, 0)
        (3, 4, 0)
    """
    return math.ceil(round(fraction * n_candidates, _DECIMALS))


def relax_steps(min_type_fraction: float) -> tuple[float, ...]:
    """Thresholds "relax" tries after ``min_type_fraction``: down by 0.1, ending at 0.5.

    Example:
        >>> relax_steps(0.9), relax_steps(0.75), relax_steps(0.5)
        ((0.8, 0.7, 0.6, 0.5), (0.65, 0.55, 0.5), ())
    """
    steps: list[float] = []
    t = round(min_type_fraction - RELAX_STEP, _DECIMALS)
    while t > RELAX_FLOOR:
        steps.append(t)
        t = round(t - RELAX_STEP, _DECIMALS)
    if min_type_fraction > RELAX_FLOOR:
        steps.append(RELAX_FLOOR)
    return tuple(steps)


def _candidates(cv: F64, type_fraction: F64, threshold: float) -> Bools:
    with np.errstate(invalid="ignore"):
        return np.asarray(np.isfinite(cv) & (type_fraction >= threshold), dtype=np.bool_)


def _lowest_cv(cv: F64, candidates: Bools, fraction: float) -> Bools:
    """The ⌈fraction * n⌉ candidates with the lowest CV; ties go to the lower index."""
    idx = np.flatnonzero(candidates)
    order = idx[np.argsort(cv[idx], kind="stable")]
    keep = np.zeros(cv.shape, dtype=np.bool_)
    keep[order[: n_selected(fraction, idx.size)]] = True
    return keep


def _check_cells(cv: F64, type_fraction: F64, forest_type: str) -> None:
    if cv.ndim != 1 or cv.shape != type_fraction.shape:
        raise SpecError(
            f"purity of {forest_type}: cv and type_fraction must be 1-D with one value per coarse cell, got "
            f"shapes {cv.shape} and {type_fraction.shape}; flatten the coarse cells first"
        )


def select_pure(
    cv: npt.ArrayLike, type_fraction: npt.ArrayLike, params: PurityParams, forest_type: str
) -> tuple[Bools, PurityReport]:
    """Pure coarse cells of one forest type: the ``params.fraction`` of candidates with the lowest CV.

    Candidates are cells with a finite ``cv`` and ``type_fraction >= params.min_type_fraction``;
    exactly ⌈fraction * candidates⌉ of them are selected, lowest CV first, ties by lower index. When
    that is fewer than ``params.min_cells``:

    * ``fallback="relax"`` lowers the threshold through :func:`relax_steps` (by 0.1, down to 0.5) and
      takes the first one that yields ``min_cells``; if none does, no cell is selected;
    * ``fallback="skip"`` selects no cell.

    Either way one :class:`~gppscale.errors.DataWarning` names the type, the counts and the action.

    Args:
        cv: Coefficient of variation of 30 m NDVI in each coarse cell (NaN where unknown).
        type_fraction: Share of each coarse cell's area covered by ``forest_type``, 0 to 1.
        params: The type's purity parameters (:meth:`gppscale.config.PuritySpec.for_type`).
        forest_type: The type's name, for the report and messages.

    Returns:
        A boolean mask over the cells (True = selected) and a :class:`PurityReport`.

    Raises:
        SpecError: If ``cv`` and ``type_fraction`` are not 1-D arrays of one shape.

    Example:
        >>> import warnings
        >>> from gppscale.config import PurityParams
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     params = PurityParams(fraction=0.5, min_cells=2)
        ...     keep, report = select_pure([0.1, 0.2, 0.3], [0.95, 0.7, 0.6], params, "ENF")
        >>> keep.tolist(), report.min_type_fraction, report.action, len(caught)  # ⌈0.5 * 3⌉ = 2 at 0.6
        ([True, True, False], 0.6, 'relaxed', 1)
    """
    cv_a = np.asarray(cv, dtype=np.float64)
    frac_a = np.asarray(type_fraction, dtype=np.float64)
    _check_cells(cv_a, frac_a, forest_type)
    first = _candidates(cv_a, frac_a, params.min_type_fraction)
    keep = _lowest_cv(cv_a, first, params.fraction)
    if keep.sum() >= params.min_cells:
        return keep, PurityReport(
            forest_type, int(first.sum()), int(keep.sum()), params.min_type_fraction, "ok"
        )
    tried = relax_steps(params.min_type_fraction) if params.fallback == "relax" else ()
    for threshold in tried:
        cand = _candidates(cv_a, frac_a, threshold)
        keep = _lowest_cv(cv_a, cand, params.fraction)
        if keep.sum() >= params.min_cells:
            report = PurityReport(forest_type, int(cand.sum()), int(keep.sum()), threshold, "relaxed")
            _warn(params, report, int(first.sum()))
            return keep, report
    last = tried[-1] if tried else params.min_type_fraction
    n_last = int(_candidates(cv_a, frac_a, last).sum())
    report = PurityReport(forest_type, n_last, 0, last, "skipped")
    _warn(params, report, int(first.sum()))
    return np.zeros(cv_a.shape, dtype=np.bool_), report


def _warn(params: PurityParams, report: PurityReport, first_candidates: int) -> None:
    t = report.forest_type
    short = (
        f"purity of {t}: {first_candidates} candidate cells at min_type_fraction={params.min_type_fraction} "
        f"give {n_selected(params.fraction, first_candidates)} pure cells (fraction={params.fraction}), "
        f"fewer than min_cells={params.min_cells}"
    )
    if report.action == "relaxed":
        msg = (
            f"{short}; relaxed min_type_fraction to {report.min_type_fraction}: {report.candidates} "
            f"candidates, {report.selected} selected"
        )
    elif params.fallback == "relax":
        msg = (
            f"{short}; relaxing down to min_type_fraction={report.min_type_fraction} still gives "
            f"{n_selected(params.fraction, report.candidates)} of {report.candidates} candidates, so {t} is "
            f"skipped (no cells selected); lower purity.{t}.min_cells or raise purity.{t}.fraction"
        )
    else:
        msg = (
            f"{short}; fallback='skip', so {t} is skipped (no cells selected); set "
            f"purity.{t}.fallback: relax or lower purity.{t}.min_cells"
        )
    warnings.warn(msg, DataWarning, stacklevel=3)


def n_test_blocks(test_fraction: float, n_blocks: int) -> int:
    """Blocks held out: ``test_fraction * n_blocks`` to the nearest integer (halves up), within [1, n - 1].

    With fewer than two blocks nothing can be held out and the result is 0.

    Example:
        >>> n_test_blocks(0.3, 10), n_test_blocks(0.3, 5), n_test_blocks(0.01, 3), n_test_blocks(0.9, 3)
        (3, 2, 1, 2)
    """
    if n_blocks < 2:
        return 0
    n = math.floor(round(test_fraction * n_blocks, _DECIMALS) + 0.5)
    return min(max(n, 1), n_blocks - 1)


def _check_split(
    row: npt.NDArray[np.generic], col: npt.NDArray[np.generic], block_cells: int, test_fraction: float
) -> None:
    if row.ndim != 1 or row.shape != col.shape:
        raise SpecError(
            "blocked_split: cell_row and cell_col must be 1-D with one value per cell, got shapes "
            f"{row.shape} and {col.shape}; flatten the coarse cells first"
        )
    if not (np.issubdtype(row.dtype, np.integer) and np.issubdtype(col.dtype, np.integer)):
        raise SpecError(
            "blocked_split: cell_row/cell_col must be integer coarse-grid indices, got "
            f"{row.dtype}/{col.dtype}; pass the cells' row and column numbers"
        )
    if isinstance(block_cells, bool) or int(block_cells) != block_cells or block_cells < 1:
        raise SpecError(f"split.block_cells={block_cells!r} must be a whole number of cells >= 1")
    if not 0.0 < test_fraction < 1.0:
        raise SpecError(f"split.test_fraction={test_fraction!r} is outside (0, 1); give e.g. 0.3")


def blocked_split(
    cell_row: npt.ArrayLike, cell_col: npt.ArrayLike, block_cells: int, test_fraction: float, seed: int
) -> Bools:
    """Test/train assignment of coarse cells by whole square blocks (True = test).

    A cell's block is ``(row // block_cells, col // block_cells)``. Blocks are ordered by that id, then
    a permutation seeded with ``seed`` picks :func:`n_test_blocks` of them for testing, so a block (and
    every cell in it) is wholly test or wholly train, and the same cells, block size and seed always
    give the same split, whatever the order of the cells. A single block cannot be split: it goes to
    training with a :class:`~gppscale.errors.DataWarning`.

    Args:
        cell_row: Row index of each cell on the coarse grid (integers).
        cell_col: Column index of each cell.
        block_cells: Side of a block, in coarse cells (``split.block_cells``).
        test_fraction: Share of blocks held out, (0, 1) (``split.test_fraction``).
        seed: Random seed (``split.seed``).

    Returns:
        Boolean array, one value per cell, True for test.

    Raises:
        SpecError: If the indices are not 1-D integer arrays of one shape, or a parameter is out of range.

    Example:
        >>> rows, cols = np.repeat(np.arange(4), 4), np.tile(np.arange(4), 4)  # a 4 x 4 grid, 2 x 2 blocks
        >>> test = blocked_split(rows, cols, 2, 0.25, seed=0)
        >>> int(test.sum()), int(test.reshape(4, 4)[::2, ::2].sum())  # one block of four cells
        (4, 1)
    """
    row, col = np.asarray(cell_row), np.asarray(cell_col)
    _check_split(row, col, block_cells, test_fraction)
    if row.size == 0:
        return np.zeros(0, dtype=np.bool_)
    blocks = np.stack([row // block_cells, col // block_cells], axis=1)
    unique, inverse = np.unique(blocks, axis=0, return_inverse=True)
    n_blocks = unique.shape[0]
    if n_blocks < 2:
        warnings.warn(
            f"blocked_split: all {row.size} cells fall in one block of {block_cells} x {block_cells} cells, "
            "so none can be held out for testing; lower split.block_cells",
            DataWarning,
            stacklevel=2,
        )
    test_block = np.zeros(n_blocks, dtype=np.bool_)
    perm = np.random.default_rng(seed).permutation(n_blocks)
    test_block[perm[: n_test_blocks(test_fraction, n_blocks)]] = True
    return np.asarray(test_block[inverse.ravel()], dtype=np.bool_)
