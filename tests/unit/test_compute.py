"""compute(): the same values on the local scheduler and on a distributed client, with progress lines."""

from __future__ import annotations

import doctest
import time

import dask.array as da
import numpy as np
from dask.delayed import delayed
from distributed import Client

import gppscale.compute as compute_mod
from gppscale.compute import WORKER_MALLOC, compute, local_cluster


def test_doctests() -> None:
    assert doctest.testmod(compute_mod).failed == 0


def _slow(x: int) -> int:
    time.sleep(0.3)
    return x


def test_local_reports_task_shares() -> None:
    lines: list[str] = []
    parts = [delayed(_slow)(i) for i in range(4)]
    total = delayed(sum)(parts)
    (value,) = compute(total, progress=lines.append, what="work", every_s=0.1)
    assert value == 6
    assert any(line.startswith("work: ") and "tasks (" in line for line in lines), lines
    assert lines[-1].startswith("work: done in ")


def test_distributed_client_gives_the_same_values_and_reports() -> None:
    x = da.arange(100, chunks=10)
    lines: list[str] = []
    with (
        local_cluster(1, 2, processes=False) as cluster,
        Client(cluster) as client,
    ):
        slow = delayed(_slow)(5)
        total, doubled, five = compute(
            x.sum(), x * 2, slow, client=client, progress=lines.append, what="w", every_s=0.1
        )
    assert int(total) == 4950 and five == 5
    np.testing.assert_array_equal(doubled, np.arange(100) * 2)
    assert any("tasks running on the cluster" in line for line in lines), lines
    assert lines[-1].startswith("w: done in ")


def test_the_local_cluster_starts_while_another_holds_the_dashboard_port() -> None:
    """Port 8787 taken (another cluster, a notebook): no warning, no failure (warnings are errors here)."""
    import socket

    from gppscale.config import ClusterSpec
    from gppscale.runner import dask_client

    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            held.bind(("0.0.0.0", 8787))
            held.listen()
        except OSError:
            pass  # someone holds it already: the same situation
        with dask_client(ClusterSpec(mode="local", workers=1, threads_per_worker=1)) as client:
            assert client.submit(sum, [1, 2]).result() == 3
            address = client.scheduler_info()["services"].get("dashboard")
            assert address != 8787
            # The worker process runs with WORKER_MALLOC, not distributed's 64 KiB trim threshold (which
            # made training 2-3x slower in page faults); the other pre-spawn settings stay.
            environ = next(iter(client.run(_environ).values()))
            assert {k: environ.get(k) for k in WORKER_MALLOC} == WORKER_MALLOC
            assert environ.get("OMP_NUM_THREADS") == "1"


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)
