"""The samples stage on the `small` world: coarse aggregation, labels, pure cells, split, reuse and errors."""

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
import yaml
from affine import Affine
from odc.geo.geobox import GeoBox

from gppscale.cli import main
from gppscale.config import RunSpec, parse_spec
from gppscale.errors import DataWarning, StoreError
from gppscale.io.coarse import coarse_quarterly
from gppscale.io.freeze import load_frozen
from gppscale.io.regions import records_rel
from gppscale.io.samples import SAMPLES_JSON, SAMPLES_REL, SamplesResult, feature_columns, read_samples
from gppscale.io.store import RunStore
from gppscale.plan import plan_run
from gppscale.runner import CUBE_REL, run_samples
from gppscale.stages.aggregate import aggregate_stats

pytestmark = pytest.mark.integration

FORESTS = ("ENF", "DBF", "MF", "DNF", "EBF")


def _samples(spec: RunSpec) -> SamplesResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # a type with few pure cells in this small area
        return run_samples(spec)


@pytest.fixture
def built(small_samples: tuple[RunSpec, SamplesResult]) -> tuple[RunSpec, SamplesResult]:
    """The session's small run up to the samples stage (see conftest)."""
    return small_samples


def _copy(spec: RunSpec, tmp_path: Path, **changes: Any) -> RunSpec:
    """The built run copied to ``tmp_path``, with spec keys changed."""
    store = tmp_path / "run"
    shutil.copytree(spec.output.store, store)
    raw = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    raw["output"]["store"] = str(store)
    for key, value in changes.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return parse_spec(raw)


def test_counts_per_type_are_reported(built: tuple[RunSpec, SamplesResult]) -> None:
    spec, result = built
    table = read_samples(RunStore(spec.output.store))
    assert (result.rows, result.cells) == (len(table), table.cell.nunique())
    assert len(table) == result.cells * len(plan_run(spec).quarters)
    described = json.loads((Path(spec.output.store) / SAMPLES_JSON).read_text())
    assert described["counts"] == result.counts
    pure_types = [t for t, c in result.counts.items() if c["pure"] > 0]
    assert len(pure_types) >= 2, result.counts
    for name in pure_types:
        c = result.counts[name]
        assert c["train"] + c["test"] == c["pure"] and c["test"] > 0
    reports = {r.forest_type: r for r in result.reports}
    assert set(reports) == set(spec.forest_types.modelled)
    for name, report in reports.items():
        assert report.selected == result.counts.get(name, {"pure": 0})["pure"]
    assert described["features"] == feature_columns(table)
    assert {"ndvi", "evi", "elevation", "tmean", "srad", "red"} <= set(described["features"])
    assert not {"ndvi_cv", "gpp", "npp", "pure", "frac_ENF", "land_cover"} & set(described["features"])


def test_labels_are_the_coarse_quarterly_sums(built: tuple[RunSpec, SamplesResult]) -> None:
    spec, _ = built
    store = RunStore(spec.output.store)
    plan, frozen = plan_run(spec), load_frozen(store)
    gpp = coarse_quarterly(spec, plan, frozen.role("coarse_gpp"), "coarse_gpp").values
    table = read_samples(store)
    qi = table.quarter.map({q.label: i for i, q in enumerate(plan.quarters)}).to_numpy()
    np.testing.assert_array_equal(table.gpp.to_numpy(), gpp[qi, table.row, table.col])
    assert (table[table.pure].gpp > 0).all()
    # NPP is a share of GPP in every forest cell and quarter with both
    both = table[(table.forest_type.isin(FORESTS)) & table.gpp.gt(1) & table.npp.notna()]
    assert ((both.npp / both.gpp) < 1).all()


def _truth_cv(spec: RunSpec, store: RunStore) -> pd.DataFrame:
    """Per cell and quarter: the coefficient of variation of the 30 m truth GPP within the coarse cell."""
    grid = json.loads(store.read_bytes(SAMPLES_JSON))["coarse_grid"]
    coarse = GeoBox(tuple(grid["shape"]), Affine(*grid["transform"]), grid["crs"])
    cube = xr.open_zarr(Path(spec.output.store) / CUBE_REL, consolidated=False)
    truth_path = Path(str(spec.catalog.world)) / "truth" / "truth.zarr"
    truth = xr.open_zarr(truth_path, consolidated=False).gpp
    truth = truth.sel(y=cube.y, x=cube.x, method="nearest", tolerance=1).sel(time=cube.time)
    fine = xr.Dataset(
        {"truth": truth.drop_vars("spatial_ref", errors="ignore"), "forest_type": cube.forest_type}
    ).assign_coords(y=cube.y, x=cube.x)
    stats = aggregate_stats(fine, plan_run(spec).geobox, coarse, ndvi="truth").compute()
    cv = stats.ndvi_cv.values  # (time, cy, cx)
    labels = [q.label for q in plan_run(spec).quarters]
    rows = [
        pd.DataFrame({"quarter": label, "cell": np.arange(cv[i].size), "truth_cv": cv[i].ravel()})
        for i, label in enumerate(labels)
    ]
    return pd.concat(rows)


