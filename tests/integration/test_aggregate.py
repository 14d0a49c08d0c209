"""Aggregate-aware training on the `small` world: trained beside the paper's way, it makes the maps.

One class-conditioned DNN per target is fitted so that each covered coarse cell's weighted mean of its
pixels matches the coarse value (all covered cells, every pixel), then predicts the forest pixels
through the same 30 m prediction and mass preservation as the paper's models. Against the world's
truth, within each growing quarter, it must beat the paper's DNN and the tree baseline.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from gppscale.config import RunSpec, parse_spec
from gppscale.errors import DataWarning
from gppscale.io.samples import SamplesResult
from gppscale.runner import run_predict, run_train, run_validate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEEP = ("search", "cube.zarr", "cube.regions", "samples.parquet", "samples.json")

R2_FLOOR = 0.3
"""Least within-quarter R² of the mass-preserved 30 m GPP over all forest pixels, Q2 and Q3 (measured
0.54 and 0.74 when written; the coarse value everywhere 0.12 and 0.22, the paper's DNN -1.95 and 0.25)."""


@pytest.fixture(scope="module")
def aggregate_run(
    small_samples: tuple[RunSpec, SamplesResult], tmp_path_factory: pytest.TempPathFactory
) -> RunSpec:
    base, _ = small_samples
    store = tmp_path_factory.mktemp("aggregate") / "run"
    store.mkdir()
    for name in KEEP:
        source = Path(base.output.store) / name
        copy = shutil.copytree if source.is_dir() else shutil.copy2
        copy(source, store / name)
    raw = base.model_dump(mode="json", by_alias=True, exclude_none=True)
    raw["output"]["store"] = str(store)
    raw["models"]["modes"] = ["aggregate", "paper"]
    raw["models"]["kinds"] = ["dnn"]
    raw["models"]["baselines"] = ["trees", "coarse"]
    spec = parse_spec(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        run_train(spec)
        run_predict(spec)
        run_validate(spec)
    return spec


def test_aggregate_models_are_stored_scored_and_make_the_maps(aggregate_run: RunSpec) -> None:
    store = Path(aggregate_run.output.store)
    for target in ("gpp", "npp"):
        record = json.loads((store / "train" / "aggregate" / target / "dnn.json").read_text())
        assert record["metrics"]["n_test_cells"] > 0 and record["metrics"]["r2"] > 0.5
        assert record["meta"]["features"][-1] == "class_wetland"  # the class one-hot, named
    selection = json.loads((store / "train" / "selection.json").read_text())["models"]
    assert selection["aggregate"] == {"gpp": "dnn", "npp": "dnn"}
    consistency = json.loads((store / "predict.json").read_text())["consistency"]
    for by_type in consistency.values():
        for report in by_type.values():
            if report["median_rel_error"] is not None:
                assert report["median_rel_error"] < 1e-3


def test_aggregate_beats_the_paper_models_and_the_trees_within_each_growing_quarter(
    aggregate_run: RunSpec,
) -> None:
    truth = pd.read_csv(Path(aggregate_run.output.store) / "validation" / "truth.csv")
    rows = truth[(truth.target == "gpp") & (truth.forest_type == "all")].set_index(["source", "quarter"])
    for quarter in ("2021Q2", "2021Q3"):
        r2 = rows.xs(quarter, level="quarter").r2
        # `uncorrected` is the aggregate ensemble's mean as predicted (the maps' mode), `aggregate-dnn`
        # its first member alone; `dnn` is the paper's DNN.
        assert r2["aggregate-dnn"] >= max(r2["dnn"], r2["trees"]) + 0.05, r2.to_dict()
        assert r2["uncorrected"] >= max(r2["dnn"], r2["trees"]) + 0.05, r2.to_dict()
        assert r2["downscaled"] >= max(R2_FLOOR, r2["coarse"] + 0.05), r2.to_dict()


def test_the_ensemble_interval_covers_the_truth(aggregate_run: RunSpec) -> None:
    """Members are stored, the maps carry std and a 90 % interval, and it holds 80-95 % of the truth."""
    store = Path(aggregate_run.output.store)
    n = aggregate_run.models.ensemble
    assert n > 1
    seeds = {
        json.loads((store / "train" / "aggregate" / "gpp" / name).read_text())["meta"]["seed"]
        for name in ["dnn.json", *(f"dnn/member{k}.json" for k in range(1, n))]
    }
    assert len(seeds) == n  # every member its own seed
    out = xr.open_zarr(store / "gpp.zarr", consolidated=False)
    for target in ("gpp", "npp"):
        mean, std = out[target].values, out[f"{target}_std"].values
        lower, upper = out[f"{target}_lower"].values, out[f"{target}_upper"].values
        forest = np.isfinite(mean)
        assert np.array_equal(forest, np.isfinite(std)) and (std[forest] >= 0).all()
        assert (lower[forest] >= 0).all() and (lower[forest] <= mean[forest]).all()
        assert (upper[forest] >= mean[forest]).all() and (upper[forest] > lower[forest]).mean() > 0.99
    coverage = pd.read_csv(store / "validation" / "coverage_truth.csv")
    growing = coverage[
        (coverage.target == "gpp")
        & (coverage.forest_type == "all")
        & coverage.quarter.isin(["2021Q2", "2021Q3"])
    ]
    assert len(growing) == 2 and growing.n.min() > 1000
    # Measured 0.940 and 0.957 with 3 members (0.81-0.84 on the demo world): the error scale comes from
    # only ~70 held-out cells here, and errs on the wide side.
    assert growing.coverage.between(0.80, 0.98).all(), growing.to_dict("records")
    towers = pd.read_csv(store / "validation" / "towers.csv")
    assert "in_interval" in towers and towers.interval_coverage.notna().iloc[-1]
    intervals = json.loads((store / "train" / "intervals.json").read_text())
    assert set(intervals) == {"aggregate/gpp/dnn", "aggregate/npp/dnn"}
    assert 0 < intervals["aggregate/gpp/dnn"]["interval_error"]["2021Q3"] < 1


def test_validation_shows_both_modes_side_by_side(aggregate_run: RunSpec) -> None:
    modes = pd.read_csv(Path(aggregate_run.output.store) / "validation" / "modes.csv")
    q3 = modes[(modes.target == "gpp") & (modes.quarter == "2021Q3")].set_index("source")
    assert set(q3["mode"]) == {"maps", "aggregate", "paper", "baseline"}
    # Each model's own cell means against the coarse values on the held-out cells (its consistency
    # before mass preservation), for the aggregate model and the paper's DNN pooled over types.
    assert q3.loc[["aggregate-dnn", "dnn", "trees"], "held_out_coarse_rmse"].notna().all()
    consistency = pd.read_csv(Path(aggregate_run.output.store) / "validation" / "consistency.csv")
    assert (consistency.median_rel_error.dropna() < 1e-3).all()  # the maps: mass-preserved
