"""Compute dask collections and say how far along the work is.

One call for both schedulers: with a ``distributed.Client`` the collections are submitted as futures
and, while they run, a line every ``every_s`` seconds tells the elapsed time and the tasks still waiting
or running on the cluster; without one they run on dask's local threaded scheduler and the line gives
the share of tasks finished (a :class:`dask.callbacks.Callback`).

Example:
    >>> import dask.array as da
    >>> lines = []
    >>> (total,) = compute(da.ones(10, chunks=5).sum(), progress=lines.append, what="sum")
    >>> int(total), lines[-1].startswith("sum: done")
    (10, True)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dask.base import compute as dask_compute
from dask.callbacks import Callback

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["compute", "local_cluster"]


WORKER_MALLOC = {"MALLOC_TRIM_THRESHOLD_": "134217728", "MALLOC_MMAP_THRESHOLD_": "67108864"}
"""glibc settings of every worker process (local clusters, Kubernetes pods, the Helm chart).

distributed starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` to hand freed memory back early. Setting
it fixes glibc's mmap threshold at 128 KiB, so every larger array is a fresh ``mmap``: training a
network on bags of pixels then spends most of its time in page faults (measured 2.8x slower on 2
cores). Trimming above 128 MiB with arrays up to 64 MiB from the heap is as fast as glibc's defaults and
still returns memory.
"""


def local_cluster(
    workers: int,
    threads_per_worker: int,
    *,
    processes: bool = True,
    memory_limit: str | float | None = "auto",
) -> Any:  # noqa: ANN401 - a distributed.LocalCluster (imported lazily)
    """A ``distributed.LocalCluster`` without a dashboard, its scheduler's HTTP server on a free port.

    The scheduler's HTTP server (metrics) binds a free loopback port: left alone it takes 8787 and, when
    another cluster holds that, warns and moves. Worker processes start with :data:`WORKER_MALLOC`.
    """
    import dask
    from distributed import LocalCluster

    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ"), **WORKER_MALLOC}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        return LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            memory_limit=memory_limit,
            processes=processes,
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        )


Progress = Callable[[str], None]


class _Counter(Callback):
    """Counts finished tasks of the local scheduler and reports every ``every_s`` seconds."""

    def __init__(self, say: Progress, what: str, every_s: float) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._say, self._what, self._every = say, what, every_s
        self._total = self._done = 0
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def _start_state(self, _dsk: object, state: dict[str, Any]) -> None:
        self._total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished"))

    def _posttask(self, *_args: object) -> None:
        with self._lock:
            self._done += 1
            now = time.monotonic()
            if now - self._last >= self._every:
                self._last = now
                share = 100 * self._done // max(self._total, 1)
                self._say(f"{self._what}: {self._done}/{self._total} tasks ({share} %)")


def _on_cluster(client: Client, objs: tuple[Any, ...], say: Progress, what: str, every_s: float) -> list[Any]:
    from distributed import wait

    futures = client.compute(list(objs))  # type: ignore[no-untyped-call]
    start = time.monotonic()
    while True:
        try:
            wait(futures, timeout=every_s)  # type: ignore[no-untyped-call]
            break
        except TimeoutError:
            running = client.processing()  # type: ignore[no-untyped-call]
            busy = sum(len(tasks) for tasks in running.values())
            say(f"{what}: {time.monotonic() - start:.0f} s, {busy} tasks running on the cluster")
    return list(client.gather(futures))  # type: ignore[no-untyped-call]


def compute(
    *objs: Any,  # noqa: ANN401 - any dask collection
    client: Client | None = None,
    progress: Progress | None = None,
    what: str = "compute",
    every_s: float = 10.0,
) -> tuple[Any, ...]:
    """Compute ``objs`` together (shared tasks run once) and report progress; returns their values.

    Args:
        objs: Dask collections (or plain values, returned as they are).
        client: A distributed client to run on; None runs on the local threaded scheduler.
        progress: Called with a line now and then, and once at the end; None says nothing.
        what: Name of the work in the lines.
        every_s: Seconds between lines.
    """
    say = progress or (lambda _m: None)
    start = time.monotonic()
    if client is None:
        with _Counter(say, what, every_s):
            out = list(dask_compute(*objs, scheduler="threads"))  # type: ignore[no-untyped-call]
    else:
        out = _on_cluster(client, objs, say, what, every_s)
    say(f"{what}: done in {time.monotonic() - start:.1f} s")
    return tuple(out)
