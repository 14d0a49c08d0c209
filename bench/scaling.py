"""Scaling with area: boxes of 1x, 4x and 16x the base area, cut from the ``demo`` world, run through
search, cube and samples with 1 and 2 workers. Also the Dask graph size per chunk at each scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from bench.stages import bench_spec, cluster, fresh_store, run_search, run_stages
from gppscale.config import RunSpec

Say = Callable[[str], None]

CENTRE = (117.185, 42.09)
"""Centre of the demo world's area (lon, lat); every box shares it."""
BASE_DEG = (0.09, 0.068)
"""Base box (lon, lat extent, degrees): about 248 x 252 px at 30 m, one 256 px chunk."""
CHUNK_PX = 256


def box(scale: int) -> list[float]:
    """The lon/lat bbox of ``scale`` times the base area (sides times sqrt(scale))."""
    k = scale**0.5
    half_w, half_h = BASE_DEG[0] * k / 2, BASE_DEG[1] * k / 2
    return [CENTRE[0] - half_w, CENTRE[1] - half_h, CENTRE[0] + half_w, CENTRE[1] + half_h]


def scaling_spec(spec_file: Path, world_dir: Path, work: Path, scale: int, workers: int) -> RunSpec:
    """The ``small`` spec moved onto ``scale`` x the base box of the demo world, one year."""
    extra = {"area.bbox": box(scale), "years": [2021], "grid.chunk_px": CHUNK_PX}
    return bench_spec(spec_file, world_dir, work / f"scale{scale}-w{workers}", workers, extra)


def graph_size(spec: RunSpec) -> dict[str, Any]:
    """Tasks of the lazy cube and of the samples aggregation, per output chunk (region)."""
    from gppscale.io.cube import build_cube
    from gppscale.io.freeze import load_frozen
    from gppscale.io.store import RunStore
    from gppscale.plan import plan_run

    plan = plan_run(spec)
    cube = build_cube(spec, plan, load_frozen(RunStore(str(spec.output.store))))
    tasks = len(dict(cube.__dask_graph__()))
    ny, nx = plan.chunks_yx
    return {
        "shape_yx": [plan.geobox.shape.y, plan.geobox.shape.x],
        "chunks": ny * nx,
        "cube_tasks": tasks,
        "cube_tasks_per_chunk": tasks / (ny * nx),
    }


def run_scale(spec: RunSpec, say: Say) -> dict[str, Any]:
    """Search, cube and samples of one box, fresh; wall time and peaks per stage."""
    fresh_store(spec)
    row: dict[str, Any] = {"search": run_search(spec, say).as_dict()}
    row["graph"] = graph_size(spec)
    with cluster(spec) as client:
        for stage, timed in run_stages(spec, ["cube", "samples"], client, say).items():
            row[stage] = timed.as_dict()
    row["total_s"] = sum(row[s]["seconds"] for s in ("search", "cube", "samples"))
    row["max_worker_gib"] = max(row[s]["max_worker_gib"] or 0 for s in ("cube", "samples"))
    return row


def _ratios(rows: dict[str, dict[str, Any]], base: str, key: str) -> dict[str, float]:
    return {name: rows[name][key] / rows[base][key] for name in rows if rows[base][key]}


def marginal_tasks(rows: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Cube tasks added per added chunk between consecutive scales (constant when the graph is linear)."""
    graphs = sorted({(r["graph"]["chunks"], r["graph"]["cube_tasks"]) for r in rows.values()})
    return {f"{c0}->{c1} chunks": (t1 - t0) / (c1 - c0) for (c0, t0), (c1, t1) in pairwise(graphs) if c1 > c0}


def run_scaling(
    spec_file: Path, world_dir: Path, work: Path, scales: Sequence[int], workers: Sequence[int], say: Say
) -> dict[str, Any]:
    """Every scale with every worker count; ratios against the smallest scale with the same workers."""
    rows: dict[str, dict[str, Any]] = {}
    for w in workers:
        for s in scales:
            say(f"scaling: {s}x area, {w} worker(s), bbox {[round(v, 3) for v in box(s)]}")
            rows[f"{s}x/{w}w"] = {
                "scale": s,
                "workers": w,
                **run_scale(scaling_spec(spec_file, world_dir, work, s, w), say),
            }
    out: dict[str, Any] = {"rows": rows, "ratios": {}, "marginal_tasks_per_chunk": marginal_tasks(rows)}
    for w in workers:
        group = {k: v for k, v in rows.items() if v["workers"] == w}
        base = f"{min(scales)}x/{w}w"
        out["ratios"][f"{w}w"] = {
            "time": _ratios(group, base, "total_s"),
            "cube_time": {k: v["cube"]["seconds"] / group[base]["cube"]["seconds"] for k, v in group.items()},
            "peak_worker_memory": _ratios(group, base, "max_worker_gib"),
        }
    if len(workers) > 1:
        lo, hi = min(workers), max(workers)
        out["speedup"] = {
            f"{s}x": rows[f"{s}x/{lo}w"]["total_s"] / rows[f"{s}x/{hi}w"]["total_s"] for s in scales
        }
    return out
