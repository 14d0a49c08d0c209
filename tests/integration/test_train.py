"""The train stage on the `small` world: every type with samples trains; the models beat the coarse value."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox

from gppscale.config import RunSpec, parse_spec
from gppscale.errors import CheckpointError, DataWarning, StoreError
from gppscale.io.models import TRAIN_DIR, load_model, read_selection
from gppscale.io.samples import SAMPLES_JSON, SamplesResult, read_samples
from gppscale.io.store import RunStore
from gppscale.plan import plan_run
from gppscale.runner import CUBE_REL, TrainResult, run_train
from gppscale.stages.aggregate import pixel_cells
from gppscale.stages.forest import FOREST_TYPE_IDS
from gppscale.stages.metrics import scores
from gppscale.stages.predict import coarse_everywhere, predict_block
from gppscale.stages.samples import labels_by_cell
from gppscale.train import TREES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GROWING = ("2021Q2", "2021Q3")


def _train(spec: RunSpec) -> TrainResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # types without pure cells get no model
        return run_train(spec)


@pytest.fixture(scope="module")
def trained(small_samples: tuple[RunSpec, SamplesResult]) -> tuple[RunSpec, SamplesResult, TrainResult]:
    spec, samples = small_samples
    return spec, samples, _train(spec)


def test_every_type_with_samples_trains_every_model(
    trained: tuple[RunSpec, SamplesResult, TrainResult],
) -> None:
    spec, samples, result = trained
    with_samples = sorted(t for t, c in samples.counts.items() if c["train"] > 0 and t in FOREST_TYPE_IDS)
    assert len(with_samples) >= 2
    assert sorted(result.selection) == with_samples
    kinds = {*spec.models.kinds, TREES}
    for forest_type in with_samples:
        for target in ("gpp", "npp"):
            got = {
                r["model"] for r in result.rows if (r["forest_type"], r["target"]) == (forest_type, target)
            }
            assert got == kinds
            assert result.selection[forest_type][target] in spec.models.kinds
    store = Path(spec.output.store) / TRAIN_DIR
    table = pd.read_csv(store / "metrics.csv")
    assert len(table) == len(result.rows) and table.selected.sum() == 2 * len(with_samples)
    assert json.loads((store / "selection.json").read_text())["models"] == result.selection
    assert read_selection(RunStore(spec.output.store)) == result.selection


def test_held_out_scores_are_sane(trained: tuple[RunSpec, SamplesResult, TrainResult]) -> None:
    _, _, result = trained
    for row in result.rows:
        assert row["n"] > 0 and np.isfinite(row["rmse"])
    best = [r for r in result.rows if r["selected"] and r["target"] == "gpp" and r["n_train_cells"] >= 5]
    assert best, result.rows
    # With enough training cells, the selected model explains most of the held-out coarse GPP (pooled
    # over quarters, as the paper scores its test samples).
    assert all(r["r2"] > 0.5 for r in best), best


def _held_out_pixels(spec: RunSpec, store: RunStore) -> dict[str, Any]:
    """The cube, the 30 m truth, and each pixel's coarse cell and held-out flag (its cell is a test cell)."""
    plan = plan_run(spec)
    grid = json.loads(store.read_bytes(SAMPLES_JSON))["coarse_grid"]
    coarse = GeoBox(tuple(grid["shape"]), Affine(*grid["transform"]), grid["crs"])
    cube = xr.open_zarr(Path(spec.output.store) / CUBE_REL, consolidated=False).load()
    truth = xr.open_zarr(str(spec.validation.truth), consolidated=False).gpp
    truth = truth.sel(y=cube.y, x=cube.x, method="nearest", tolerance=1).sel(time=cube.time).values
    cell = pixel_cells(plan.geobox, coarse)
    table = read_samples(store)
    held_out = np.isin(cell, table[table.test].cell.unique())
    return {"cube": cube, "truth": truth, "cell": cell, "table": table, "held_out": held_out}


def _growing_scores(
    pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, labels: list[str]
) -> dict[str, Any]:
    return {q: scores(pred[labels.index(q)][mask], truth[labels.index(q)][mask]) for q in GROWING}


