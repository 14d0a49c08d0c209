"""Run the stages of a spec: where the catalog comes from, which Dask cluster works, what is written.

Wiring only: every decision about data lives in :mod:`gppscale.io` and :mod:`gppscale.stages`.

Example:
    >>> from gppscale.config import parse_spec
    >>> spec = parse_spec({"name": "x", "area": {"bbox": [117.15, 42.06, 117.24, 42.13]}, "years": 2021,
    ...                    "catalog": {"url": "https://example.com/stac"}, "output": {"store": "/tmp/r"}})
    >>> with catalog_url(spec) as url:
    ...     print(url)
    https://example.com/stac
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gppscale.compute import local_cluster
from gppscale.config import ClusterSpec, RunSpec
from gppscale.errors import GppscaleError
from gppscale.io.freeze import FrozenSearch, load_frozen, search_run
from gppscale.io.store import CUBE_REL, RunStore
from gppscale.plan import RunPlan, plan_run

if TYPE_CHECKING:
    from distributed import Client

    from gppscale.io.samples import SamplesResult
    from gppscale.train import AggregateTask, TrainTask

__all__ = [
    "CUBE_REL",
    "STAGES",
    "CubeResult",
    "PredictResult",
    "RunResult",
    "TrainResult",
    "catalog_url",
    "dask_client",
    "describe_run",
    "run_cube",
    "run_predict",
    "run_samples",
    "run_search",
    "run_stages",
    "run_train",
    "run_validate",
]

Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    return None


@contextmanager
def catalog_url(spec: RunSpec) -> Iterator[str]:
    """The STAC API URL of the spec: ``catalog.url``, or a local server over ``catalog.world``."""
    if spec.catalog.world is None:
        yield str(spec.catalog.url)
        return
    from gppscale.io.catalog import serve_catalog

    with serve_catalog(Path(spec.catalog.world)) as url:
        yield url


@contextmanager
def dask_client(
    cluster: ClusterSpec, spec: RunSpec | None = None, *, connect_timeout_s: float = 30.0
) -> Iterator[Client]:
    """A ``distributed.Client`` for ``cluster``: a LocalCluster, a running scheduler or a Kubernetes cluster.

    Mode ``kubernetes`` creates a DaskCluster through the dask-kubernetes operator (``spec`` names it).
    Client, scheduler and worker package versions are checked at start.

    Raises:
        GppscaleError: If the scheduler cannot be reached or versions differ.
    """
    from distributed import Client

    if cluster.mode == "kubernetes":
        if spec is None:
            raise GppscaleError("cluster.mode: kubernetes needs the run spec to name its Dask cluster")
        from gppscale.kube import kube_cluster

        with kube_cluster(spec) as kube, Client(kube) as client:  # type: ignore[no-untyped-call]
            _check_versions(client)
            yield client
        return
    if cluster.mode == "address":
        try:
            client = Client(cluster.address, timeout=connect_timeout_s)  # type: ignore[no-untyped-call]
        except OSError as e:
            raise GppscaleError(
                f"cannot reach the Dask scheduler at {cluster.address}: {e}; start it (`dask scheduler`) or "
                "fix cluster.address"
            ) from e
        with client:
            _check_versions(client)
            yield client
        return
    with (
        local_cluster(
            cluster.workers, cluster.threads_per_worker, memory_limit=cluster.memory_limit
        ) as local,
        Client(local) as client,  # type: ignore[no-untyped-call]
    ):
        yield client


def _check_versions(client: Client) -> None:
    """Raise :class:`GppscaleError` when the cluster's packages differ from this process's."""
    try:
        client.get_versions(check=True)
    except ValueError as e:
        raise GppscaleError(
            f"the Dask cluster's package versions differ from this client's: {e}. Run the client from the "
            "same image as the workers (or the same environment)"
        ) from e


def run_search(spec: RunSpec, *, refresh: bool = False, progress: Progress = _quiet) -> FrozenSearch:
    """Stage 2: search the spec's catalog and freeze the items in the run store."""
    store = RunStore(spec.output.store)
    store.check_writable()
    with catalog_url(spec) as url:
        return search_run(spec, url, store, refresh=refresh, progress=progress)


