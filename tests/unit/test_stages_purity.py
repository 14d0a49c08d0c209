"""Pure-cell selection per forest type (with its fallbacks) and the spatially blocked split."""

from __future__ import annotations

import doctest
import math
import random
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gppscale.stages.purity as purity_mod
from gppscale.config import PurityParams, PuritySpec
from gppscale.errors import DataWarning, SpecError
from gppscale.stages.purity import (
    PurityReport,
    blocked_split,
    n_selected,
    n_test_blocks,
    relax_steps,
    select_pure,
)

NAN = np.nan

# --- select_pure ------------------------------------------------------------------------------------


def test_select_lowest_cv_among_candidates() -> None:
    cv = np.array([0.30, 0.05, NAN, 0.10, 0.02, 0.20, 0.01])
    frac = np.array([0.95, 0.91, 1.00, 0.90, 0.50, 0.99, 0.97])
    # candidates: 0, 1, 3, 5, 6 (2 has no CV, 4 is mostly another type); ⌈0.4 * 5⌉ = 2 → cells 6, 1
    keep, report = select_pure(cv, frac, PurityParams(fraction=0.4, min_cells=1), "ENF")
    assert np.flatnonzero(keep).tolist() == [1, 6]
    assert report == PurityReport("ENF", candidates=5, selected=2, min_type_fraction=0.9, action="ok")


def test_ties_broken_by_index() -> None:
    keep, _ = select_pure(np.full(6, 0.1), np.ones(6), PurityParams(fraction=0.5, min_cells=1), "MF")
    assert keep.tolist() == [True, True, True, False, False, False]


def test_float_rounding_of_count() -> None:
    # 0.3 * 10 is 3.0000000000000004 in floating point; exactly 3 cells are kept, not 4.
    assert n_selected(0.3, 10) == 3
    keep, _ = select_pure(np.arange(10.0), np.ones(10), PurityParams(fraction=0.3, min_cells=1), "DBF")
    assert keep.tolist() == [True] * 3 + [False] * 7


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(1, 60), elements=st.floats(0, 1) | st.just(NAN)),
    st.data(),
    st.integers(1, 100),
)
def test_selection_properties(cv: np.ndarray, data: st.DataObject, percent: int) -> None:
    frac = data.draw(hnp.arrays(np.float64, cv.shape, elements=st.floats(0, 1)))
    params = PurityParams(fraction=percent / 100, min_type_fraction=0.6, min_cells=1, fallback="skip")
    candidates = np.isfinite(cv) & (frac >= 0.6)
    n = int(candidates.sum())
    if n == 0:
        with pytest.warns(DataWarning, match="skipped"):
            keep, report = select_pure(cv, frac, params, "DNF")
        assert not keep.any() and report.action == "skipped"
        return
    keep, report = select_pure(cv, frac, params, "DNF")
    assert int(keep.sum()) == math.ceil(Fraction(percent, 100) * n) == report.selected
    assert report.candidates == n and report.action == "ok"
    assert not (keep & ~candidates).any()
    rest = candidates & ~keep
    if rest.any():
        assert cv[keep].max() <= cv[rest].min()


def test_exact_count_per_type_from_spec() -> None:
    spec = PuritySpec.model_validate(
        {"*": {"fraction": 0.3, "min_cells": 1}, "DNF": {"fraction": 0.5}, "MF": {"min_type_fraction": 0.6}}
    )
    rng = np.random.default_rng(3)
    cv = rng.uniform(0, 0.5, 40)
    fractions = {t: rng.uniform(0.3, 1.0, 40) for t in ("ENF", "DBF", "MF", "DNF")}
    for forest_type, frac in fractions.items():
        params = spec.for_type(forest_type)
        keep, report = select_pure(cv, frac, params, forest_type)
        n = int((frac >= params.min_type_fraction).sum())
        assert int(keep.sum()) == math.ceil(Fraction(str(params.fraction)) * n), forest_type
        assert report.forest_type == forest_type and report.min_type_fraction == params.min_type_fraction


