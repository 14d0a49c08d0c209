"""``gppscale doctor SPEC``: check that a run can start, and say how to fix what cannot.

Each check returns a :class:`Check` (ok or not, what was found, and the fix); none changes anything
except a probe object that :meth:`gppscale.io.store.RunStore.check_writable` writes and removes.

Example:
    >>> Check("store", True, "writable").line()
    '[ ok ] store: writable'
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gppscale.config import RunSpec
from gppscale.errors import GppscaleError

__all__ = ["Check", "run_checks"]


@dataclass(frozen=True)
class Check:
    """One check: its name, whether it passed, what was found and (on failure) the fix."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        """``[ ok ] name: detail`` or ``[FAIL] name: detail -> fix``."""
        mark = "[ ok ]" if self.ok else "[FAIL]"
        return f"{mark} {self.name}: {self.detail}" + (f" -> {self.fix}" if self.fix and not self.ok else "")


def _versions(_spec: RunSpec) -> Check:
    names = ("gppscale", "dask", "distributed", "xarray", "zarr", "odc-stac", "torch")
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            return Check("packages", False, f"{name} is not installed", "pip install gppscale (or the image)")
    return Check("packages", True, ", ".join(found))


def _store(spec: RunSpec) -> Check:
    from gppscale.io.store import RunStore

    try:
        RunStore(spec.output.store).check_writable()
    except GppscaleError as e:
        return Check("store", False, str(e), "fix the credentials or output.store")
    return Check("store", True, f"{spec.output.store} is writable")


def _catalog(spec: RunSpec) -> Check:
    if spec.catalog.world is not None:
        world = Path(spec.catalog.world)
        ok = (world / "stac").is_dir()
        return Check(
            "catalog",
            ok,
            f"world {world}" + ("" if ok else " has no stac/ folder"),
            "make it with `gppscale world` or fix catalog.world",
        )
    from gppscale.io.search import open_client

    try:
        open_client(str(spec.catalog.url))
    except GppscaleError as e:
        return Check("catalog", False, str(e), "check catalog.url and the network")
    return Check("catalog", True, f"STAC API {spec.catalog.url} answers")


def _scheduler(spec: RunSpec) -> Check:
    if spec.cluster.mode != "address":
        return Check("scheduler", True, f"cluster.mode {spec.cluster.mode}: nothing to reach yet")
    from gppscale.runner import dask_client

    try:
        with dask_client(spec.cluster, spec, connect_timeout_s=5) as client:
            n = len(client.scheduler_info(n_workers=-1)["workers"])
    except GppscaleError as e:
        return Check("scheduler", False, str(e), "start the scheduler or fix cluster.address")
    return Check("scheduler", True, f"{spec.cluster.address}: {n} workers, versions match")


def _kubernetes(spec: RunSpec) -> Check:
    if spec.cluster.mode != "kubernetes":
        return Check("kubernetes", True, "not used (cluster.mode is not kubernetes)")
    from gppscale.kube import load_kube_credentials

    try:
        load_kube_credentials()
    except GppscaleError as e:
        where = os.environ.get("KUBECONFIG", "~/.kube/config")
        return Check("kubernetes", False, str(e), f"point KUBECONFIG at a kubeconfig (now {where})")
    from kubernetes import client

    try:
        api = client.ApiextensionsV1Api()
        for crd in (
            "daskclusters.kubernetes.dask.org",
            "daskjobs.kubernetes.dask.org",
            "daskworkergroups.kubernetes.dask.org",
        ):
            api.read_custom_resource_definition(crd)
        client.CoreV1Api().read_namespace(spec.cluster.kubernetes.namespace)
    except Exception as e:  # ApiException (404: CRD or namespace missing), connection errors
        return Check(
            "kubernetes",
            False,
            f"API or operator check failed: {e}",
            "install the dask-kubernetes operator (see deploy/helm/gppscale/README.md) and create "
            f"namespace {spec.cluster.kubernetes.namespace!r}",
        )
    return Check("kubernetes", True, "API reachable, dask-kubernetes CRDs installed, namespace exists")


CHECKS: tuple[Callable[[RunSpec], Check], ...] = (_versions, _store, _catalog, _scheduler, _kubernetes)
"""The checks, in the order they run."""


def run_checks(spec: RunSpec) -> list[Check]:
    """Every check of :data:`CHECKS` on ``spec``."""
    return [check(spec) for check in CHECKS]
