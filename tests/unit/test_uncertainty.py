"""The 90 % interval's pieces: held-out error quantiles, blocks, the fill-in and the interval, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gppscale.errors import SpecError
from gppscale.io.predict import ensemble_mean_std
from gppscale.stages.uncertainty import (
    block_ids,
    cell_error,
    fill_errors,
    interval,
    within_block_error,
)


def test_cell_error_is_the_90_percent_quantile_of_relative_errors() -> None:
    # Ten cells, relative errors 0.00, 0.01, ..., 0.09: numpy's linear quantile at 0.9 is 0.081.
    obs = np.full((10, 1), 100.0)
    pred = obs + np.arange(10)[:, None]
    assert cell_error(pred, obs, min_cells=10) == pytest.approx([0.081])
    # Dormant cell-quarters (below min_value) and NaN never count; too few cells give NaN.
    obs[:5] = 5.0
    assert math.isnan(cell_error(pred, obs, min_cells=6)[0])
    assert cell_error(pred, obs, min_cells=5) == pytest.approx(
        [np.quantile([0.05, 0.06, 0.07, 0.08, 0.09], 0.9)]
    )


def test_within_block_error_removes_each_blocks_mean_error() -> None:
    # Block 0: both cells 20 % too high -> scaling by the block's ratio leaves no error.
    # Block 1: predictions 90 and 130 for 100 and 150 -> factor 250/220: 102.27 (0.0227) and 147.73
    # (0.0152). Block 2 has one cell: nothing to spread, left out.
    pred = np.array([[120.0], [240.0], [90.0], [130.0], [50.0]])
    obs = np.array([[100.0], [200.0], [100.0], [150.0], [70.0]])
    blocks = np.array([0, 0, 1, 1, 2])
    block1 = [abs(90 * 250 / 220 - 100) / 100, abs(130 * 250 / 220 - 150) / 150]
    assert block1 == pytest.approx([0.022727, 0.015152], abs=1e-6)
    errors = [0.0, 0.0, *block1]
    assert within_block_error(pred, obs, blocks, min_cells=4) == pytest.approx([np.quantile(errors, 0.9)])
    assert math.isnan(within_block_error(pred, obs, blocks, min_cells=5)[0])
    # Per quarter: a NaN observation takes that cell out of its block for that quarter only.
    two = np.hstack([pred, pred])
    obs_two = np.hstack([obs, obs])
    obs_two[1, 1] = np.nan
    got = within_block_error(two, obs_two, blocks, min_cells=1)
    assert got[0] == pytest.approx(np.quantile(errors, 0.9))
    assert got[1] == pytest.approx(np.quantile(block1, 0.9))  # block 0 now holds one cell
    with pytest.raises(SpecError, match="blocks has shape"):
        within_block_error(pred, obs, blocks[:3])


def test_blocks_of_three_cells_a_side() -> None:
    ids = block_ids(np.array([0, 2, 3, 5, 0]), np.array([0, 2, 2, 8, 3]))
    assert ids[0] == ids[1] and len(set(ids.tolist())) == 4


def test_missing_quarters_take_the_largest_error() -> None:
    assert fill_errors([0.2, None, float("nan")]) == [0.2, 0.2, 0.2]
    assert fill_errors([None, None]) == [0.0, 0.0]


def test_interval_adds_spread_and_error_in_quadrature() -> None:
    # 100 +/- sqrt((1.645 * 3)^2 + (0.1 * 100)^2) = 100 +/- 11.1575...
    lower, upper = interval(np.array([100.0, 2.0, np.nan]), np.array([3.0, 5.0, 1.0]), 0.1, z=1.645)
    half = math.sqrt((1.645 * 3) ** 2 + 10**2)
    assert lower[0] == pytest.approx(100 - half) and upper[0] == pytest.approx(100 + half)
    assert lower[1] == 0.0  # never negative
    assert np.isnan(lower[2]) and np.isnan(upper[2])


def test_ensemble_mean_and_sample_std() -> None:
    mean, std = ensemble_mean_std(
        [np.array([[1.0, np.nan]]), np.array([[3.0, np.nan]]), np.array([[5.0, 1]])]
    )
    assert mean[0, 0] == 3.0 and std is not None and std[0, 0] == pytest.approx(2.0)
    assert np.isnan(mean[0, 1]) and np.isnan(std[0, 1])  # NaN off forest stays NaN