@dataclass(frozen=True)
class CubeResult:
    """What the cube stage did."""

    url: str
    regions: int
    written: int
    skipped: int
    status: str


def run_cube(spec: RunSpec, *, client: Client | None = None, progress: Progress = _quiet) -> CubeResult:
    """Stage 3: build the lazy predictor cube from the frozen search and write its missing regions.

    Finished regions (recorded with checksums) are skipped, so a killed run continues where it stopped.
    """
    from gppscale.io.access import configure_reading, resolve_patch_url
    from gppscale.io.cube import build_cube, cube_encoding, cube_fingerprint
    from gppscale.io.regions import create_template, write_regions

    store = RunStore(spec.output.store)
    store.check_writable()
    plan = plan_run(spec)
    frozen = load_frozen(store)
    configure_reading(spec.catalog.requester_pays, client)
    cube = build_cube(spec, plan, frozen, resolve_patch_url(spec.catalog.sign))
    fingerprint = cube_fingerprint(spec, plan, frozen)
    status = create_template(
        cube,
        store,
        CUBE_REL,
        encoding=cube_encoding(cube, plan.chunk_px),
        fingerprint=fingerprint,
        overwrite=spec.output.overwrite,
    )
    ny, nx = plan.chunks_yx
    progress(
        f"cube: {status} {store.join(CUBE_REL)}: {len(cube.data_vars)} variables, "
        f"{len(plan.quarters)} quarters, {plan.geobox.shape.y} x {plan.geobox.shape.x} px, {ny * nx} regions"
    )

    def report(done: int, total: int) -> None:
        progress(f"cube: {done}/{total} regions written ({100 * done // max(total, 1)} %)")

    summary = write_regions(cube, store, CUBE_REL, fingerprint=fingerprint, client=client, progress=report)
    return CubeResult(store.join(CUBE_REL), summary.total, summary.written, summary.skipped, status)


def run_samples(spec: RunSpec, *, client: Client | None = None, progress: Progress = _quiet) -> SamplesResult:
    """Stage 4: aggregate the finished cube to the coarse grid, join GPP/NPP, flag pure cells and split.

    Raises:
        StoreError: If the cube is missing or unfinished (run ``gppscale cube SPEC``).
    """
    from gppscale.io.access import configure_reading, resolve_patch_url
    from gppscale.io.regions import open_complete
    from gppscale.io.samples import write_samples

    store = RunStore(spec.output.store)
    store.check_writable()
    plan = plan_run(spec)
    frozen = load_frozen(store)
    cube = open_complete(store, CUBE_REL, what="the predictor cube", fix="run `gppscale cube SPEC` first")
    configure_reading(spec.catalog.requester_pays, client)
    return write_samples(
        spec,
        plan,
        store,
        cube,
        frozen,
        patch_url=resolve_patch_url(spec.catalog.sign),
        client=client,
        progress=progress,
    )


@dataclass(frozen=True)
class TrainResult:
    """What the train stage did: the metrics rows, the selected models and how many tasks ran."""

    url: str
    rows: list[dict[str, Any]]
    selection: dict[str, dict[str, str]]
    trained: int
    reused: int