def test_relax_steps() -> None:
    assert relax_steps(0.9) == (0.8, 0.7, 0.6, 0.5)
    assert relax_steps(1.0) == (0.9, 0.8, 0.7, 0.6, 0.5)
    assert relax_steps(0.95) == (0.85, 0.75, 0.65, 0.55, 0.5)
    assert relax_steps(0.55) == (0.5,)
    assert relax_steps(0.5) == relax_steps(0.3) == ()


def test_relax_lowers_threshold_until_enough() -> None:
    cv = np.linspace(0.01, 0.2, 10)
    frac = np.array([0.95, 0.95, 0.85, 0.85, 0.75, 0.75, 0.65, 0.65, 0.45, 0.45])
    params = PurityParams(fraction=0.5, min_type_fraction=0.9, min_cells=3, fallback="relax")
    # at 0.9: 2 candidates → 1; 0.8: 4 → 2; 0.7: 6 → 3 ≥ min_cells
    with pytest.warns(DataWarning) as record:
        keep, report = select_pure(cv, frac, params, "DNF")
    assert len(record) == 1
    msg = str(record[0].message)
    for part in (
        "DNF",
        "2 candidate cells",
        "min_cells=3",
        "relaxed min_type_fraction to 0.7",
        "6 candidates",
    ):
        assert part in msg, msg
    assert np.flatnonzero(keep).tolist() == [0, 1, 2]
    assert report == PurityReport("DNF", candidates=6, selected=3, min_type_fraction=0.7, action="relaxed")


def test_relax_fails_selects_none_and_warns() -> None:
    cv = np.array([0.1, 0.2, 0.3, 0.4])
    frac = np.array([0.95, 0.6, 0.55, 0.2])
    params = PurityParams(fraction=1.0, min_type_fraction=0.9, min_cells=4, fallback="relax")
    with pytest.warns(DataWarning, match=r"ENF.*relaxing down to min_type_fraction=0.5.*skipped") as record:
        keep, report = select_pure(cv, frac, params, "ENF")
    assert len(record) == 1
    assert not keep.any()
    assert report == PurityReport("ENF", candidates=3, selected=0, min_type_fraction=0.5, action="skipped")


def test_skip_selects_none_and_warns() -> None:
    cv = np.array([0.1, 0.2, 0.3])
    frac = np.array([0.95, 0.95, 0.8])
    params = PurityParams(fraction=0.5, min_type_fraction=0.9, min_cells=2, fallback="skip")
    with pytest.warns(
        DataWarning, match=r"purity of MF: 2 candidate cells .* give 1 pure cells .*skip"
    ) as record:
        keep, report = select_pure(cv, frac, params, "MF")
    assert len(record) == 1
    assert keep.dtype == np.bool_ and not keep.any()
    assert report == PurityReport("MF", candidates=2, selected=0, min_type_fraction=0.9, action="skipped")


def test_relax_with_threshold_at_floor_skips() -> None:
    params = PurityParams(fraction=0.5, min_type_fraction=0.5, min_cells=5, fallback="relax")
    with pytest.warns(DataWarning, match="skipped"):
        keep, report = select_pure(np.ones(3), np.ones(3), params, "DBF")
    assert not keep.any() and report.min_type_fraction == 0.5 and report.candidates == 3


def test_empty_input_warns() -> None:
    with pytest.warns(DataWarning, match="0 candidate cells"):
        keep, report = select_pure(np.array([]), np.array([]), PurityParams(), "ENF")
    assert keep.shape == (0,) and report.selected == 0


def test_no_warning_when_enough() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        select_pure(np.arange(5.0), np.ones(5), PurityParams(fraction=1.0, min_cells=5), "ENF")


def test_shape_errors() -> None:
    with pytest.raises(SpecError, match=r"purity of ENF.*shapes"):
        select_pure(np.ones(3), np.ones(4), PurityParams(), "ENF")
    with pytest.raises(SpecError, match="1-D"):
        select_pure(np.ones((2, 2)), np.ones((2, 2)), PurityParams(), "ENF")


def test_report_is_frozen() -> None:
    report = PurityReport("ENF", 1, 1, 0.9, "ok")
    with pytest.raises(AttributeError):
        report.selected = 2  # type: ignore[misc]


# --- blocked_split ----------------------------------------------------------------------------------


