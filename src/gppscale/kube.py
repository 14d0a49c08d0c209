"""Kubernetes: the Dask cluster of a run (dask-kubernetes operator), and the checks ``gppscale doctor`` makes.

The resource specs are plain dictionaries built from the run spec (pure, testable offline against the
operator's CRDs); only :func:`kube_cluster` talks to the Kubernetes API.

* The DaskCluster has the CPU worker group (``cluster.kubernetes.cpu_workers``) and a scheduler with the
  HTTP API on (the operator uses it to retire workers).
* A DaskWorkerGroup ``gpu`` (``gpu_workers``) asks for ``nvidia.com/gpu: "1"`` per worker, starts each
  worker with ``--resources GPU=1`` (the training tasks ask for that resource), selects GPU nodes and
  tolerates their ``nvidia.com/gpu`` taint.
* Pods run as a non-root user with a read-only root filesystem, no privilege escalation, all capabilities
  dropped and the RuntimeDefault seccomp profile; cloud credentials come from the ServiceAccount
  (workload identity), never from keys.

Example:
    >>> from gppscale.config import parse_spec
    >>> spec = parse_spec({"name": "demo", "area": {"bbox": [117.0, 41.95, 117.37, 42.23]}, "years": 2021,
    ...     "catalog": {"url": "https://example.com/stac"}, "output": {"store": "s3://my-bucket/demo"},
    ...     "cluster": {"mode": "kubernetes", "kubernetes": {"gpu_workers": 1}}})
    >>> group = gpu_worker_group(spec)
    >>> group["spec"]["worker"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
    '1'
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from gppscale import __version__
from gppscale.compute import WORKER_MALLOC
from gppscale.config import RunSpec
from gppscale.errors import GppscaleError, MissingDependencyError

if TYPE_CHECKING:
    from distributed.deploy.cluster import Cluster

__all__ = [
    "DEFAULT_IMAGE",
    "cluster_name",
    "dask_cluster_spec",
    "gpu_worker_group",
    "kube_cluster",
    "load_kube_credentials",
    "submit",
    "submit_manifests",
]

DEFAULT_IMAGE = f"ghcr.io/gppscale/gppscale:{__version__}"
"""The image of this version, used when ``cluster.kubernetes.image`` is null."""

SCHEDULER_ROUTES = (
    '["distributed.http.scheduler.prometheus", "distributed.http.scheduler.info", '
    '"distributed.http.scheduler.json", "distributed.http.health", "distributed.http.proxy", '
    '"distributed.http.statics", "distributed.http.scheduler.api"]'
)
"""Dask's default scheduler HTTP routes plus the API the operator uses to retire workers."""

_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
_SCRATCH = {"name": "scratch", "emptyDir": {}}
_ENV = {
    "DASK_TEMPORARY_DIRECTORY": "/scratch",
    "HOME": "/scratch",
    "MPLCONFIGDIR": "/scratch",
    **WORKER_MALLOC,  # the nanny takes these over distributed's defaults (see gppscale.compute)
}


def cluster_name(spec: RunSpec) -> str:
    """``gppscale-<run name>``, cut to the 40 characters the operator's derived names leave room for."""
    return f"gppscale-{spec.name}"[:40].rstrip("-")


