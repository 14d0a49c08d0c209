"""Training tasks on a real multi-process Dask cluster: deep models only on the worker with a GPU resource."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from distributed import Client

from gppscale.config import HyperParams
from gppscale.testing.dask import loopback_cluster
from gppscale.train import TREES, TrainTask, TypeData, gpu_workers, run_tasks

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, str, str]]:
    """A scheduler, one plain worker and one worker started with ``--resources GPU=1``, all on loopback."""
    with (
        loopback_cluster(tmp_path_factory.mktemp("cluster"), {"plain": None, "gpu": "GPU=1"}) as procs,
        Client(procs.address, timeout=60) as client,
    ):
        workers = client.scheduler_info(n_workers=-1)["workers"]
        by_name = {w["name"]: addr for addr, w in workers.items()}
        yield client, by_name["gpu"], by_name["plain"]


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
