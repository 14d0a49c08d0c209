"""A real multi-process Dask cluster on loopback for tests: ``dask scheduler`` and ``dask worker`` processes.

Example:
    >>> with loopback_cluster(tmp, {"plain": None, "gpu": "GPU=1"}) as cluster:  # doctest: +SKIP
    ...     client = Client(scheduler_file=str(cluster.scheduler_file))
    ...     cluster.kill("plain")  # SIGKILL one worker process
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LoopbackCluster", "loopback_cluster"]


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", *args], stdout=out, stderr=subprocess.STDOUT)


@dataclass
class LoopbackCluster:
    """The processes of a :func:`loopback_cluster`."""

    scheduler_file: Path
    address: str = ""
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def kill(self, name: str) -> None:
        """SIGKILL the worker ``name`` (no nanny: the process is the worker) and wait for it."""
        self.workers[name].send_signal(signal.SIGKILL)
        self.workers[name].wait(timeout=30)


@contextmanager
def loopback_cluster(
    folder: Path, workers: Mapping[str, str | None], *, nthreads: int = 1, timeout_s: float = 90
) -> Iterator[LoopbackCluster]:
    """Start a scheduler and one worker process per entry of ``workers`` (name → ``--resources`` or None).

    Workers run without a nanny, so killing one kills the worker itself. Everything is stopped on exit.
    """
    import json

    from distributed import Client

    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "scheduler.json"
    file.unlink(missing_ok=True)
    scheduler = _start(
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
        folder / "scheduler.log",
    )
    cluster = LoopbackCluster(file)
    try:
        deadline = time.monotonic() + timeout_s
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        cluster.address = json.loads(file.read_text())["address"]
        for name, resources in workers.items():
            args = [
                "distributed.cli.dask_worker",
                "--scheduler-file",
                str(file),
                "--nthreads",
                str(nthreads),
                "--no-dashboard",
                "--no-nanny",
                "--name",
                name,
            ]
            args += ["--resources", resources] if resources else []
            cluster.workers[name] = _start(args, folder / f"{name}.log")
        with Client(scheduler_file=str(file), timeout=timeout_s) as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(len(workers), timeout=timeout_s)
        yield cluster
    finally:
        for proc in [*cluster.workers.values(), scheduler]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*cluster.workers.values(), scheduler]:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
