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

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gppscale.config import ClusterSpec, RunSpec
from gppscale.errors import GppscaleError
from gppscale.io.freeze import FrozenSearch, load_frozen, search_run
from gppscale.io.store import RunStore
from gppscale.plan import plan_run

if TYPE_CHECKING:
    from distributed import Client

    from gppscale.io.samples import SamplesResult

__all__ = ["CUBE_REL", "CubeResult", "catalog_url", "dask_client", "run_cube", "run_samples", "run_search"]

CUBE_REL = "cube.zarr"
"""The predictor cube's place in the run store."""

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
def dask_client(cluster: ClusterSpec) -> Iterator[Client]:
    """A ``distributed.Client`` for ``cluster``: a LocalCluster of processes, or a running scheduler."""
    from distributed import Client, LocalCluster

    if cluster.mode == "kubernetes":
        raise GppscaleError(
            "cluster.mode: kubernetes is not available in this version (the Helm chart and operator "
            "support arrive with the deployment work); use mode: local or mode: address with a scheduler "
            "you started"
        )
    if cluster.mode == "address":
        with Client(cluster.address) as client:  # type: ignore[no-untyped-call]
            yield client
        return
    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=cluster.workers,
            threads_per_worker=cluster.threads_per_worker,
            memory_limit=cluster.memory_limit,
            processes=True,
            dashboard_address=None,
        ) as local,
        Client(local) as client,  # type: ignore[no-untyped-call]
    ):
        yield client


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