def test_n_test_blocks() -> None:
    assert [n_test_blocks(0.3, n) for n in (2, 3, 5, 10, 11)] == [1, 1, 2, 3, 3]
    assert n_test_blocks(0.01, 5) == 1  # at least one block
    assert n_test_blocks(0.99, 5) == 4  # at most n - 1
    assert n_test_blocks(0.5, 1) == 0 and n_test_blocks(0.5, 0) == 0


def test_split_by_whole_blocks_hand_worked() -> None:
    rows, cols = np.repeat(np.arange(6), 6), np.tile(np.arange(6), 6)  # 6 x 6 cells, 3 x 3 blocks of 2 x 2
    test = blocked_split(rows, cols, 2, 0.3, seed=7).reshape(6, 6)
    blocks = test.reshape(3, 2, 3, 2).transpose(0, 2, 1, 3).reshape(9, 4)
    assert (blocks.all(axis=1) | ~blocks.any(axis=1)).all()  # every block wholly in one part
    assert int(blocks[:, 0].sum()) == 3  # round(0.3 * 9) = round(2.7) = 3 blocks


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-20, 40), st.integers(0, 40)), min_size=1, max_size=80),
    st.integers(1, 6),
    st.integers(1, 99),
    st.integers(0, 2**32 - 1),
    st.randoms(use_true_random=False),
)
def test_split_properties(
    cells: list[tuple[int, int]], block: int, percent: int, seed: int, rnd: random.Random
) -> None:
    rows = np.array([c[0] for c in cells])
    cols = np.array([c[1] for c in cells])
    blocks = {(r // block, c // block) for r, c in cells}
    if len(blocks) < 2:
        with pytest.warns(DataWarning, match="one block"):
            test = blocked_split(rows, cols, block, percent / 100, seed)
        assert not test.any()
        return
    test = blocked_split(rows, cols, block, percent / 100, seed)
    parts: dict[tuple[int, int], set[bool]] = {}
    for r, c, t in zip(rows, cols, test, strict=True):
        parts.setdefault((r // block, c // block), set()).add(bool(t))
    assert all(len(p) == 1 for p in parts.values())  # no block in both parts
    n_test = sum(True in p for p in parts.values())
    expected = min(max(math.floor(Fraction(percent, 100) * len(blocks) + Fraction(1, 2)), 1), len(blocks) - 1)
    assert n_test == expected
    np.testing.assert_array_equal(blocked_split(rows, cols, block, percent / 100, seed), test)  # same seed
    order = np.arange(rows.size)
    rnd.shuffle(order)
    shuffled = blocked_split(rows[order], cols[order], block, percent / 100, seed)
    np.testing.assert_array_equal(shuffled, test[order])  # the cells' order does not matter


def test_seed_changes_split() -> None:
    rows, cols = np.repeat(np.arange(20), 20), np.tile(np.arange(20), 20)
    splits = {blocked_split(rows, cols, 4, 0.3, seed).tobytes() for seed in range(5)}
    assert len(splits) > 1


def test_split_one_block_warns() -> None:
    with pytest.warns(DataWarning, match=r"all 3 cells fall in one block of 4 x 4.*split.block_cells"):
        test = blocked_split(np.array([0, 1, 2]), np.array([3, 2, 1]), 4, 0.3, seed=0)
    assert test.tolist() == [False, False, False]


def test_split_empty() -> None:
    assert blocked_split(np.array([], int), np.array([], int), 4, 0.3, 0).shape == (0,)


@pytest.mark.parametrize(
    ("rows", "cols", "block", "fraction", "match"),
    [
        (np.arange(3), np.arange(4), 2, 0.3, "shapes"),
        (np.arange(3.0), np.arange(3.0), 2, 0.3, "integer"),
        (np.arange(3), np.arange(3), 0, 0.3, "block_cells"),
        (np.arange(3), np.arange(3), 2, 1.0, "test_fraction"),
        (np.arange(3), np.arange(3), 2, 0.0, "test_fraction"),
    ],
)
def test_split_errors(rows: np.ndarray, cols: np.ndarray, block: int, fraction: float, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        blocked_split(rows, cols, block, fraction, seed=0)


def test_doctests() -> None:
    result = doctest.testmod(purity_mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