def test_pure_cells_are_less_heterogeneous_in_the_truth(built: tuple[RunSpec, SamplesResult]) -> None:
    spec, _ = built
    store = RunStore(spec.output.store)
    table = read_samples(store).merge(_truth_cv(spec, store), on=["quarter", "cell"])
    forest = table[table.forest_type.isin(FORESTS) & (table.coverage >= 0.95)]
    by_quarter = forest.groupby(["quarter", "pure"]).truth_cv.median().unstack()
    # In every quarter, the pure cells' 30 m truth varies less than that of the other forest cells.
    assert (by_quarter[True] < by_quarter[False]).all(), by_quarter


def test_rerun_reuses_and_other_purity_only_reflags(
    built: tuple[RunSpec, SamplesResult], tmp_path: Path
) -> None:
    spec, _ = built
    assert _samples(spec).status == "reused"
    looser = _copy(spec, tmp_path, purity={"*": {"fraction": 0.9, "min_type_fraction": 0.7, "min_cells": 3}})
    before = read_samples(RunStore(looser.output.store))
    result = _samples(looser)
    assert result.status == "re-flagged"
    after = read_samples(RunStore(looser.output.store))
    pd.testing.assert_frame_equal(after.drop(columns=["pure", "test"]), before.drop(columns=["pure", "test"]))
    assert after.pure.sum() > before.pure.sum()


def test_other_inputs_need_overwrite(built: tuple[RunSpec, SamplesResult], tmp_path: Path) -> None:
    spec, _ = built
    rescaled = _copy(spec, tmp_path, coarse={"scale": 0.005})
    kept = (Path(rescaled.output.store) / SAMPLES_REL).read_bytes()
    with pytest.raises(StoreError, match=r"made from another cube or coarse product.*output.overwrite"):
        _samples(rescaled)
    assert (Path(rescaled.output.store) / SAMPLES_REL).read_bytes() == kept  # the old table is intact
    result = _samples(_copy(spec, tmp_path / "b", coarse={"scale": 0.005}, output={"overwrite": True}))
    assert result.status == "written"
    halved = read_samples(RunStore(str(tmp_path / "b" / "run")))
    original = read_samples(RunStore(spec.output.store))
    np.testing.assert_allclose(halved.gpp, original.gpp / 2, rtol=1e-5)


def test_an_unfinished_cube_is_refused(built: tuple[RunSpec, SamplesResult], tmp_path: Path) -> None:
    spec = _copy(built[0], tmp_path)
    records = Path(spec.output.store) / records_rel(CUBE_REL)
    next(records.glob("*.json")).unlink()
    with pytest.raises(
        StoreError, match=r"cube .* is incomplete: 1 of 6 regions are not written .*gppscale cube SPEC"
    ):
        run_samples(spec)


def test_a_damaged_table_is_made_again(built: tuple[RunSpec, SamplesResult], tmp_path: Path) -> None:
    spec = _copy(built[0], tmp_path)
    path = Path(spec.output.store) / SAMPLES_REL
    path.write_bytes(path.read_bytes()[:100])  # e.g. killed between the table and its description
    with pytest.raises(StoreError, match="does not match the checksum"):
        read_samples(RunStore(spec.output.store))
    assert _samples(spec).status == "written"
    assert len(read_samples(RunStore(spec.output.store))) == built[1].rows


def test_cli_prints_counts_per_type(
    built: tuple[RunSpec, SamplesResult], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, result = built
    raw = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    raw["cluster"] = {"workers": 1}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["samples", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{result.rows} rows, {result.cells} coarse cells (reused)" in out
    for name, c in result.counts.items():
        assert f"  {name:<11} {c['cells']:>6} {c['pure']:>5} {c['train']:>6} {c['test']:>5}" in out
