"""The `small` world pipeline on a real multi-process Dask cluster on loopback, with and without a lost worker

A scheduler, a plain worker and a worker started with ``--resources GPU=1`` (on this machine's CPU). The
run connects with ``cluster.mode: address``; training must land on the GPU-resource worker. In a second
run the plain worker is killed (SIGKILL) while the cube is being written: the run still completes, and
every output region has the same checksums as the undisturbed run.
"""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from gppscale.config import RunSpec, parse_spec
from gppscale.errors import DataWarning
from gppscale.io.predict import OUTPUT_REL
from gppscale.io.regions import read_region_records, records_rel
from gppscale.io.samples import SamplesResult
from gppscale.io.store import RunStore
from gppscale.runner import CUBE_REL, RunResult, run_stages
from gppscale.testing.dask import loopback_cluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKERS = {"plain": None, "gpu": "GPU=1"}


def _spec(base: RunSpec, store: Path, address: str) -> RunSpec:
    raw = base.model_dump(mode="json", by_alias=True, exclude_none=True)
    raw["output"]["store"] = str(store)
    raw["cluster"] = {"mode": "address", "address": address}
    raw["models"] = {
        "kinds": ["dnn", "rnn"],
        "baselines": [],
        "ensemble": 2,
        "hyper": {"*": {"epochs": 15, "patience": 5}},
    }
    return parse_spec(raw)


def _run(spec: RunSpec) -> RunResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return run_stages(spec)


def _checksums(store: Path, rel: str) -> dict[str, Any]:
    return {k: v["checksums"] for k, v in read_region_records(RunStore(str(store)), rel).items()}


@pytest.fixture(scope="module")
def undisturbed(
    small_samples: tuple[RunSpec, SamplesResult], tmp_path_factory: pytest.TempPathFactory
) -> tuple[RunSpec, RunResult, str]:
    base, _ = small_samples
    folder = tmp_path_factory.mktemp("cluster-a")
    with loopback_cluster(folder / "dask", WORKERS) as cluster:
        spec = _spec(base, folder / "run", cluster.address)
        result = _run(spec)
        from distributed import Client

        with Client(cluster.address) as client:
            names = {a: w["name"] for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
    gpu = next(a for a, n in names.items() if n == "gpu")
    return spec, result, gpu


def test_the_whole_run_on_a_loopback_cluster_trains_on_the_gpu_worker(
    undisturbed: tuple[RunSpec, RunResult, str],
) -> None:
    spec, result, gpu = undisturbed
    train = result.results["train"]
    members = 2 * len(train.selection) * (spec.models.ensemble - 1)  # per type and target
    assert train.trained == len(train.rows) + members and train.reused == 0 and train.rows
    assert {row["worker"] for row in train.rows} == {gpu}, train.rows
    assert result.stac and result.manifest
    assert len(_checksums(Path(spec.output.store), OUTPUT_REL)) == 6


def test_a_killed_worker_does_not_stop_the_run_and_changes_nothing(
    undisturbed: tuple[RunSpec, RunResult, str],
    small_samples: tuple[RunSpec, SamplesResult],
    tmp_path: Path,
) -> None:
    reference, _, _ = undisturbed
    base, _ = small_samples
    with loopback_cluster(tmp_path / "dask", WORKERS) as cluster:
        spec = _spec(base, tmp_path / "run", cluster.address)
        records = tmp_path / "run" / records_rel(CUBE_REL)
        killed = threading.Event()

        def kill_when_the_cube_is_under_way() -> None:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not list(records.glob("*.json")):
                time.sleep(0.05)
            cluster.kill("plain")
            killed.set()

        killer = threading.Thread(target=kill_when_the_cube_is_under_way, daemon=True)
        killer.start()
        result = _run(spec)
        killer.join(timeout=10)
    assert killed.is_set(), "the plain worker was never killed"
    assert cluster.workers["plain"].returncode is not None
    assert result.results["predict"].written == 6
    for rel in (CUBE_REL, OUTPUT_REL):
        assert _checksums(tmp_path / "run", rel) == _checksums(Path(reference.output.store), rel), rel