def test_best_model_beats_coarse_value_everywhere_at_30m(
    trained: tuple[RunSpec, SamplesResult, TrainResult],
) -> None:
    """On every forest pixel of held-out cells, per growing-season quarter (never pooled over quarters)."""
    spec, _, result = trained
    store = RunStore(spec.output.store)
    px = _held_out_pixels(spec, store)
    cube, table, truth = px["cube"], px["table"], px["truth"]
    quarters = plan_run(spec).quarters
    labels = [q.label for q in quarters]
    predictors = json.loads(store.read_bytes(SAMPLES_JSON))["features"]
    layers = {name: cube[name].values for name in predictors}
    types = cube.forest_type.values
    n_cells = int(px["cell"].max()) + 1
    coarse = coarse_everywhere(labels_by_cell(table, "gpp", quarters, n_cells), px["cell"])
    report: dict[str, dict[str, Any]] = {}
    for forest_type in result.selection:
        type_id = FOREST_TYPE_IDS[forest_type]
        mask = px["held_out"] & (types == type_id)
        assert mask.sum() > 100, forest_type
        report[f"{forest_type} coarse"] = _growing_scores(coarse, truth, mask, labels)
        for kind in spec.models.kinds:
            model = load_model(store, forest_type, "gpp", kind)
            pred = predict_block(layers, np.where(mask, type_id, 0), {type_id: model}, predictors, quarters)
            assert (pred[:, mask] >= 0).all()
            report[f"{forest_type} {kind}"] = _growing_scores(pred, truth, mask, labels)
    print(
        "\n".join(
            f"{k:>10}: " + "  ".join(f"{q} R² {v[q]['r2']:6.2f} RMSE {v[q]['rmse']:6.1f}" for q in GROWING)
            for k, v in report.items()
        )
    )
    # What holds on this small world (one year, a few dozen pure cells per type): where a type has at least
    # 20 training cells, the best of the four models follows the 30 m truth better than the coarse value
    # in the peak quarter Q3. It does NOT in Q2 (green-up), where models trained on cell means spread
    # pixel values too widely; see the issue notes. Types with fewer cells are reported, not asserted.
    counts = {r["forest_type"]: r["n_train_cells"] for r in result.rows if r["target"] == "gpp"}
    checked = [t for t in result.selection if counts[t] >= 20]
    assert checked, counts
    for forest_type in checked:
        base = report[f"{forest_type} coarse"]["2021Q3"]
        best = min(spec.models.kinds, key=lambda k: report[f"{forest_type} {k}"]["2021Q3"]["rmse"])
        got = report[f"{forest_type} {best}"]["2021Q3"]
        assert got["rmse"] < base["rmse"] and got["r2"] > base["r2"], (forest_type, best, got, base)


def test_rerun_reuses_and_a_tampered_checkpoint_is_refused(
    trained: tuple[RunSpec, SamplesResult, TrainResult], tmp_path: Path
) -> None:
    spec, _, first = trained
    assert _train(spec).trained == 0
    store_dir = tmp_path / "run"
    shutil.copytree(spec.output.store, store_dir)
    raw = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    raw["output"]["store"] = str(store_dir)
    copy = parse_spec(raw)
    forest_type, targets = next(iter(first.selection.items()))
    kind = targets["gpp"]
    weights = store_dir / TRAIN_DIR / forest_type / "gpp" / f"{kind}.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="changed or truncated"):
        load_model(RunStore(str(store_dir)), forest_type, "gpp", kind)
    with pytest.raises(StoreError, match="no trained trees model"):
        load_model(RunStore(str(store_dir)), forest_type, "gpp", TREES)
    # Other hyper-parameters for one type retrain only that type's tasks and its ensemble members.
    raw["models"]["hyper"][forest_type] = {"epochs": 5}
    again = _train(parse_spec(raw))
    members = 2 * (spec.models.ensemble - 1)  # per type: the selected kind of each target
    assert again.trained == 2 * len(spec.models.kinds) + 2 + members
    assert again.trained + again.reused == len(first.rows) + members * len(first.selection)
    assert copy.output.store == str(store_dir)
