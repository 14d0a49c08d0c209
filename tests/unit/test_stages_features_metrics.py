"""Model inputs (features), scores, the 30 m prediction kernel and pixel→cell lookup, by hand."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pandas as pd
import pytest
import torch
from affine import Affine
from odc.geo.geobox import GeoBox

import gppscale.stages.features as features_mod
import gppscale.stages.metrics as metrics_mod
import gppscale.stages.predict as predict_mod
from gppscale.errors import SpecError
from gppscale.stages.aggregate import pixel_cells
from gppscale.stages.features import (
    SEASON_FEATURES,
    cube_to_sequences,
    feature_names,
    season_features,
    table_to_sequences,
)
from gppscale.stages.metrics import scores, scores_by_quarter, within_quarter_r2
from gppscale.stages.predict import predict_block
from gppscale.stages.quarters import Quarter

Q = [Quarter(2021, 1), Quarter(2021, 2), Quarter(2021, 3)]


@pytest.mark.parametrize("module", [features_mod, metrics_mod, predict_mod])
def test_doctests(module: object) -> None:
    assert doctest.testmod(module).failed == 0  # type: ignore[arg-type]


# --- features ----------------------------------------------------------------------------------------


def test_season_features_by_hand() -> None:
    # 2021Q2 runs 1 April (day 91) for 91 days; its middle day is 91 + 45 = 136 of 365.
    (sin, cos), *_ = season_features([Quarter(2021, 2)])
    assert sin == pytest.approx(math.sin(2 * math.pi * 136 / 365), abs=1e-6)
    assert cos == pytest.approx(math.cos(2 * math.pi * 136 / 365), abs=1e-6)
    # A leap year divides by 366.
    (sin_leap, _), *_ = season_features([Quarter(2020, 2)])
    assert sin_leap == pytest.approx(math.sin(2 * math.pi * 137 / 366), abs=1e-6)


def test_table_to_sequences_places_rows_by_cell_and_quarter() -> None:
    table = pd.DataFrame(
        {
            "cell": [5, 3, 5, 3],
            "quarter": ["2021Q3", "2021Q1", "2021Q1", "2021Q2"],
            "ndvi": [0.7, 0.1, 0.2, 0.5],
            "tmean": [20.0, -5.0, -4.0, 12.0],
            "gpp": [400.0, 5.0, 6.0, 200.0],
        }
    )
    x, y, cells = table_to_sequences(table, ["ndvi", "tmean"], "gpp", Q)
    assert cells.tolist() == [3, 5]
    assert x.shape == (2, 3, 2 + len(SEASON_FEATURES))
    np.testing.assert_array_equal(x[0, :, 0], np.array([0.1, 0.5, np.nan], np.float32))
    np.testing.assert_array_equal(x[1, :, 1], np.array([-4.0, np.nan, 20.0], np.float32))
    np.testing.assert_array_equal(y, np.array([[5, 200, np.nan], [6, np.nan, 400]], np.float32))
    np.testing.assert_array_equal(x[0, :, 2:], season_features(Q))
    with pytest.raises(SpecError, match=r"lacks columns \['evi'\]"):
        table_to_sequences(table, ["evi"], "gpp", Q)
    with pytest.raises(SpecError, match=r"quarters \['2021Q3'\] that the run does not"):
        table_to_sequences(table, ["ndvi"], "gpp", Q[:2])


def test_cube_to_sequences_mixes_quarterly_and_static_layers() -> None:
    ndvi = np.arange(3 * 2 * 2, dtype=np.float32).reshape(3, 2, 2)
    elevation = np.array([[100.0, 200.0], [300.0, 400.0]], np.float32)
    x = cube_to_sequences({"ndvi": ndvi, "elevation": elevation}, ["elevation", "ndvi"], Q)
    assert x.shape == (4, 3, 4)
    np.testing.assert_array_equal(x[1, :, 0], [200.0, 200.0, 200.0])  # pixel (0, 1)
    np.testing.assert_array_equal(x[1, :, 1], ndvi[:, 0, 1])
    assert feature_names(["elevation", "ndvi"]) == ["elevation", "ndvi", *SEASON_FEATURES]
    with pytest.raises(SpecError, match=r"lacks predictors \['evi'\]"):
        cube_to_sequences({"ndvi": ndvi}, ["evi"], Q)
    with pytest.raises(SpecError, match="feature names repeat"):
        feature_names(["ndvi", "ndvi"])


# --- metrics -----------------------------------------------------------------------------------------


def test_scores_by_hand() -> None:
    # obs 2, 4, 6 (mean 4, SST 8); pred 3, 4, 8: errors 1, 0, 2 → SSE 5, RMSE √(5/3), MD 1
    s = scores([3.0, 4.0, 8.0], [2.0, 4.0, 6.0])
    assert s == pytest.approx({"r2": 1 - 5 / 8, "rmse": math.sqrt(5 / 3), "md": 1.0, "n": 3})
    assert scores([1.0], [1.0])["n"] == 1 and math.isnan(scores([1.0], [1.0])["r2"])
    assert math.isnan(scores([1.0, 2.0], [3.0, 3.0])["r2"])  # no variance in the observations
    with pytest.raises(SpecError, match="differs"):
        scores([1.0], [1.0, 2.0])


def test_pooled_r2_hides_a_useless_within_quarter_model() -> None:
    # The truth has a strong seasonal cycle and spatial variation within each quarter; a "model" that
    # only knows the quarter mean gets a high pooled R² but zero within each quarter.
    rng = np.random.default_rng(0)
    season = np.array([20.0, 400.0, 600.0, 50.0])
    obs = season + rng.normal(0, 30, size=(500, 4))
    pred = np.broadcast_to(obs.mean(axis=0), obs.shape)
    assert scores(pred, obs)["r2"] > 0.95
    by_q = scores_by_quarter(pred, obs, ["Q1", "Q2", "Q3", "Q4"])
    assert all(s["r2"] == pytest.approx(0.0, abs=1e-9) for s in by_q.values())
    assert within_quarter_r2(pred, obs) == pytest.approx(0.0, abs=1e-9)
    # A model that halves each cell's anomaly explains 1 - 0.25 = 75 % of the within-quarter variance.
    half = pred + 0.5 * (obs - pred)
    assert within_quarter_r2(half, obs) == pytest.approx(0.75, abs=1e-9)


# --- pixel cells and the prediction kernel ------------------------------------------------------------


def test_pixel_cells_across_crs() -> None:
    fine = GeoBox((4, 4), Affine(30, 0, 500000, 0, -30, 4650000), "EPSG:32650")
    sin = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"
    big = GeoBox((1, 1), Affine(1e7, 0, 0, 0, -1e7, 1e7), sin)  # one huge cell holding everything
    assert (pixel_cells(fine, big) == 0).all()
    assert pixel_cells(fine, big, slice(1, 3), slice(0, 1)).shape == (2, 1)


class _Linear(torch.nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x[..., 0] + x[..., 1]  # first predictor, plus the season sine


def test_predict_block_uses_each_types_model_and_leaves_others_nan() -> None:
    ndvi = np.full((3, 2, 2), 0.5, np.float32)
    types = np.array([[1, 4], [0, 255]], np.uint8)
    out = predict_block({"ndvi": ndvi}, types, {1: _Linear(10.0), 4: _Linear(100.0)}, ["ndvi"], Q)
    sin = season_features(Q)[:, 0]
    np.testing.assert_allclose(out[:, 0, 0], 5.0 + sin, rtol=1e-6)
    np.testing.assert_allclose(out[:, 0, 1], 50.0 + sin, rtol=1e-6)
    assert np.isnan(out[:, 1, :]).all()
    with pytest.raises(SpecError, match=r"predictor 'ndvi' has shape \(2, 2, 2\)"):
        predict_block({"ndvi": ndvi[:2]}, types, {1: _Linear(1.0)}, ["ndvi"], Q)


def test_predict_block_runs_the_tree_baseline_at_sampled_pixels() -> None:
    from gppscale.train import fit_trees

    # Labels are 100 x NDVI; the trees learn that step function of NDVI from 200 cells.
    rng = np.random.default_rng(0)
    ndvi = rng.uniform(0.2, 0.8, (200, 3)).astype(np.float32)
    x = cube_to_sequences({"ndvi": ndvi.T}, ["ndvi"], Q)
    trees = fit_trees(x, 100 * ndvi, seed=0)
    pixels = np.tile(np.array([0.3, 0.6, 0.5], np.float32), (3, 1))  # (T=3, n=3): one NDVI per pixel
    out = predict_block({"ndvi": pixels}, np.array([2, 2, 0]), {2: trees}, ["ndvi"], Q, batch_size=2)
    np.testing.assert_allclose(out[:, :2], [[30.0, 60.0]] * 3, atol=3.0)
    assert np.isnan(out[:, 2]).all()  # not the tree model's type
    assert trees(x[:0]).shape == (0, 3)