def _harden(pod: dict[str, Any], spec: RunSpec) -> dict[str, Any]:
    """Security context, a writable scratch volume and the ServiceAccount on a pod spec."""
    pod = copy.deepcopy(pod)
    pod["securityContext"] = {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001}
    pod["volumes"] = [_SCRATCH]
    account = spec.cluster.kubernetes.service_account
    if account:
        pod["serviceAccountName"] = account
    for container in pod["containers"]:
        container["securityContext"] = dict(_SECURITY)
        container["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
    return pod


def _resources(spec: RunSpec, gpu: bool = False) -> dict[str, dict[str, str]]:
    k = spec.cluster.kubernetes
    amounts = {"cpu": k.worker_cpu, "memory": k.worker_memory}
    limits = {**amounts, **({"nvidia.com/gpu": "1"} if gpu else {})}
    return {"requests": dict(amounts), "limits": limits}


def _need_operator() -> Any:  # noqa: ANN401 - the dask_kubernetes.operator module
    try:
        from dask_kubernetes import operator
    except ImportError as e:
        raise MissingDependencyError(
            "cluster.mode: kubernetes needs dask-kubernetes; install the k8s extra: "
            "pip install 'gppscale[k8s]'"
        ) from e
    return operator


def dask_cluster_spec(spec: RunSpec) -> dict[str, Any]:
    """The DaskCluster resource of a run: scheduler (HTTP API on) and the CPU worker group."""
    k = spec.cluster.kubernetes
    operator = _need_operator()
    out: dict[str, Any] = operator.make_cluster_spec(
        name=cluster_name(spec),
        image=k.image or DEFAULT_IMAGE,
        n_workers=k.cpu_workers,
        resources=_resources(spec),
        env=_ENV,
        worker_command="dask-worker",
    )
    out["metadata"]["namespace"] = k.namespace
    workers = out["spec"]["worker"]
    workers["spec"] = _harden(workers["spec"], spec)
    workers["spec"]["containers"][0]["args"] += ["--nthreads", str(spec.cluster.threads_per_worker)]
    scheduler = out["spec"]["scheduler"]
    scheduler["spec"] = _harden(scheduler["spec"], spec)
    scheduler_container = scheduler["spec"]["containers"][0]
    scheduler_container["env"].append(
        {"name": "DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES", "value": SCHEDULER_ROUTES}
    )
    scheduler_container["resources"] = {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }
    return out


def gpu_worker_group(spec: RunSpec) -> dict[str, Any]:
    """The DaskWorkerGroup ``gpu`` of a run: one GPU per worker, Dask resource GPU=1, on GPU nodes."""
    k = spec.cluster.kubernetes
    operator = _need_operator()
    worker = operator.make_worker_spec(
        image=k.image or f"{DEFAULT_IMAGE}-cuda",
        n_workers=k.gpu_workers,
        resources=_resources(spec, gpu=True),
        env=_ENV,
        worker_command="dask-worker",
    )
    worker["spec"] = _harden(worker["spec"], spec)
    worker["spec"]["containers"][0]["args"] += ["--nthreads", "1", "--resources", "GPU=1"]
    worker["spec"]["nodeSelector"] = dict(k.gpu_node_selector)
    worker["spec"]["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    name = cluster_name(spec)
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskWorkerGroup",
        "metadata": {"name": f"{name}-gpu", "namespace": k.namespace},
        "spec": {"cluster": name, "worker": worker},
    }


def load_kube_credentials() -> None:
    """Load in-cluster credentials, else the kubeconfig (``KUBECONFIG`` or ``~/.kube/config``).

    Raises:
        MissingDependencyError: Without the kubernetes package.
        GppscaleError: If neither gives usable credentials.
    """
    try:
        from kubernetes import config
    except ImportError as e:
        raise MissingDependencyError("Kubernetes needs the k8s extra: pip install 'gppscale[k8s]'") from e
    try:
        config.load_incluster_config()
        return
    except config.ConfigException:
        pass
    try:
        config.load_kube_config()
    except Exception as e:  # ConfigException, a missing or broken kubeconfig file
        where = os.environ.get("KUBECONFIG", "~/.kube/config")
        raise GppscaleError(
            f"no usable Kubernetes credentials: not inside a cluster, and the kubeconfig {where} gives none "
            f"({e}); point KUBECONFIG at a kubeconfig or run inside the cluster"
        ) from e


@contextmanager
def kube_cluster(spec: RunSpec) -> Iterator[Cluster]:
    """Create the run's DaskCluster (and GPU worker group) through the operator; deleted on exit.

    Raises:
        MissingDependencyError: Without dask-kubernetes.
        GppscaleError: If the Kubernetes API or the operator cannot be reached (run ``gppscale doctor``).
    """
    operator = _need_operator()
    k = spec.cluster.kubernetes
    try:
        load_kube_credentials()
        cluster = operator.KubeCluster(
            custom_cluster_spec=dask_cluster_spec(spec),
            namespace=k.namespace,
            shutdown_on_close=True,
            quiet=True,
        )
    except Exception as e:  # kubernetes_asyncio and kr8s raise unrelated types
        raise GppscaleError(
            f"cannot create the Dask cluster {cluster_name(spec)!r} in namespace {k.namespace!r}: {e}. Check "
            "the kubeconfig or in-cluster credentials and that the dask-kubernetes operator is installed "
            "(`gppscale doctor SPEC` checks both)"
        ) from e
    try:
        if k.gpu_workers:
            group = gpu_worker_group(spec)
            cluster.add_worker_group(name="gpu", custom_spec=group["spec"]["worker"])
        yield cluster
    finally:
        cluster.close()


def submit_manifests(spec: RunSpec, spec_yaml: str) -> list[dict[str, Any]]:
    """The resources ``gppscale submit`` creates: the run spec's ConfigMap, a DaskJob, a GPU worker group.

    The DaskJob's runner pod runs ``gppscale run`` on the spec (mounted from the ConfigMap) against the
    job's own Dask cluster, whose address the operator passes in ``DASK_SCHEDULER_ADDRESS``.
    """
    name = cluster_name(spec)
    k = spec.cluster.kubernetes
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-spec", "namespace": k.namespace},
        "data": {"spec.yaml": spec_yaml},
    }
    cluster = dask_cluster_spec(spec)["spec"]
    runner = {
        "name": "job",
        "image": k.image or DEFAULT_IMAGE,
        "args": [
            "run",
            "/etc/gppscale/spec.yaml",
            "--set",
            "cluster.mode=address",
            "--set",
            "cluster.address=$(DASK_SCHEDULER_ADDRESS)",
        ],
        "env": [{"name": key, "value": value} for key, value in _ENV.items()],
        "resources": {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"cpu": "1", "memory": "4Gi"}},
    }
    job_pod = _harden({"containers": [runner], "restartPolicy": "Never"}, spec)
    job_pod["volumes"].append({"name": "spec", "configMap": {"name": f"{name}-spec"}})
    job_pod["containers"][0]["volumeMounts"].append(
        {"name": "spec", "mountPath": "/etc/gppscale", "readOnly": True}
    )
    job = {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskJob",
        "metadata": {"name": name, "namespace": k.namespace},
        "spec": {"job": {"spec": job_pod}, "cluster": {"spec": cluster}},
    }
    out = [config_map, job]
    if k.gpu_workers:
        out.append(gpu_worker_group(spec))
    return out


