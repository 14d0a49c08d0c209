"""Training tasks on a real multi-process Dask cluster: deep models only on the worker with a GPU resource."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from distributed import Client

from gppscale.config import HyperParams
from gppscale.train import TREES, TrainTask, TypeData, gpu_workers, run_tasks

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", *args], stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, str, str]]:
    """A scheduler, one plain worker and one worker started with ``--resources GPU=1``, all on loopback."""
    tmp = tmp_path_factory.mktemp("cluster")
    file = tmp / "scheduler.json"
    common = ["--scheduler-file", str(file), "--nthreads", "1", "--no-dashboard"]
    procs = [
        _start(
            [
                "distributed.cli.dask_scheduler",
                "--scheduler-file",
                str(file),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
            ],
            tmp / "scheduler.log",
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        procs.append(_start(["distributed.cli.dask_worker", *common, "--name", "plain"], tmp / "plain.log"))
        procs.append(
            _start(
                ["distributed.cli.dask_worker", *common, "--name", "gpu", "--resources", "GPU=1"],
                tmp / "gpu.log",
            )
        )
        with Client(scheduler_file=str(file), timeout=60) as client:
            client.wait_for_workers(2, timeout=90)
            workers = client.scheduler_info(n_workers=-1)["workers"]
            by_name = {w["name"]: addr for addr, w in workers.items()}
            yield client, by_name["gpu"], by_name["plain"]
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def _tasks() -> list[TrainTask]:
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(120, 2, 4)).astype(np.float32)
    y = (50 + 200 * x[..., 0] + 50 * x[..., 1]).astype(np.float32)
    data = TypeData("DNF", x[:90], y[:90], None, x[90:], y[90:])
    hyper = HyperParams(epochs=5, batch_size=32, hidden=(8,), patience=2)
    features = ("a", "b", "season_sin", "season_cos")
    return [
        TrainTask("DNF", target, kind, hyper, features, ("2021Q2", "2021Q3"), data, f"fp-{kind}-{target}")
        for target in ("gpp", "npp")
        for kind in ("dnn", "cnn", "bpnn", "rnn", TREES)
    ]


def test_deep_models_run_only_on_the_gpu_resource_worker(cluster: tuple[Client, str, str]) -> None:
    client, gpu, plain = cluster
    assert gpu_workers(client) == [gpu]
    lines: list[str] = []
    saved: list[str] = []
    outcomes = run_tasks(_tasks(), client, on_done=lambda o: saved.append(o.name), progress=lines.append)
    assert [o.name for o in outcomes] == [t.name for t in _tasks()]
    assert sorted(saved) == sorted(o.name for o in outcomes)
    deep = [o for o in outcomes if o.kind != TREES]
    assert len(deep) == 8
    assert {o.worker for o in deep} == {gpu}, [(o.name, o.worker) for o in deep]
    assert all(o.weights for o in deep) and all(o.weights is None for o in outcomes if o.kind == TREES)
    assert {o.worker for o in outcomes} <= {gpu, plain}
    assert any("GPU worker" in line for line in lines)
    assert all(o.device == "cpu" for o in deep)  # no CUDA device on this machine: the CPU of that worker
