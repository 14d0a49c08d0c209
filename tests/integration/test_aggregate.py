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

import pandas as pd
import pytest

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
        # `uncorrected` is the aggregate model as predicted (the maps' mode); `dnn` the paper's.
        assert r2["aggregate-dnn"] == pytest.approx(r2["uncorrected"], abs=1e-3)
        assert r2["aggregate-dnn"] >= max(r2["dnn"], r2["trees"]) + 0.05, r2.to_dict()
        assert r2["downscaled"] >= max(R2_FLOOR, r2["coarse"] + 0.05), r2.to_dict()