def _train_tasks(
    spec: RunSpec, store: RunStore, plan: RunPlan
) -> tuple[list[TrainTask | AggregateTask], list[str]]:
    """Every task of the spec, and the types that have no training cells (warned)."""
    from gppscale.io.models import task_fingerprint
    from gppscale.io.samples import SAMPLES_JSON, read_samples, recorded_coarse_grid
    from gppscale.stages.features import feature_names
    from gppscale.train import TREES, AggregateTask, TrainTask, type_data

    table = read_samples(store)
    described = store.read_json(SAMPLES_JSON)
    predictors = list(described["features"])
    features = tuple(feature_names(predictors))
    labels = tuple(q.label for q in plan.quarters)
    kinds = [*spec.models.kinds, *([TREES] if TREES in spec.models.baselines else [])]
    tasks: list[TrainTask | AggregateTask] = []
    missing = []
    for forest_type in spec.forest_types.modelled if "paper" in spec.models.modes else ():
        hyper = spec.models.hyper_for(forest_type)
        for target in ("gpp", "npp"):
            data = type_data(table, forest_type, predictors, target, plan.quarters, spec.split)
            if data is None:
                missing.append(forest_type)
                continue
            for kind in kinds:
                name = f"{forest_type}/{target}/{kind}"
                fp = task_fingerprint(described["sha256"], name, hyper.model_dump(mode="json"), features)
                tasks.append(TrainTask(forest_type, target, kind, hyper, features, labels, data, fp))
    if "aggregate" in spec.models.modes:
        coarse = recorded_coarse_grid(described)
        hyper = spec.models.hyper_for_aggregate()
        for target in ("gpp", "npp"):
            for kind in spec.models.aggregate_kinds:
                name = f"aggregate/{target}/{kind}"
                fp = task_fingerprint(described["sha256"], name, hyper.model_dump(mode="json"), features)
                tasks.append(
                    AggregateTask(
                        target,
                        kind,
                        hyper,
                        features,
                        fp,
                        store.url,
                        plan.geobox,
                        coarse,
                        tuple(predictors),
                        tuple(plan.quarters),
                        str(described["sha256"]),
                    )
                )
    return tasks, sorted(set(missing))


def run_train(spec: RunSpec, *, client: Client | None = None, progress: Progress = _quiet) -> TrainResult:
    """Stage 5: train every model kind and the tree baseline per forest type and target; select models.

    Then the other members of each selected model's deep ensemble (``models.ensemble``) are trained.
    Finished tasks (a record with the same fingerprint) are reused, so a stopped run continues.

    Raises:
        StoreError: If the run has no sample table (run ``gppscale samples SPEC``).
        NoDataError: If no forest type has pure training cells.
    """
    import warnings

    from gppscale.errors import DataWarning, NoDataError
    from gppscale.io.models import (
        TRAIN_DIR,
        maps_selection,
        read_record,
        write_intervals,
        write_outcome,
        write_summary,
    )
    from gppscale.train import run_tasks

    store = RunStore(spec.output.store)
    store.check_writable()
    plan = plan_run(spec)
    tasks, missing = _train_tasks(spec, store, plan)
    if missing:
        warnings.warn(
            f"no pure training cells for {', '.join(missing)}: no model is trained for them (see the purity "
            "warnings of `gppscale samples`; lower purity.<type>.min_cells or widen the area)",
            DataWarning,
            stacklevel=2,
        )
    if not tasks:
        raise NoDataError(
            f"no forest type of {list(spec.forest_types.modelled)} has pure training cells; nothing to "
            "train. Check the purity settings and the forest-type map over the area"
        )

    def run_missing(tasks: Sequence[TrainTask | AggregateTask], what: str) -> int:
        """Run the tasks without a record of their fingerprint; how many ran."""
        records = {t.name: read_record(store, t.name) for t in tasks}
        todo = [t for t in tasks if (records[t.name] or {}).get("fingerprint") != t.fingerprint]
        progress(f"train: {len(tasks)} {what} ({len(tasks) - len(todo)} already done)")
        run_tasks(todo, client, on_done=lambda o: write_outcome(store, o), progress=progress)
        return len(todo)

    trained = run_missing(tasks, "tasks")
    records = [r for r in (read_record(store, t.name) for t in tasks) if r is not None]
    rows, selection = write_summary(store, records, spec.models.select)
    mode = spec.models.modes[0]
    maps = maps_selection(selection, mode, spec.forest_types.modelled)
    members = _member_tasks(tasks, mode, maps, spec.models.ensemble)
    if members:
        trained += run_missing(members, f"ensemble members ({spec.models.ensemble} per selected model)")
    write_intervals(store, mode, maps, spec.models.ensemble, [q.label for q in plan.quarters])
    done = len(tasks) + len(members) - trained
    return TrainResult(store.join(TRAIN_DIR), rows, selection, trained, done)


