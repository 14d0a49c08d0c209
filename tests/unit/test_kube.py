"""Kubernetes specs of a run (offline, against the operator's CRDs), `gppscale submit --dry-run`, `doctor`."""

from __future__ import annotations

import doctest
from pathlib import Path
from typing import Any

import pytest
import yaml

import gppscale.doctor as doctor_mod
import gppscale.kube as kube_mod
from gppscale import cli
from gppscale.config import RunSpec, parse_spec
from gppscale.errors import GppscaleError

k8s = pytest.importorskip("gppscale.testing.k8s")
pytest.importorskip("dask_kubernetes")


def _spec(tmp_path: Path, **cluster: Any) -> RunSpec:
    world = tmp_path / "world"
    (world / "stac").mkdir(parents=True, exist_ok=True)
    return parse_spec(
        {
            "name": "luanhe-2020",
            "area": {"bbox": [117.0, 41.95, 117.37, 42.23]},
            "years": 2020,
            "catalog": {"world": str(world)},
            "output": {"store": str(tmp_path / "run")},
            "cluster": cluster
            or {"mode": "kubernetes", "kubernetes": {"gpu_workers": 2, "namespace": "runs"}},
        }
    )


@pytest.fixture(scope="module")
def validators() -> dict[str, Any]:
    return k8s.crd_validators()


def test_doctests() -> None:
    assert doctest.testmod(kube_mod).failed == 0
    assert doctest.testmod(doctor_mod).failed == 0


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod["containers"])


def test_cluster_and_gpu_group_pass_the_operator_crds(tmp_path: Path, validators: dict[str, Any]) -> None:
    spec = _spec(tmp_path)
    cluster = kube_mod.dask_cluster_spec(spec)
    group = kube_mod.gpu_worker_group(spec)
    assert k8s.crd_errors(validators, cluster) == []
    assert k8s.crd_errors(validators, group) == []
    assert group["spec"]["cluster"] == cluster["metadata"]["name"] == "gppscale-luanhe-2020"
    worker = group["spec"]["worker"]
    assert worker["replicas"] == 2
    (container,) = _containers(worker["spec"])
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"  # a string, as Kubernetes wants
    assert container["args"][-2:] == ["--resources", "GPU=1"]
    assert worker["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert worker["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    cpu = cluster["spec"]["worker"]["spec"]
    assert "--resources" not in _containers(cpu)[0]["args"]
    scheduler = _containers(cluster["spec"]["scheduler"]["spec"])[0]
    routes = {e["name"]: e["value"] for e in scheduler["env"]}["DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES"]
    assert "distributed.http.scheduler.api" in routes


def test_every_container_is_locked_down(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    text = yaml.safe_dump(spec.model_dump(mode="json", by_alias=True, exclude_none=True))
    docs = kube_mod.submit_manifests(spec, text)
    pods = [docs[1]["spec"]["job"]["spec"], docs[1]["spec"]["cluster"]["spec"]["worker"]["spec"]]
    pods += [docs[1]["spec"]["cluster"]["spec"]["scheduler"]["spec"], docs[2]["spec"]["worker"]["spec"]]
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in _containers(pod):
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] and not ctx["allowPrivilegeEscalation"]
            assert (
                ctx["capabilities"] == {"drop": ["ALL"]} and ctx["seccompProfile"]["type"] == "RuntimeDefault"
            )
            assert {"name": "scratch", "mountPath": "/scratch"} in container["volumeMounts"]


def test_submit_dry_run_prints_valid_manifests(
    tmp_path: Path, validators: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    spec = _spec(tmp_path)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json", by_alias=True, exclude_none=True)))
    assert cli.main(["submit", str(path), "--dry-run"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["kind"] for d in docs] == ["ConfigMap", "DaskJob", "DaskWorkerGroup"]
    kubernetes_validate.validate(docs[0], "1.33.0", strict=True)
    for doc in docs[1:]:
        assert k8s.crd_errors(validators, doc) == []
    assert parse_spec(yaml.safe_load(docs[0]["data"]["spec.yaml"])).name == spec.name
    runner = docs[1]["spec"]["job"]["spec"]["containers"][0]
    assert runner["args"][:2] == ["run", "/etc/gppscale/spec.yaml"]
    assert "cluster.address=$(DASK_SCHEDULER_ADDRESS)" in runner["args"]


def test_submit_refuses_a_spec_that_is_not_for_kubernetes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(tmp_path, mode="local")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json", by_alias=True, exclude_none=True)))
    assert cli.main(["submit", str(path), "--dry-run"]) == 2
    assert "cluster.mode is 'local'" in capsys.readouterr().err


def test_doctor_passes_locally_and_explains_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checks = {c.name: c for c in doctor_mod.run_checks(_spec(tmp_path, mode="local"))}
    assert all(c.ok for c in checks.values()), [c.line() for c in checks.values()]
    # A store under a regular file cannot be written; the fix is named.
    (tmp_path / "file").write_text("x")
    raw = _spec(tmp_path, mode="local").model_dump(mode="json", by_alias=True, exclude_none=True)
    raw["output"]["store"] = str(tmp_path / "file" / "run")
    bad = {c.name: c for c in doctor_mod.run_checks(parse_spec(raw))}
    assert not bad["store"].ok and "fix the credentials or output.store" in bad["store"].line()
    # No kubeconfig: the Kubernetes check fails with advice, the others still run.
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kube = {c.name: c for c in doctor_mod.run_checks(_spec(tmp_path))}
    assert not kube["kubernetes"].ok and "KUBECONFIG" in kube["kubernetes"].fix
    assert kube["store"].ok


def test_doctor_reports_an_unreachable_scheduler(tmp_path: Path) -> None:
    spec = _spec(tmp_path, mode="address", address="tcp://127.0.0.1:9")  # the discard port: nothing listens
    (check,) = [c for c in doctor_mod.run_checks(spec) if c.name == "scheduler"]
    assert not check.ok and "cannot reach the Dask scheduler" in check.detail


def test_kubernetes_mode_without_a_cluster_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gppscale.runner import dask_client

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    spec = _spec(tmp_path)
    with (
        pytest.raises(GppscaleError, match="cannot create the Dask cluster 'gppscale-luanhe-2020'"),
        dask_client(spec.cluster, spec),
    ):
        pass
