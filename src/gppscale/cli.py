"""The ``gppscale`` command line: wiring only; the work lives in the library.

Commands:

* ``gppscale world --preset small|demo|basin --out DIR [--seed N]`` writes a synthetic world.
* ``gppscale catalog serve DIR [--port P]`` serves a world's STAC collections until Ctrl-C.
* ``gppscale search|cube|samples|train|predict|run SPEC [--set KEY=VALUE]`` runs the pipeline up to a stage
  (each stage runs the earlier ones first when their outputs are missing or stale; finished work is reused).
* ``gppscale doctor SPEC`` checks that a run can start; ``gppscale submit SPEC [--dry-run]`` sends it to
  Kubernetes as a DaskJob.
* ``gppscale demo [--preset small|demo] [--out DIR] [--seed N] [--spec FILE]`` makes (or reuses) a
  world under ``DIR/world``, serves it, and summarises what a run would find in each collection.

Every :class:`~gppscale.errors.GppscaleError` is printed as ``error: <message>`` on stderr with exit
status 2, without a traceback.

Example:
    >>> main(["--version"])  # doctest: +SKIP
    gppscale 0.1.0
    0
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from gppscale import __version__
from gppscale.errors import DataWarning, GppscaleError, SpecError

if TYPE_CHECKING:
    from gppscale.config import RunSpec
    from gppscale.io.samples import SamplesResult
    from gppscale.runner import CubeResult, PredictResult, RunResult, TrainResult

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


def _progress_printer(t0: float) -> Callable[[str], None]:
    def progress(message: str) -> None:
        print(f"[{time.monotonic() - t0:7.1f} s] {message}", flush=True)

    return progress


def _cmd_world(args: argparse.Namespace) -> int:
    from gppscale.world import make_world

    t0 = time.monotonic()
    world = make_world(args.preset, args.out, seed=args.seed, progress=_progress_printer(t0))
    print(f"world {args.preset!r} (seed {args.seed}) written to {world} in {time.monotonic() - t0:.1f} s")
    return 0


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt inside the block, so ``with`` clean-ups run on both."""

    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _cmd_catalog_serve(args: argparse.Namespace) -> int:
    from gppscale.io.catalog import CatalogServer

    with _sigterm_as_interrupt():
        try:
            with CatalogServer(args.dir, port=args.port, startup_timeout_s=args.startup_timeout) as server:
                print(f"STAC API at {server.url} — Ctrl-C to stop", flush=True)
                server.wait()  # returns only by raising: CatalogError if the server dies
        except KeyboardInterrupt:
            print("stopped", flush=True)
    return 0


