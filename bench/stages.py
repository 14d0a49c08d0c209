"""The pipeline's own stages, run fresh and measured one by one (wall time, peak memory per process).

Nothing is reimplemented: the stages are :mod:`gppscale.runner`'s ``run_*`` functions on the spec's own
LocalCluster (real worker processes), exactly as ``gppscale demo`` runs them.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.memory import Timed, measured
from gppscale import runner
from gppscale.config import RunSpec, load_spec

Say = Callable[[str], None]


def ensure_world(preset: str, world_dir: Path, say: Say, seed: int = 0) -> Path:
    """A complete world of ``preset`` at ``world_dir`` (made once, then reused)."""
    from gppscale.cli import world_matches
    from gppscale.world import make_world

    if not world_matches(world_dir, preset, seed):
        say(f"making world {preset!r} at {world_dir} (once; reused by later runs)")
        make_world(preset, world_dir, seed=seed)
    return world_dir.resolve()


def bench_spec(
    spec_file: Path, world_dir: Path, run_dir: Path, workers: int, extra: Mapping[str, Any] | None = None
) -> RunSpec:
    """The spec file's run on ``world_dir``, written to ``run_dir`` with ``workers`` local processes."""
    overrides: dict[str, Any] = {
        "catalog.world": str(world_dir),
        "output.store": str(run_dir.resolve()),
        "output.overwrite": True,
        "cluster.mode": "local",
        "cluster.workers": workers,
        "validation.truth": str(world_dir / "truth" / "truth.zarr"),
        "validation.plots": str(world_dir / "plots" / "plots.geojson"),
        "validation.towers_sites": str(world_dir / "towers" / "sites.geojson"),
        "validation.towers_dir": str(world_dir / "towers"),
        **(extra or {}),
    }
    return load_spec(spec_file, overrides=overrides)


def fresh_store(spec: RunSpec) -> None:
    """Remove the run folder so that no stage reuses earlier work."""
    path = Path(str(spec.output.store))
    if path.exists():
        shutil.rmtree(path)


@contextmanager
def cluster(spec: RunSpec) -> Iterator[Any]:
    """The spec's Dask client (a LocalCluster of worker processes)."""
    with runner.dask_client(spec.cluster, spec) as client:
        yield client


def run_search(spec: RunSpec, say: Say) -> Timed:
    """Stage search (driver only: the STAC server starts, items are fetched, screened and frozen)."""
    with measured(None) as t:
        runner.run_search(spec, refresh=True)
    say(f"  search: {t.seconds:.1f} s")
    return t


def _recorder(log: list[tuple[float, str]], t0: float) -> Say:
    """A stage ``progress`` callback keeping each line with its time since ``t0`` (the breakdown)."""

    def record(message: str) -> None:
        log.append((round(time.perf_counter() - t0, 2), message))

    return record


def run_stages(
    spec: RunSpec,
    stages: list[str],
    client: Any,  # noqa: ANN401 - a distributed.Client
    say: Say,
    logs: dict[str, list[tuple[float, str]]] | None = None,
) -> dict[str, Timed]:
    """Run ``stages`` (after search) in order on ``client``; each measured on its own.

    ``logs``, when given, receives each stage's progress lines with their times (what the stage spent on).
    """
    out: dict[str, Timed] = {}
    for stage in stages:
        fn = getattr(runner, f"run_{stage}")
        t0 = time.perf_counter()
        log: list[tuple[float, str]] = []
        with measured(client) as t:
            fn(spec, client=client, progress=_recorder(log, t0))
        out[stage] = t
        if logs is not None:
            logs[stage] = log
        peak = t.peaks.as_gib()["max_worker_gib"]
        say(f"  {stage}: {time.perf_counter() - t0:.1f} s, max worker RSS {peak} GiB")
    return out