def _member_tasks(
    tasks: Sequence[TrainTask | AggregateTask],
    mode: str,
    maps: Mapping[str, Mapping[str, str]],
    ensemble: int,
) -> list[TrainTask | AggregateTask]:
    """Members 1 ... ``ensemble - 1`` of each model that makes the maps (``maps``: ``maps_selection``)."""
    from gppscale.io.models import record_name, task_fingerprint
    from gppscale.train import as_member

    wanted = {
        record_name(mode, t, target, kind) for t, kinds in maps.items() for target, kind in kinds.items()
    }
    members: list[TrainTask | AggregateTask] = []
    for task in tasks:
        if task.name not in wanted:
            continue
        for k in range(1, ensemble):
            seed = task.hyper.seed + k
            fp = task_fingerprint(task.fingerprint, f"member{k}", {"seed": seed}, task.features)
            members.append(as_member(task, k, fp))
    return members


@dataclass(frozen=True)
class PredictResult:
    """What the predict stage did."""

    url: str
    written: int
    skipped: int
    consistency: dict[str, Any]


def _predict_inputs(spec: RunSpec, store: RunStore) -> tuple[Any, ...]:
    """Cube, selection, predictors, coarse grid and sample table of a trained run."""
    from gppscale.io.models import maps_selection, read_record, read_selection, record_name
    from gppscale.io.regions import open_complete
    from gppscale.io.samples import SAMPLES_JSON, read_samples, recorded_coarse_grid
    from gppscale.train import member_name

    cube = open_complete(store, CUBE_REL, what="the predictor cube", fix="run `gppscale cube SPEC` first")
    mode = spec.models.modes[0]
    selection = maps_selection(read_selection(store), mode, spec.forest_types.modelled)
    described = store.read_json(SAMPLES_JSON)
    coarse = recorded_coarse_grid(described)
    names = {
        member_name(record_name(mode, t, target, kind), member)
        for t, kinds in selection.items()
        for target, kind in kinds.items()
        for member in range(spec.models.ensemble)
    }
    checkpoints = {
        name: (read_record(store, name) or {}).get("meta", {}).get("sha256") for name in sorted(names)
    }
    return cube, selection, described["features"], coarse, read_samples(store), checkpoints


