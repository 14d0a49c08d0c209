"""Peak resident memory of the driver and of each Dask worker process, sampled in a background thread."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psutil

GIB = 1024**3


def worker_pids(client: Any | None) -> dict[str, int]:  # noqa: ANN401 - a distributed.Client or None
    """Worker address -> process id (the worker process itself, not its nanny)."""
    if client is None:
        return {}
    return {str(addr): int(pid) for addr, pid in client.run(os.getpid).items()}


def _rss(pid: int) -> int:
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0


@dataclass
class Peaks:
    """Largest RSS seen per process while sampling (bytes)."""

    driver: int = 0
    workers: dict[str, int] = field(default_factory=dict)
    samples: int = 0

    def as_gib(self) -> dict[str, Any]:
        workers = {k: round(v / GIB, 3) for k, v in self.workers.items()}
        return {
            "driver_gib": round(self.driver / GIB, 3),
            "workers_gib": workers,
            "max_worker_gib": max(workers.values(), default=None),
            "samples": self.samples,
        }


def _sample_into(peaks: Peaks, pids: Mapping[str, int]) -> None:
    peaks.driver = max(peaks.driver, _rss(os.getpid()))
    for name, pid in pids.items():
        peaks.workers[name] = max(peaks.workers.get(name, 0), _rss(pid))
    peaks.samples += 1


@contextmanager
def peak_memory(client: Any | None = None, every_s: float = 0.2) -> Iterator[Peaks]:  # noqa: ANN401
    """Sample driver and worker RSS every ``every_s`` s inside the block; the peaks fill in as it runs."""
    pids = worker_pids(client)
    peaks = Peaks()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            _sample_into(peaks, pids)
            stop.wait(every_s)

    thread = threading.Thread(target=loop, name="bench-memory", daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        stop.set()
        thread.join()
        _sample_into(peaks, pids)


@dataclass
class Timed:
    """Wall time and memory peaks of one measured block."""

    seconds: float = 0.0
    peaks: Peaks = field(default_factory=Peaks)

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 3), **self.peaks.as_gib()}


@contextmanager
def measured(client: Any | None = None) -> Iterator[Timed]:  # noqa: ANN401 - a distributed.Client or None
    """Time the block and sample memory peaks meanwhile."""
    out = Timed()
    with peak_memory(client) as peaks:
        start = time.perf_counter()
        try:
            yield out
        finally:
            out.seconds = time.perf_counter() - start
    out.peaks = peaks