def submit(spec: RunSpec, spec_yaml: str) -> list[str]:
    """Create :func:`submit_manifests` in the cluster; returns ``kind/name`` of each created resource.

    Raises:
        GppscaleError: If the Kubernetes API refuses or cannot be reached.
    """
    try:
        from kubernetes import client, config
    except ImportError as e:
        raise MissingDependencyError(
            "gppscale submit needs the k8s extra: pip install 'gppscale[k8s]'"
        ) from e
    try:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        created = []
        for manifest in submit_manifests(spec, spec_yaml):
            namespace = manifest["metadata"]["namespace"]
            if manifest["kind"] == "ConfigMap":
                client.CoreV1Api().create_namespaced_config_map(namespace, manifest)
            else:
                plural = {"DaskJob": "daskjobs", "DaskWorkerGroup": "daskworkergroups"}[manifest["kind"]]
                client.CustomObjectsApi().create_namespaced_custom_object(
                    "kubernetes.dask.org", "v1", namespace, plural, manifest
                )
            created.append(f"{manifest['kind']}/{manifest['metadata']['name']}")
    except Exception as e:  # kubernetes raises ApiException, ConfigException, urllib3 errors
        raise GppscaleError(
            f"cannot submit the run to Kubernetes: {e}. Check the kubeconfig, the namespace and that the "
            "dask-kubernetes operator is installed (`gppscale doctor SPEC`)"
        ) from e
    return created