def run_predict(spec: RunSpec, *, client: Client | None = None, progress: Progress = _quiet) -> PredictResult:
    """Stage 6: the 30 m maps from the selected models, mass-preserved, written resumably as Zarr.

    Raises:
        StoreError: If the cube, the samples or the models are missing (run the earlier stages).
    """
    import hashlib
    import json

    from gppscale.io.models import interval_errors, json_safe
    from gppscale.io.predict import (
        OUTPUT_REL,
        RAW_REL,
        consistency,
        mass_factors,
        output_dataset,
        output_fingerprint,
        raw_dataset,
    )
    from gppscale.io.regions import open_complete

    store = RunStore(spec.output.store)
    store.check_writable()
    plan = plan_run(spec)
    cube, selection, predictors, coarse, table, checkpoints = _predict_inputs(spec, store)
    raw_fp = hashlib.sha256(
        json.dumps(
            [cube.attrs.get("gppscale_fingerprint"), spec.models.modes[0], selection, checkpoints],
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    chunk = int(cube.chunksizes["y"][0])  # the cube's own chunking (``grid.chunk_px`` when it was built)
    fills: dict[Hashable, float] = {"forest_type": 255, "model_gpp": 0, "model_npp": 0}
    settings = spec.predict.model_dump(mode="json")
    if store.exists("predict.json") and _finished(store, OUTPUT_REL):
        done = store.read_json("predict.json")
        if done.get("raw_fingerprint") == raw_fp and done.get("settings") == settings:
            progress(f"predict: reusing {store.join(OUTPUT_REL)}")
            return PredictResult(store.join(OUTPUT_REL), 0, -1, done.get("consistency", {}))
    raw = raw_dataset(
        cube,
        store_url=store.url,
        selection=selection,
        mode=spec.models.modes[0],
        predictors=predictors,
        quarters=plan.quarters,
        fingerprint=raw_fp,
        batch_px=spec.predict.batch_px,
        members=spec.models.ensemble,
    )
    progress(f"predict: 30 m maps of {sorted(selection)} with the selected models")
    write = partial(_write_zarr, store, chunk=chunk, fills=fills, client=client, progress=progress)
    write(raw, RAW_REL, raw_fp, overwrite=True, what="regions predicted")
    raw_stored = open_complete(store, RAW_REL, what="the raw 30 m maps", fix="rerun `gppscale predict SPEC`")
    factors, corrected = (None, None)
    if spec.predict.mass_preservation:
        factors, corrected = mass_factors(
            raw_stored,
            table,
            plan.geobox,
            coarse,
            plan.quarters,
            min_forest_fraction=spec.predict.min_forest_fraction,
            iterations=spec.predict.iterations,
            client=client,
            progress=progress,
        )
    labels = [q.label for q in plan.quarters]
    mode = spec.models.modes[0]
    errors = interval_errors(store, mode, selection, labels, corrected=factors is not None)
    out = output_dataset(
        raw_stored, factors, plan.geobox, coarse, plan.quarters, cube.spatial_ref, errors=errors
    )
    out_fp = output_fingerprint(raw_fp, factors)
    summary = write(out, OUTPUT_REL, out_fp, overwrite=spec.output.overwrite, what="output regions written")
    final = open_complete(store, OUTPUT_REL, what="the 30 m output")
    report = (
        consistency(final, table, corrected, plan.geobox, coarse, plan.quarters, client=client)
        if corrected is not None
        else {}
    )
    record = {"fingerprint": out_fp, "raw_fingerprint": raw_fp, "settings": settings, "selection": selection}
    store.write_json("predict.json", json_safe({**record, "consistency": report}))
    return PredictResult(store.join(OUTPUT_REL), summary.written, summary.skipped, report)


def _write_zarr(
    store: RunStore,
    ds: Any,  # noqa: ANN401 - an xarray Dataset
    rel: str,
    fingerprint: str,
    *,
    overwrite: bool,
    what: str,
    chunk: int,
    fills: dict[Hashable, float],
    client: Client | None,
    progress: Progress,
) -> Any:  # noqa: ANN401 - the RegionSummary
    """Template, then the missing chunk regions of ``ds`` at ``rel`` (resumable), with progress lines."""
    from gppscale.io.regions import create_template, region_encoding, write_regions

    encoding = region_encoding(ds, chunk_y=chunk, chunk_x=chunk, fill_values=fills)
    create_template(ds, store, rel, encoding=encoding, fingerprint=fingerprint, overwrite=overwrite)
    return write_regions(
        ds,
        store,
        rel,
        fingerprint=fingerprint,
        client=client,
        progress=lambda d, n: progress(f"predict: {d}/{n} {what}"),
    )


def _finished(store: RunStore, rel: str) -> bool:
    from gppscale.errors import StoreError
    from gppscale.io.regions import open_complete

    try:
        open_complete(store, rel)
    except StoreError:
        return False
    return True


STAGES = ("search", "cube", "samples", "train", "predict", "validate")
"""The pipeline's stages in order."""


@dataclass(frozen=True)
class RunResult:
    """What :func:`run_stages` did: each stage's result, its wall time, and the output description."""

    results: dict[str, Any]
    timings_s: dict[str, float]
    stac: str | None = None
    manifest: str | None = None


def run_stages(spec: RunSpec, last: str = "validate", *, progress: Progress = _quiet) -> RunResult:
    """Run the stages up to ``last`` on the spec's Dask cluster, each skipping its finished work.

    Once ``predict`` has run, the output's STAC collection (``stac/``) and the run manifest
    (``manifest.json``) are written.

    Raises:
        SpecError: If ``last`` is not a stage.
    """
    import time

    from gppscale.errors import SpecError

    if last not in STAGES:
        raise SpecError(f"unknown stage {last!r}; choose one of {list(STAGES)}")
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    start = time.perf_counter()
    results["search"] = run_search(spec, progress=progress)
    timings["search"] = time.perf_counter() - start
    with dask_client(spec.cluster, spec) as client:
        link = getattr(client, "dashboard_link", None)
        if link and spec.cluster.mode != "local":
            progress(f"dask: dashboard at {link}")
        for stage in STAGES[1 : STAGES.index(last) + 1]:
            start = time.perf_counter()
            results[stage] = globals()[f"run_{stage}"](spec, client=client, progress=progress)
            timings[stage] = time.perf_counter() - start
    if STAGES.index(last) < STAGES.index("predict"):
        return RunResult(results, timings)
    stac, manifest = describe_run(spec, timings)
    progress(f"run: STAC collection {stac}; manifest {manifest}")
    return RunResult(results, timings, stac, manifest)


def describe_run(spec: RunSpec, timings_s: dict[str, float]) -> tuple[str, str]:
    """Write the output's STAC collection and the run manifest; return their URLs."""
    import hashlib
    from datetime import UTC, datetime

    import xarray as xr

    from gppscale.io.outputs import package_versions, run_manifest, write_manifest, write_output_stac
    from gppscale.io.predict import OUTPUT_REL
    from gppscale.io.regions import read_region_records
    from gppscale.io.samples import SAMPLES_JSON

    store = RunStore(spec.output.store)
    plan = plan_run(spec)
    frozen = load_frozen(store)
    inputs = {
        f"search/{role}.parquet": info["sha256"]
        for role, info in frozen.manifest.get("roles", {}).items()
        if info.get("sha256")
    }
    inputs["samples.parquet"] = store.read_json(SAMPLES_JSON)["sha256"]
    records = read_region_records(store, OUTPUT_REL)
    outputs: dict[str, str] = {}
    for name in sorted({v for r in records.values() for v in r.get("checksums", {})}):
        digest = hashlib.sha256()
        for region in sorted(records):
            digest.update(f"{region}:{records[region]['checksums'].get(name, '')};".encode())
        outputs[f"{OUTPUT_REL}/{name}"] = digest.hexdigest()
    created = datetime.now(UTC)
    versions = package_versions()
    out = xr.open_zarr(store.zarr_store(OUTPUT_REL, read_only=True), consolidated=False)
    stac = write_output_stac(
        store, out, plan.geobox, run_name=spec.name, created=created, software=versions, inputs=inputs
    )
    manifest = run_manifest(
        spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        versions=versions,
        inputs=inputs,
        timings_s=timings_s,
        outputs=outputs,
        created=created,
    )
    write_manifest(store, manifest)
    return stac, store.join("manifest.json")


def run_validate(
    spec: RunSpec, *, client: Client | None = None, progress: Progress = _quiet
) -> dict[str, str]:
    """Stage 7: compare the 30 m maps with the truth, reference, plots and towers the spec names; report.

    Returns what was written (path under ``validation/`` → URL); ``validation/report.html`` is the report.
    """
    from gppscale.io.validate import write_validation

    del client  # validation reads the finished outputs in this process
    store = RunStore(spec.output.store)
    return write_validation(spec, plan_run(spec), store, load_frozen(store).items, progress=progress)
