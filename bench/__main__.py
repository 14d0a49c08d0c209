"""``python -m bench``: every stage against its floor, peers side by side, scaling with area.

Example:
    python -m bench --preset small            # ~10 min on 2 cores, with scaling on the demo world
    python -m bench --preset small --no-scaling
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gppscale.config import RunSpec
    from gppscale.io.freeze import FrozenSearch
    from gppscale.plan import RunPlan

Say = Callable[[str], None]

REPO = Path(__file__).resolve().parent.parent
STAGES = ["cube", "samples", "train", "predict", "validate"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark gppscale: stage wall time and peak memory against floors measured in the same "
        "run, peers (odc-stac vs stackstac, aggregation, inference), scaling with area. Writes "
        "<out>/<date>-<preset>.{json,md,png}.",
    )
    p.add_argument(
        "--preset", choices=("small", "demo"), default="small", help="world and run spec (default small)"
    )
    p.add_argument("--workers", type=int, default=2, help="Dask worker processes (default 2)")
    p.add_argument(
        "--scaling", action=argparse.BooleanOptionalAction, default=True,
        help="also run 1x/4x/16x area boxes cut from the demo world with 1 and 2 workers (default on)",
    )  # fmt: skip
    p.add_argument("--scales", default="1,4,16", help="area multiples for --scaling (default 1,4,16)")
    p.add_argument("--scaling-workers", default="1,2", help="worker counts for --scaling (default 1,2)")
    p.add_argument(
        "--peer-items", type=int, default=24, help="Landsat items in the loader peer (default 24; 0: all)"
    )
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="results folder")
    p.add_argument("--work", type=Path, default=REPO / "out" / "bench", help="scratch folder for runs")
    p.add_argument(
        "--worlds",
        type=Path,
        default=REPO / "out",
        help="worlds live in <worlds>/<preset>/world (default out)",
    )
    p.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    return p


def _say(t0: float) -> Say:
    def say(message: str) -> None:
        print(f"[{time.monotonic() - t0:7.1f} s] {message}", flush=True)

    return say


def _floors(
    spec: RunSpec, plan: RunPlan, frozen: FrozenSearch, run_dir: Path, world: Path, work: Path, say: Say
) -> dict[str, Any]:
    from bench import floors

    out: dict[str, Any] = {}
    cube_roles = ["landsat", "dem", "forest_type", "meteorology"]
    out["cog_cube"] = floors.cog_floor(floors.cog_hrefs(spec, plan, frozen, cube_roles), plan)
    out["cog_coarse"] = floors.cog_floor(
        floors.cog_hrefs(spec, plan, frozen, ["coarse_gpp", "coarse_npp"]), plan
    )
    out["zarr_cube"] = floors.zarr_floor(run_dir / "cube.zarr", work / "floor-cube.zarr")
    out["zarr_gpp"] = floors.zarr_floor(run_dir / "gpp.zarr", work / "floor-gpp.zarr")
    pixels = floors.type_pixel_counts(run_dir / "cube.zarr")
    out["torch_forward"] = floors.torch_forward_floor(
        str(run_dir), pixels, len(plan.quarters), spec.predict.batch_px, spec.cluster.workers
    )
    out["torch_train"] = floors.torch_train_floor(run_dir, spec.cluster.workers)
    out["stac"] = floors.stac_floor(spec, world)
    for name, value in out.items():
        say(f"floor {name}: {value}")
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    import os

    from bench import gpu, machine, peers, report, stages
    from gppscale.io.freeze import load_frozen
    from gppscale.io.store import RunStore
    from gppscale.plan import plan_run

    t0 = time.monotonic()
    say = _say(t0)
    res: dict[str, Any] = {
        "preset": args.preset,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "workers": args.workers,
        "load_start": machine.load_average(),
        "machine": machine.describe(),
        "source": machine.source(REPO),
    }
    os.chdir(REPO)
    work = args.work.resolve() / args.preset
    world = stages.ensure_world(args.preset, args.worlds / args.preset / "world", say, args.seed)
    spec = stages.bench_spec(REPO / "pipeline" / f"{args.preset}.yaml", world, work / "run", args.workers)
    run_dir = Path(str(spec.output.store))
    stages.fresh_store(spec)
    say(f"pipeline on {args.preset!r}, fresh run in {run_dir}")
    timed = {"search": stages.run_search(spec, say)}
    plan, frozen = plan_run(spec), load_frozen(RunStore(str(run_dir)))
    with stages.cluster(spec) as client:
        res["stage_logs"] = {}
        timed.update(stages.run_stages(spec, STAGES, client, say, res["stage_logs"]))
        say("peers")
        res["peers"] = {
            "loader": peers.loader_peers(spec, plan, frozen, client, args.peer_items or None),
            "aggregation": peers.aggregation_peers(plan, run_dir, client),
            "inference": peers.inference_peer(spec, plan, run_dir, client),
        }
        say(f"peers: {res['peers']}")
    res["stages"] = {k: v.as_dict() for k, v in timed.items()}
    say("floors")
    res["floors"] = _floors(spec, plan, frozen, run_dir, world, work, say)
    res["stage_rows"] = report.stage_rows(res["stages"], res["floors"])
    fwd = res["floors"]["torch_forward"]["seconds"]
    res["extra_ratios"] = {
        "predict_over_forward": res["stages"]["predict"]["seconds"] / fwd if fwd else None,
        "cube_over_cog": res["stages"]["cube"]["seconds"] / res["floors"]["cog_cube"]["seconds"],
        "inference_over_forward": res["peers"]["inference"]["seconds"] / fwd if fwd else None,
    }
    if args.scaling:
        from bench.scaling import run_scaling

        demo_world = stages.ensure_world("demo", args.worlds / "demo" / "world", say, args.seed)
        res["scaling"] = run_scaling(
            REPO / "pipeline" / "small.yaml",
            demo_world,
            args.work.resolve() / "scaling",
            [int(s) for s in args.scales.split(",")],
            [int(w) for w in args.scaling_workers.split(",")],
            say,
        )
    say("GPU section (CPU rates always)")
    res["gpu"] = gpu.gpu_section(run_dir)
    res["load_end"] = machine.load_average()
    res["bench_wall_s"] = time.monotonic() - t0
    for path in report.write(res, args.out):
        say(f"wrote {path}")
    print(report.markdown(res))
    return res


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from gppscale.errors import DataWarning

    # The synthetic inputs' data warnings (thin purity, few scenes) say nothing about speed.
    warnings.simplefilter("ignore", category=DataWarning)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
