"""The predict stage on the `small` world: Zarr layout, units, NaN off forest, mass preservation, resume."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import rioxarray  # noqa: F401 - registers the .rio accessor
import xarray as xr

from gppscale.config import RunSpec, parse_spec
from gppscale.errors import DataWarning
from gppscale.io.predict import MODEL_CODES, OUTPUT_REL
from gppscale.io.regions import records_rel
from gppscale.io.samples import SamplesResult
from gppscale.plan import plan_run
from gppscale.runner import PredictResult, run_predict, run_train

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def predicted(small_samples: tuple[RunSpec, SamplesResult]) -> tuple[RunSpec, PredictResult]:
    """The small world trained (one model per type and target, no ensemble) and predicted.

    Ensembles and their intervals are checked in ``test_aggregate.py``.
    """
    spec, _ = small_samples
    raw = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    raw["models"]["ensemble"] = 1
    spec = parse_spec(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        run_train(spec)
    return spec, run_predict(spec)


def test_output_layout_units_and_forest_mask(predicted: tuple[RunSpec, PredictResult]) -> None:
    spec, result = predicted
    plan = plan_run(spec)
    out = xr.open_zarr(result.url, consolidated=False, decode_coords="all")
    assert set(out.data_vars) >= {
        "gpp",
        "npp",
        "gpp_uncorrected",
        "npp_uncorrected",
        "forest_type",
        "model_gpp",
    }
    assert out.gpp.shape == (len(plan.quarters), *plan.geobox.shape)
    assert out.gpp.attrs["units"] == "gC m-2 quarter-1" and out.gpp.dtype == np.float32
    assert out.rio.crs.to_epsg() == plan.epsg
    assert tuple(out.rio.transform())[:6] == tuple(plan.geobox.transform)[:6]
    assert out.time_bnds.shape == (len(plan.quarters), 2)
    selection = json.loads((Path(spec.output.store) / "train" / "selection.json").read_text())["models"]
    from gppscale.stages.forest import FOREST_TYPE_IDS

    modelled = np.isin(out.forest_type.values, [FOREST_TYPE_IDS[t] for t in selection])
    for name in ("gpp", "npp", "gpp_uncorrected"):
        values = out[name].values
        assert np.isfinite(values[:, modelled]).all(), name
        assert np.isnan(values[:, ~modelled]).all(), name  # NaN exactly off the modelled forest
        assert (values[:, modelled] >= 0).all(), name
    codes = out.model_gpp.values
    assert set(np.unique(codes[modelled])) <= {MODEL_CODES[k] for k in spec.models.kinds}
    assert (codes[~modelled] == MODEL_CODES["none"]).all()


def test_mass_preservation_reproduces_the_coarse_values(predicted: tuple[RunSpec, PredictResult]) -> None:
    _, result = predicted
    for target in ("gpp", "npp"):
        by_type = result.consistency[target]
        assert by_type, result.consistency
        for forest_type, report in by_type.items():
            if report["median_rel_error"] is not None:
                assert report["median_rel_error"] < 1e-3, (target, forest_type, report)
                assert report["p95_rel_error"] < 0.05, (target, forest_type, report)


def test_rerun_reuses_and_a_lost_region_is_rewritten(
    predicted: tuple[RunSpec, PredictResult], tmp_path: Path
) -> None:
    spec, result = predicted
    assert run_predict(spec).skipped == -1  # complete: nothing recomputed
    store = tmp_path / "run"
    shutil.copytree(spec.output.store, store)
    raw = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    raw["output"]["store"] = str(store)
    copy = parse_spec(raw)
    before = xr.open_zarr(store / OUTPUT_REL, consolidated=False).gpp.values
    record = sorted((store / records_rel(OUTPUT_REL)).glob("*.json"))[0]
    record.unlink()  # as if the run was killed before this region's record
    again = run_predict(copy)
    assert (again.written, again.skipped) == (1, 5)
    after = xr.open_zarr(store / OUTPUT_REL, consolidated=False).gpp.values
    np.testing.assert_array_equal(after, before)
    assert result.url != again.url


def test_run_describes_the_outputs_with_stac_and_a_manifest(predicted: tuple[RunSpec, PredictResult]) -> None:
    import pystac

    from gppscale.runner import STAGES, run_stages

    spec, _ = predicted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        run = run_stages(spec)  # every stage reuses its finished work
    assert list(run.timings_s) == list(STAGES)
    assert run.results["predict"].skipped == -1 and run.results["train"].trained == 0
    collection = pystac.read_file(str(run.stac))
    assert isinstance(collection, pystac.Collection)
    items = list(collection.get_items())
    assert [i.id for i in items] == [f"gppscale-{spec.name}-{q.label}" for q in plan_run(spec).quarters]
    asset = items[0].assets["zarr"]
    opened = xr.open_zarr(asset.href, consolidated=False)
    assert opened.gpp.attrs["units"] == "gC m-2 quarter-1"
    manifest = json.loads(Path(str(run.manifest)).read_text())
    assert manifest["format"] == "gppscale-manifest/1"
    assert {"gpp.zarr/gpp", "gpp.zarr/npp"} <= set(manifest["outputs"])
    assert "samples.parquet" in manifest["inputs"] and "search/landsat.parquet" in manifest["inputs"]
    assert manifest["spec"]["name"] == spec.name


def _predict_cli(spec_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "gppscale.cli", "predict", str(spec_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _fresh_copy(spec: RunSpec, store_dir: Path, spec_path: Path) -> RunSpec:
    """The trained run copied to ``store_dir`` without its predictions, and its spec as YAML (1 worker)."""
    import yaml

    shutil.copytree(spec.output.store, store_dir)
    for name in ("gpp.zarr", "gpp.regions", "work", "predict.json", "stac", "manifest.json"):
        target = store_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    raw = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    raw["output"]["store"] = str(store_dir)
    raw["cluster"] = {"mode": "local", "workers": 1, "threads_per_worker": 1}
    spec_path.write_text(yaml.safe_dump(raw))
    return parse_spec(raw)


def test_killed_predict_resumes_without_redoing_regions(
    predicted: tuple[RunSpec, PredictResult], tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from gppscale.io.predict import RAW_REL
    from gppscale.io.regions import read_region_records
    from gppscale.io.store import RunStore

    spec, _ = predicted
    # The reference: the same command, uninterrupted, in the same kind of worker process.
    _fresh_copy(spec, tmp_path / "reference", tmp_path / "reference.yaml")
    _predict_cli(tmp_path / "reference.yaml")
    reference = read_region_records(RunStore(str(tmp_path / "reference")), OUTPUT_REL)

    killed = _fresh_copy(spec, tmp_path / "killed", tmp_path / "killed.yaml")
    raw_records = tmp_path / "killed" / records_rel(RAW_REL)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gppscale.cli", "predict", str(tmp_path / "killed.yaml")],
        start_new_session=True,  # the LocalCluster's worker processes die with the group
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(raw_records.glob("*.json"))) < 2:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.name: p.read_bytes() for p in raw_records.glob("*.json")}
    assert 2 <= len(before) < 6, sorted(before)
    _predict_cli(tmp_path / "killed.yaml")
    assert {p.name: p.read_bytes() for p in raw_records.glob("*.json") if p.name in before} == before
    resumed = read_region_records(RunStore(killed.output.store), OUTPUT_REL)
    assert {k: v["checksums"] for k, v in resumed.items()} == {
        k: v["checksums"] for k, v in reference.items()
    }


@pytest.mark.usefixtures("s3_endpoint")
def test_the_whole_run_on_a_local_s3_server(
    small_samples: tuple[RunSpec, SamplesResult], s3_bucket: str
) -> None:
    from gppscale.io.store import RunStore
    from gppscale.runner import run_stages

    spec, _ = small_samples
    raw = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    raw["output"]["store"] = f"{s3_bucket}/small"
    raw["models"] = {"kinds": ["dnn"], "baselines": [], "hyper": {"*": {"epochs": 10, "patience": 3}}}
    raw["cluster"] = {"mode": "local", "workers": 1, "threads_per_worker": 2}
    s3_spec = parse_spec(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        run = run_stages(s3_spec)
    store = RunStore(s3_spec.output.store)
    assert str(run.stac).startswith("s3://") and store.exists("manifest.json")
    out = xr.open_zarr(store.zarr_store(OUTPUT_REL, read_only=True), consolidated=False, decode_coords="all")
    values = out.gpp.values
    assert np.isfinite(values).any() and (values[np.isfinite(values)] >= 0).all()
    for by_type in run.results["predict"].consistency.values():
        for report in by_type.values():
            if report["median_rel_error"] is not None:
                assert report["median_rel_error"] < 1e-3


def test_validation_report_on_the_small_world(predicted: tuple[RunSpec, PredictResult]) -> None:
    import io
    from html.parser import HTMLParser

    from PIL import Image

    from gppscale.runner import run_validate

    spec, _ = predicted
    written = run_validate(spec)
    root = Path(spec.output.store) / "validation"
    for name in ("report.html", "report.md", "truth.csv", "plots.csv", "towers.csv", "consistency.csv"):
        assert (root / name).stat().st_size > 0, name
    pngs = sorted((root / "figures").glob("*.png"))
    assert len(pngs) >= 5 and set(written) >= {"report.html", "report.md"}
    for png in pngs:
        Image.open(io.BytesIO(png.read_bytes())).verify()

    class Links(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.refs: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.refs += [v or "" for k, v in attrs if k in ("src", "href")]

    parser = Links()
    parser.feed((root / "report.html").read_text())
    assert parser.refs and all(r.startswith(("data:", "#")) for r in parser.refs)
    metrics = json.loads((root / "metrics.json").read_text())
    assert {"truth", "plots", "towers", "consistency"} <= set(metrics)
    truth = metrics["truth"]
    labels = {r["quarter"] for r in truth}
    assert {q.label for q in plan_run(spec).quarters} < labels and "all (pooled: seasonal cycle)" in labels
    trees = ["trees"] if "trees" in spec.models.baselines else []
    sources = {"downscaled", "uncorrected", *spec.models.kinds, *trees, "coarse"}
    assert {r["source"] for r in truth} == sources
    assert {r["source"] for r in metrics["reference"]} == sources
    assert "all" in {r["forest_type"] for r in truth}  # every modelled type together
    for source in sources:
        assert any(p.name.startswith(f"scatter_gpp_{source}_vs_truth_") for p in pngs), source
    # The selected kind of each type, predicted at the sampled pixels by validation, scores as the
    # uncorrected 30 m maps do: validation and prediction run the same models on the same predictors.
    selection = json.loads((Path(spec.output.store) / "train" / "selection.json").read_text())["models"]
    by_key = {(r["target"], r["source"], r["forest_type"], r["quarter"]): r for r in truth}
    for forest_type, kinds in selection.items():
        for q in plan_run(spec).quarters:
            selected = by_key[("gpp", kinds["gpp"], forest_type, q.label)]
            uncorrected = by_key[("gpp", "uncorrected", forest_type, q.label)]
            assert selected["n"] == uncorrected["n"]
            assert selected["rmse"] == pytest.approx(uncorrected["rmse"], rel=1e-4)
    for row in truth:
        if row["n"] and row["n"] > 2 and row["r2"] is not None:
            assert row["r2_lo"] <= row["r2"] <= row["r2_hi"]