def world_matches(world_dir: Path, preset: str, seed: int) -> bool:
    """Whether ``world_dir`` holds a complete world of this preset and seed."""
    from gppscale.world import read_manifest

    try:
        meta = read_manifest(world_dir)
    except (GppscaleError, OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("preset") == preset and meta.get("seed") == seed


def _resolve_spec_path(spec: Path | None, preset: str) -> Path:
    path = spec if spec is not None else Path.cwd() / "pipeline" / f"{preset}.yaml"
    if not path.is_file():
        raise SpecError(
            f"run spec {str(path)!r} not found; run from the repository root "
            f"(it holds pipeline/{preset}.yaml) or pass --spec FILE"
        )
    return path


def _ensure_world(world_dir: Path, preset: str, seed: int) -> None:
    if world_matches(world_dir, preset, seed):
        print(f"reusing world {preset!r} (seed {seed}) at {world_dir}")
        return
    from gppscale.world import make_world

    print(f"making world {preset!r} (seed {seed}) at {world_dir}")
    t0 = time.monotonic()
    make_world(preset, world_dir, seed=seed, progress=_progress_printer(t0))
    print(f"world written in {time.monotonic() - t0:.1f} s")


def _load_cli_spec(args: argparse.Namespace) -> RunSpec:
    from gppscale.config import load_spec, parse_override

    return load_spec(args.spec, overrides=dict(parse_override(o) for o in args.set))


def _cmd_search(args: argparse.Namespace) -> int:
    from gppscale.runner import run_search

    spec = _load_cli_spec(args)
    t0 = time.monotonic()
    frozen = run_search(spec, refresh=args.refresh, progress=_progress_printer(t0))
    total = sum(len(v) for v in frozen.items.values())
    print(f"search: {total} items frozen in {spec.output.store}/search in {time.monotonic() - t0:.1f} s")
    return 0


def _print_cube(result: CubeResult) -> None:
    print(f"cube: {result.url}: {result.written} regions written, {result.skipped} already done")


def _stage_command(stage: str, show: Callable[[Any], None]) -> Handler:
    """The handler of ``gppscale <stage> SPEC``: run up to the stage, then ``show`` its result."""

    def handler(args: argparse.Namespace) -> int:
        spec = _load_cli_spec(args)
        t0 = time.monotonic()
        show(_run_stages(spec, stage, _progress_printer(t0)).results[stage])
        print(f"{stage}: done in {time.monotonic() - t0:.1f} s")
        return 0

    return handler


def _print_counts(result: SamplesResult) -> None:
    print(f"samples: {result.url}: {result.rows} rows, {result.cells} coarse cells ({result.status})")
    print(f"  {'type':<11} {'cells':>6} {'pure':>5} {'train':>6} {'test':>5}  purity")
    actions = {r.forest_type: r for r in result.reports}
    for name, c in result.counts.items():
        r = actions.get(name)
        how = "" if r is None else f"{r.action} (min_type_fraction {r.min_type_fraction})"
        print(f"  {name:<11} {c['cells']:>6} {c['pure']:>5} {c['train']:>6} {c['test']:>5}  {how}")


def _run_stages(spec: RunSpec, last: str, progress: Callable[[str], None]) -> RunResult:
    """Search, then every stage up to ``last`` on the spec's Dask cluster (see ``runner.run_stages``)."""
    from gppscale.runner import run_stages

    with _sigterm_as_interrupt():
        return run_stages(spec, last, progress=progress)


def _print_metrics(result: TrainResult) -> None:
    print(f"train: {result.url}: {result.trained} tasks trained, {result.reused} reused")
    print("  held-out test cells (coarse scale); * = model used for the 30 m maps")
    print(f"  {'type':<5} {'target':<6} {'model':<6} {'R²':>7} {'R² in-q':>8} {'RMSE':>8} {'MD':>8} {'N':>6}")
    for row in result.rows:
        mark = "*" if row["selected"] else " "
        r2, in_q, rmse, md = (_num(row[k]) for k in ("r2", "within_quarter_r2", "rmse", "md"))
        print(
            f"  {row['forest_type']:<5} {row['target']:<6} {row['model']:<5}{mark} {r2:>7.3f} {in_q:>8.3f} "
            f"{rmse:>8.1f} {md:>8.1f} {row['n']:>6}"
        )


def _num(value: object) -> float:
    return float("nan") if value is None else float(value)  # type: ignore[arg-type]


def _print_predict(result: PredictResult) -> None:
    state = "already complete" if result.skipped < 0 else f"{result.written} regions written"
    print(f"predict: {result.url} ({state})")
    for target, by_type in result.consistency.items():
        parts = [
            f"{t} {v['median_rel_error']:.1e}"
            for t, v in by_type.items()
            if v.get("median_rel_error") is not None
        ]
        print(f"  mass preservation, {target}: median |mean - coarse| / coarse per type: {', '.join(parts)}")


def _cmd_doctor(args: argparse.Namespace) -> int:
    from gppscale.doctor import run_checks

    checks = run_checks(_load_cli_spec(args))
    for check in checks:
        print(check.line())
    failed = [c.name for c in checks if not c.ok]
    print(
        "doctor: all checks passed"
        if not failed
        else f"doctor: {len(failed)} check(s) failed: {', '.join(failed)}"
    )
    return 0 if not failed else 1


def _cmd_submit(args: argparse.Namespace) -> int:
    import yaml

    from gppscale.kube import submit, submit_manifests

    spec = _load_cli_spec(args)
    if spec.cluster.mode != "kubernetes":
        raise SpecError(
            f"gppscale submit runs on Kubernetes, but cluster.mode is {spec.cluster.mode!r}; set "
            "cluster.mode: kubernetes (and cluster.kubernetes.image) or use `gppscale run`"
        )
    text = yaml.safe_dump(spec.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False)
    if args.dry_run:
        print(yaml.safe_dump_all(submit_manifests(spec, text), sort_keys=False), end="")
        return 0
    for name in submit(spec, text):
        print(f"submitted {name}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    out: Path = args.out if args.out is not None else Path("out") / args.preset
    spec_path = _resolve_spec_path(args.spec, args.preset)

    from gppscale.config import load_spec

    world_dir, run_dir = (out / "world").resolve(), (out / "run").resolve()
    _ensure_world(world_dir, args.preset, args.seed)
    # The demo owns its run folder: a run made by another version or spec there is replaced.
    overrides: dict[str, object] = {
        "catalog.world": str(world_dir),
        "output.store": str(run_dir),
        "output.overwrite": True,
        # The world's own validation data, wherever the spec file points.
        "validation.truth": str(world_dir / "truth" / "truth.zarr"),
        "validation.plots": str(world_dir / "plots" / "plots.geojson"),
        "validation.towers_sites": str(world_dir / "towers" / "sites.geojson"),
        "validation.towers_dir": str(world_dir / "towers"),
    }
    spec = load_spec(spec_path, overrides=overrides)
    t0 = time.monotonic()
    run = _run_stages(spec, "validate", _progress_printer(t0))
    print()
    print(f"run spec:   {spec_path}")
    print(f"world:      {world_dir}")
    _print_run(run)
    print(f"Done in {time.monotonic() - t0:.0f} s.")
    return 0


def _print_validation(written: dict[str, str]) -> None:
    print(f"validate:   {written.get('report.html')}  ({len(written)} files: tables, figures, report)")


def _print_run(run: RunResult) -> None:
    results = run.results
    frozen, cube = results["search"], results["cube"]
    print(f"search:     {sum(len(v) for v in frozen.items.values())} items frozen")
    print(f"cube:       {cube.url} ({cube.written} regions written, {cube.skipped} already done)")
    print("            open it with xarray.open_zarr(path, consolidated=False)")
    _print_counts(results["samples"])
    print("            read it with gppscale.io.samples.read_samples(RunStore(path)) or pandas.read_parquet")
    _print_metrics(results["train"])
    _print_predict(results["predict"])
    print('            open it with xarray.open_zarr(path, consolidated=False, decode_coords="all")')
    if "validate" in results:
        _print_validation(results["validate"])
    print(f"STAC:       {run.stac}")
    print(f"manifest:   {run.manifest}")
    print("timings:    " + ", ".join(f"{stage} {s:.1f} s" for stage, s in run.timings_s.items()))


def _cmd_run(args: argparse.Namespace) -> int:
    spec = _load_cli_spec(args)
    t0 = time.monotonic()
    _print_run(_run_stages(spec, "validate", _progress_printer(t0)))
    print(f"run: done in {time.monotonic() - t0:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gppscale`` command."""
    parser = argparse.ArgumentParser(
        prog="gppscale", description="Downscale coarse GPP/NPP products to 30 m over forests."
    )
    parser.add_argument("--version", action="version", version=f"gppscale {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    world = commands.add_parser("world", help="write a synthetic world (data, STAC, towers, plots, truth)")
    world.add_argument("--preset", choices=("small", "demo", "basin"), default="small", help="world size")
    world.add_argument("--out", type=Path, required=True, help="folder to write the world into")
    world.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    world.set_defaults(func=_cmd_world)

    catalog = commands.add_parser("catalog", help="STAC catalog tools")
    catalog_cmds = catalog.add_subparsers(dest="catalog_command", required=True, metavar="COMMAND")
    serve = catalog_cmds.add_parser("serve", help="serve a world's STAC collections until Ctrl-C")
    serve.add_argument("dir", type=Path, help="world folder written by `gppscale world`")
    serve.add_argument("--port", type=int, default=None, help="loopback port (default: a free one)")
    serve.add_argument(
        "--startup-timeout", type=float, default=30.0, help="seconds to wait for the server (default 30)"
    )
    serve.set_defaults(func=_cmd_catalog_serve)

    for name, func, text in (
        ("search", _cmd_search, "search the spec's catalog and freeze the items (stac-geoparquet)"),
        (
            "cube",
            _stage_command("cube", _print_cube),
            "build the 30 m predictor cube Zarr (searches first if needed; resumable)",
        ),
        (
            "samples",
            _stage_command("samples", _print_counts),
            "aggregate the cube to the coarse grid, flag pure cells, split (Parquet)",
        ),
        (
            "train",
            _stage_command("train", _print_metrics),
            "train the models per forest type and target, score them, select (resumable)",
        ),
        (
            "predict",
            _stage_command("predict", _print_predict),
            "30 m quarterly GPP/NPP Zarr, mass-preserved (runs earlier stages; resumable)",
        ),
        (
            "validate",
            _stage_command("validate", _print_validation),
            "compare the 30 m maps with truth, reference, plots and towers; report (runs earlier stages)",
        ),
        ("run", _cmd_run, "every stage, then the output STAC collection and the run manifest (resumable)"),
        ("doctor", _cmd_doctor, "check packages, store, catalog, scheduler and Kubernetes; say how to fix"),
        ("submit", _cmd_submit, "submit the run to Kubernetes as a DaskJob (--dry-run prints the manifests)"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("spec", type=Path, help="run spec YAML")
        sub.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a spec value (repeatable)",
        )
        if name == "search":
            sub.add_argument(
                "--refresh", action="store_true", help="search again even if a frozen search exists"
            )
        if name == "submit":
            sub.add_argument("--dry-run", action="store_true", help="print the manifests, create nothing")
        sub.set_defaults(func=func)

    demo = commands.add_parser(
        "demo", help="make a world and run the whole pipeline on it, validation included"
    )
    demo.add_argument("--preset", choices=("small", "demo"), default="demo", help="world and run spec preset")
    demo.add_argument("--out", type=Path, default=None, help="output folder (default out/<preset>)")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the world (default 0)")
    demo.add_argument(
        "--spec",
        type=Path,
        default=None,
        help="run spec (default pipeline/<preset>.yaml under the current folder)",
    )
    demo.set_defaults(func=_cmd_demo)
    return parser


@contextmanager
def _data_warnings_as_lines() -> Iterator[None]:
    """Show every :class:`~gppscale.errors.DataWarning` as ``warning: <message>`` on stderr.

    Data warnings report on the inputs (items skipped, too few pure cells): the command line always
    shows them, once each, whatever the interpreter's warning filters say.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("always", DataWarning)
        previous = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
            if issubclass(category, DataWarning):
                print(f"warning: {message}", file=sys.stderr, flush=True)
            else:
                previous(message, category, *args, **kwargs)  # type: ignore[arg-type]

        warnings.showwarning = show
        yield


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gppscale`` command line; return the exit status.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv[1:]``.

    Returns:
        0 on success, 2 on a usage error or a :class:`~gppscale.errors.GppscaleError` (printed as
        ``error: <message>`` on stderr), 130 when interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors
        return e.code if isinstance(e.code, int) else 2
    handler: Handler = args.func
    try:
        with _data_warnings_as_lines():
            return handler(args)
    except GppscaleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
