"""Validation kernels and bootstrap intervals, with hand-checked numbers."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from affine import Affine
from odc.geo.geobox import GeoBox

import gppscale.stages.validate as validate_mod
from gppscale.errors import SpecError
from gppscale.stages.metrics import bootstrap_scores, scores
from gppscale.stages.quarters import Quarter
from gppscale.stages.validate import ALL_TYPES, POOLED, point_pixel, scores_by_type_quarter, window_mean


def test_doctests() -> None:
    assert doctest.testmod(validate_mod).failed == 0


def test_window_mean_by_hand() -> None:
    values = np.arange(25, dtype=float).reshape(5, 5)
    values[1, 1] = np.nan  # left out of the mean, not counted
    # window rows 0-2, cols 0-2 around (1, 1): 0 1 2 5 7 10 11 12 (6 is NaN) -> 48 / 8
    assert float(window_mean(values, 1, 1)) == 48 / 8
    stacked = np.stack([values, 2 * values])
    np.testing.assert_allclose(window_mean(stacked, 2, 2), [102 / 8, 204 / 8])  # 6 is NaN here too
    assert math.isnan(float(window_mean(values, 4, 2)))  # the window leaves the grid
    assert float(window_mean(values, 2, 2, half=2)) == pytest.approx(np.nanmean(values))


def test_point_pixel_round_trip() -> None:
    g = GeoBox((100, 100), Affine(30, 0, 500000, 0, -30, 4650000), "EPSG:32650")
    import pyproj

    lon, lat = pyproj.Transformer.from_crs("EPSG:32650", "EPSG:4326", always_xy=True).transform(
        500000 + 30 * 12.5, 4650000 - 30 * 40.5
    )
    assert point_pixel(g, lon, lat) == (40, 12)


def test_bootstrap_intervals_contain_the_point_estimate() -> None:
    rng = np.random.default_rng(3)
    obs = rng.gamma(4.0, 100.0, 400)
    pred = obs * 0.9 + rng.normal(0, 40, 400)
    s = bootstrap_scores(pred, obs, n_boot=300, seed=1)
    point = scores(pred, obs)
    for name in ("r2", "rmse", "md"):
        assert s[name] == point[name]
        assert s[f"{name}_lo"] <= s[name] <= s[f"{name}_hi"], name
    assert s["md"] < 0  # prediction below observation: md is prediction minus observation
    few = bootstrap_scores([1.0, 2.0], [1.0, 3.0])
    assert math.isnan(few["r2_lo"]) and few["n"] == 2


def test_scores_by_type_quarter_per_quarter_and_pooled() -> None:
    q = [Quarter(2021, 2), Quarter(2021, 3)]
    rng = np.random.default_rng(0)
    obs = np.stack([rng.normal(500, 50, (20, 20)), rng.normal(700, 50, (20, 20))])
    pred = obs + rng.normal(0, 10, obs.shape)
    types = np.zeros((20, 20), np.uint8)
    types[:10] = 4
    table = scores_by_type_quarter(pred, obs, types, q, {"DNF": 4, "EBF": 5}, n_boot=50)
    assert list(table.quarter) == ["2021Q2", "2021Q3", POOLED]  # EBF has no pixel: no rows
    assert (table.n == [200, 200, 400]).all()
    expected = scores(pred[0][types == 4], obs[0][types == 4])
    assert table.r2.iloc[0] == pytest.approx(expected["r2"])
    assert table.r2.iloc[2] > table.r2.iloc[0]  # pooling adds the seasonal step: a higher R²
    with pytest.raises(SpecError, match="do not fit"):
        scores_by_type_quarter(pred[:1], obs, types, q, {"DNF": 4})


def test_scores_over_all_types_and_at_sampled_pixels() -> None:
    q = [Quarter(2021, 2)]
    obs = np.array([[100.0, 200.0, 300.0, 400.0, 999.0]])
    pred = np.array([[110.0, 190.0, 330.0, 370.0, 0.0]])
    types = np.array([1, 1, 2, 2, 0])  # the last pixel is not forest: in no row
    table = scores_by_type_quarter(pred, obs, types, q, {"ENF": 1, ALL_TYPES: (1, 2)}, n_boot=20)
    overall = table[(table.forest_type == ALL_TYPES) & (table.quarter == "2021Q2")].iloc[0]
    # over the four forest pixels: errors 10, -10, 30, -30 -> MD 0, RMSE sqrt(500); SST = 50000
    assert overall.n == 4
    assert overall.md == pytest.approx(0.0)
    assert overall.rmse == pytest.approx(math.sqrt(500.0))
    assert overall.r2 == pytest.approx(1 - 2000 / 50000)
    enf = table[(table.forest_type == "ENF") & (table.quarter == "2021Q2")].iloc[0]
    assert enf.n == 2 and enf.rmse == pytest.approx(10.0)
