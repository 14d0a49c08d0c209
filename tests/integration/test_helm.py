"""The Helm chart deploy/helm/gppscale, rendered offline with the Helm SDK and checked against Kubernetes.

Built-in kinds are validated with kubernetes-validate (strict: unknown fields are errors). kubernetes-validate
skips custom kinds, so DaskJob/DaskWorkerGroup/DaskAutoscaler, and the DaskCluster, Pod, Deployment and
Service that the operator builds from them (with its own functions), are validated against the CRDs that
ship in dask-kubernetes, tightened so that a field the API server would silently prune is an error.
"""

from __future__ import annotations

import copy
import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gppscale.config import load_spec, parse_override, parse_spec
from gppscale.testing import k8s


def _require(module: str) -> Any:
    """Import a deployment-check dependency (dev extras), or skip this module with the reason."""
    try:
        return importlib.import_module(module)
    except Exception as e:  # ImportError, or helm_python's HelmLibraryError when its library won't load
        pytest.skip(
            f"{module} cannot be imported ({type(e).__name__}: {e}); pip install -e '.[dev]'",
            allow_module_level=True,
        )


helm = _require("helm_python")
kubernetes_validate = _require("kubernetes_validate")
jsonschema = _require("jsonschema")
dask_kubernetes_operator = _require("dask_kubernetes.operator")

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "gppscale"
KUBE_VERSION = "1.33.0"
RELEASE, NAMESPACE = "luanhe", "runs"
FULLNAME = f"{RELEASE}-gppscale"
ROLE_ARN = "arn:aws:iam::123456789012:role/gppscale-run"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
RUN_SPEC: dict[str, Any] = {
    "name": "luanhe-2020",
    "area": {"bbox": [117.0, 41.95, 117.37, 42.23]},
    "years": [2020],
    "catalog": {"url": "https://planetarycomputer.microsoft.com/api/stac/v1", "sign": "planetary-computer"},
    "purity": {"*": {"fraction": 0.3}, "MF": {"min_type_fraction": 0.8}},
    "output": {"store": "s3://my-gppscale-bucket/runs/luanhe-2020"},
    "cluster": {"mode": "kubernetes", "kubernetes": {"namespace": NAMESPACE, "gpu_workers": 1}},
}


@pytest.fixture(scope="module")
def chart() -> Iterator[Any]:
    helm.disable_logging()  # lint's `fail` notices would go to stderr
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def _values(*files: str, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in files:
        values.update(yaml.safe_load((CHART / name).read_text()))
    values["runSpec"] = copy.deepcopy(RUN_SPEC)
    values.update(extra)
    return values


def _render(chart: Any, values: dict[str, Any]) -> list[dict[str, Any]]:
    manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    return _docs(manifests)


def _docs(manifests: dict[str, str]) -> list[dict[str, Any]]:
    """The objects of rendered templates (NOTES.txt is text, not manifests)."""
    return [
        doc
        for path, text in manifests.items()
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


@pytest.fixture(scope="module")
def default_docs(chart: Any) -> list[dict[str, Any]]:
    return _render(chart, _values())


@pytest.fixture(scope="module")
def gpu_docs(chart: Any) -> list[dict[str, Any]]:
    annotations = {"eks.amazonaws.com/role-arn": ROLE_ARN}
    return _render(
        chart,
        _values(
            "values-gpu.yaml",
            serviceAccount={"annotations": annotations},
            autoscale={"enabled": True, "minimum": 2, "maximum": 8},
        ),
    )


def _pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every pod template in the rendered Dask objects, by role."""
    specs: dict[str, dict[str, Any]] = {}
    for doc in docs:
        if doc["kind"] == "DaskJob":
            specs["runner"] = doc["spec"]["job"]["spec"]
            specs["scheduler"] = doc["spec"]["cluster"]["spec"]["scheduler"]["spec"]
            specs["worker"] = doc["spec"]["cluster"]["spec"]["worker"]["spec"]
        elif doc["kind"] == "DaskWorkerGroup":
            specs[doc["metadata"]["name"]] = doc["spec"]["worker"]["spec"]
    return specs


# --- the CRDs shipped with dask-kubernetes -------------------------------------------------------------


@pytest.fixture(scope="module")
def crd_validators() -> dict[str, Any]:
    validators = k8s.crd_validators()
    assert {"DaskJob", "DaskCluster", "DaskWorkerGroup", "DaskAutoscaler"} <= set(validators)
    return validators


_crd_errors = k8s.crd_errors


def _operator_objects(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the operator creates from the rendered objects, built with the operator's own functions."""
    controller = _require("dask_kubernetes.operator.controller.controller")
    job = _one(docs, "DaskJob")
    name = job["metadata"]["name"]
    labels = dict(job["metadata"]["labels"])
    cluster_spec = job["spec"]["cluster"]["spec"]
    cluster = controller.build_cluster_spec(
        name, cluster_spec["worker"], cluster_spec["scheduler"], {}, labels
    )
    scheduler = cluster_spec["scheduler"]
    objects = [
        cluster,
        controller.build_default_worker_group_spec(name, cluster_spec["worker"], {}, labels),
        controller.build_job_pod_spec(name, name, NAMESPACE, job["spec"]["job"]["spec"], {}, labels),
        controller.build_scheduler_deployment_spec(name, scheduler["spec"], {}, labels),
        controller.build_scheduler_service_spec(name, scheduler["service"], {}, labels),
    ]
    groups = [(f"{name}-default", cluster_spec["worker"])]
    groups += [(g["metadata"]["name"], g["spec"]["worker"]) for g in docs if g["kind"] == "DaskWorkerGroup"]
    for group_name, worker in groups:
        objects.append(
            controller.build_worker_deployment_spec(
                group_name, NAMESPACE, name, "0123456789", worker["spec"], {}, labels
            )
        )
    return objects


# --- lint and render ------------------------------------------------------------------------------------


@pytest.mark.parametrize("files", [(), ("values-gpu.yaml",)], ids=["default", "gpu"])
def test_helm_lint_strict_has_no_errors(files: tuple[str, ...]) -> None:
    report = helm.lint(CHART, _values(*files), strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 warning, 3 error
    assert not problems, problems
    assert not report["errors"]


def test_default_render_objects(default_docs: list[dict[str, Any]]) -> None:
    kinds = sorted(d["kind"] for d in default_docs)
    assert kinds == ["ConfigMap", "DaskJob", "ServiceAccount"]  # no GPU group, no autoscaler
    job = _one(default_docs, "DaskJob")
    assert job["apiVersion"] == "kubernetes.dask.org/v1"
    assert job["metadata"]["name"] == FULLNAME
    assert job["spec"]["cluster"]["spec"]["worker"]["replicas"] == 4
    worker_args = job["spec"]["cluster"]["spec"]["worker"]["spec"]["containers"][0]["args"]
    assert worker_args[0] == "worker" and "--resources" not in worker_args


def test_notes_say_how_to_follow_the_run(chart: Any) -> None:
    manifests = chart.render(_values(), name=RELEASE, namespace=NAMESPACE)
    (notes,) = [text for path, text in manifests.items() if path.endswith("NOTES.txt")]
    assert f"logs -f pod/{FULLNAME}-runner" in notes
    assert RUN_SPEC["output"]["store"] in notes
    assert "serviceAccount.annotations is empty" in notes  # the default render has no cloud identity


def test_gpu_render_objects(gpu_docs: list[dict[str, Any]]) -> None:
    kinds = sorted(d["kind"] for d in gpu_docs)
    assert kinds == ["ConfigMap", "DaskAutoscaler", "DaskJob", "DaskWorkerGroup", "ServiceAccount"]
    autoscaler = _one(gpu_docs, "DaskAutoscaler")
    assert autoscaler["spec"] == {"cluster": FULLNAME, "minimum": 2, "maximum": 8}


@pytest.mark.parametrize("which", ["default_docs", "gpu_docs"])
def test_builtin_kinds_pass_kubernetes_validate_strict(which: str, request: pytest.FixtureRequest) -> None:
    docs = request.getfixturevalue(which)
    builtin = [d for d in docs if not d["apiVersion"].startswith("kubernetes.dask.org/")]
    assert {d["kind"] for d in builtin} == {"ConfigMap", "ServiceAccount"}
    for doc in builtin:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("which", ["default_docs", "gpu_docs"])
def test_operator_built_objects_pass_kubernetes_validate_strict(
    which: str, request: pytest.FixtureRequest
) -> None:
    """The runner Pod, scheduler Deployment/Service and worker Deployments the operator makes are valid."""
    objects = [
        o for o in _operator_objects(request.getfixturevalue(which)) if o["apiVersion"] in ("v1", "apps/v1")
    ]
    assert sorted(o["kind"] for o in objects).count("Deployment") >= 2
    for obj in objects:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("which", ["default_docs", "gpu_docs"])
def test_dask_objects_validate_against_the_operator_crds(
    which: str, request: pytest.FixtureRequest, crd_validators: dict[str, Any]
) -> None:
    docs = request.getfixturevalue(which)
    rendered = [d for d in docs if d["apiVersion"] == "kubernetes.dask.org/v1"]
    built = [o for o in _operator_objects(docs) if o["apiVersion"] == "kubernetes.dask.org/v1"]
    assert {o["kind"] for o in built} == {"DaskCluster", "DaskWorkerGroup"}
    errors = [e for obj in rendered + built for e in _crd_errors(crd_validators, obj)]
    assert not errors, errors


def test_tightened_crd_schema_catches_a_field_the_api_server_would_prune(
    default_docs: list[dict[str, Any]], crd_validators: dict[str, Any]
) -> None:
    job = copy.deepcopy(_one(default_docs, "DaskJob"))
    job["spec"]["cluster"]["spec"]["worker"]["spec"]["tolerationss"] = []
    job["spec"]["job"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = {"n": 2}
    errors = _crd_errors(crd_validators, job)
    assert any("tolerationss" in e for e in errors), errors
    assert any("limits/cpu" in e for e in errors), errors


# --- what the pods get ----------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["default_docs", "gpu_docs"])
def test_every_container_is_locked_down(which: str, request: pytest.FixtureRequest) -> None:
    specs = _pod_specs(request.getfixturevalue(which))
    assert {"runner", "scheduler", "worker"} <= set(specs)
    for role, spec in specs.items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0, role
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, role
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"] + spec.get("initContainers", []):
            where = f"{role}/{container['name']}"
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert isinstance(sc["runAsUser"], int) and sc["runAsUser"] > 0, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert container["resources"]["requests"] and container["resources"]["limits"], where
            # The writable places are emptyDirs: /tmp, and Dask's local directory.
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            env = {e["name"]: e.get("value") for e in container["env"]}
            for path in ("/tmp", env["DASK_TEMPORARY_DIRECTORY"]):
                assert "emptyDir" in volumes[mounts[path]], where


def test_gpu_worker_group(gpu_docs: list[dict[str, Any]]) -> None:
    group = _one(gpu_docs, "DaskWorkerGroup")
    job = _one(gpu_docs, "DaskJob")
    gpu_values = yaml.safe_load((CHART / "values-gpu.yaml").read_text())["gpu"]
    # The operator names a DaskJob's cluster after the DaskJob (daskjob_create_components).
    assert group["spec"]["cluster"] == job["metadata"]["name"] == FULLNAME
    assert group["metadata"]["name"] == f"{FULLNAME}-gpu"  # not the operator's own `<cluster>-default`
    worker = group["spec"]["worker"]
    assert worker["replicas"] == 1
    (container,) = worker["spec"]["containers"]
    gpus = container["resources"]["limits"]["nvidia.com/gpu"]
    assert gpus == "1" and isinstance(gpus, str)
    args = container["args"]
    i = args.index("--resources")
    assert args[i + 1] == "GPU=1"
    assert container["image"].endswith(":0.1.0-cuda")
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in worker["spec"][
        "tolerations"
    ]
    assert worker["spec"]["nodeSelector"] == gpu_values["nodeSelector"]
    # The CPU group keeps the CPU image and offers no GPU resource.
    cpu = job["spec"]["cluster"]["spec"]["worker"]["spec"]["containers"][0]
    assert "--resources" not in cpu["args"] and "nvidia.com/gpu" not in cpu["resources"]["limits"]
    assert cpu["image"].endswith(":0.1.0")


def test_service_account_identity(gpu_docs: list[dict[str, Any]]) -> None:
    account = _one(gpu_docs, "ServiceAccount")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": ROLE_ARN}
    assert account["automountServiceAccountToken"] is False
    for role, spec in _pod_specs(gpu_docs).items():
        assert spec["serviceAccountName"] == account["metadata"]["name"], role
        assert spec["automountServiceAccountToken"] is False, role


@pytest.mark.parametrize("which", ["default_docs", "gpu_docs"])
def test_no_static_credentials_anywhere(which: str, request: pytest.FixtureRequest) -> None:
    text = yaml.safe_dump_all(request.getfixturevalue(which))
    assert not re.search(r"AWS_(SECRET_)?ACCESS_KEY|AKIA[0-9A-Z]{16}|kind: Secret|secretKeyRef", text)


def _expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of `$(VAR)` in args: defined variables are replaced, `$$` escapes."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]) if m[1] else "$", arg)


def test_runner_reads_the_spec_from_the_configmap_and_reaches_the_scheduler(
    default_docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    config_map = _one(default_docs, "ConfigMap")
    text = config_map["data"]["spec.yaml"]
    assert yaml.safe_load(text) == RUN_SPEC
    spec = parse_spec(yaml.safe_load(text))
    assert spec.output.store == RUN_SPEC["output"]["store"]
    assert str(spec.catalog.url).rstrip("/") == RUN_SPEC["catalog"]["url"]

    # The runner pod as the operator creates it: it adds DASK_SCHEDULER_ADDRESS to the env.
    pod = next(o for o in _operator_objects(default_docs) if o["kind"] == "Pod")
    assert pod["metadata"]["name"] == f"{FULLNAME}-runner"
    (runner,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in runner["env"]}
    address = f"tcp://{FULLNAME}-scheduler.{NAMESPACE}.svc.cluster.local:8786"
    assert env["DASK_SCHEDULER_ADDRESS"] == address
    (spec_mount,) = [m for m in runner["volumeMounts"] if m["mountPath"] == "/etc/gppscale"]
    (spec_volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == spec_mount["name"]]
    assert spec_volume["configMap"]["name"] == config_map["metadata"]["name"]
    assert pod["spec"]["restartPolicy"] == "Never"

    # The image's ENTRYPOINT is `gppscale`; run its args through the CLI's own spec loading.
    args = [_expand(a, env) for a in runner["args"]]
    assert args[:2] == ["run", "/etc/gppscale/spec.yaml"]
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    (tmp_path / "spec.yaml").write_text(text)
    loaded = load_spec(tmp_path / "spec.yaml", overrides=dict(parse_override(s) for s in sets))
    assert loaded.cluster.mode == "address"
    assert loaded.cluster.address == address


def test_scheduler_serves_the_http_api(default_docs: list[dict[str, Any]]) -> None:
    import dask.config

    (scheduler,) = _pod_specs(default_docs)["scheduler"]["containers"]
    assert scheduler["command"] == ["dask"] and scheduler["args"][0] == "scheduler"
    env = {e["name"]: e["value"] for e in scheduler["env"] if e["name"].startswith("DASK_")}
    routes = dask.config.collect_env(env)["distributed"]["scheduler"]["http"]["routes"]
    assert "distributed.http.scheduler.api" in routes
    # Nothing of the defaults is lost (/health backs the probes, prometheus the metrics).
    assert set(dask.config.get("distributed.scheduler.http.routes")) <= set(routes)
    probe = scheduler["readinessProbe"]["httpGet"]
    assert probe["path"] == "/health"


def test_long_release_names_stay_valid_cluster_names(chart: Any) -> None:
    from dask_kubernetes.constants import VALID_CLUSTER_NAME

    release = "a-rather-long-release-name-for-a-basin-scale-run-2020"
    docs = _docs(chart.render(_values(gpu={"enabled": True}), name=release, namespace=NAMESPACE))
    name = _one(docs, "DaskJob")["metadata"]["name"]
    assert len(name) <= 40 and VALID_CLUSTER_NAME.match(name)
    assert len(f"{name}-default") <= 63 and len(_one(docs, "DaskWorkerGroup")["metadata"]["name"]) <= 63


# --- values.schema.json ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ({"worker": {"replicas": "two"}}, "/worker/replicas"),
        ({"gpu": {"enabled": "yes"}}, "/gpu/enabled"),
        ({"workers": {"replicas": 2}}, "workers"),
        ({"worker": {"replica": 2}}, "replica"),
        ({"job": {"restartPolicy": "Always"}}, "/job/restartPolicy"),
        ({"fullnameOverride": "Not_A_DNS_Label"}, "/fullnameOverride"),
    ],
)
def test_values_schema_rejects_bad_values(chart: Any, bad: dict[str, Any], where: str) -> None:
    values = _values(**bad)
    with pytest.raises(helm.HelmValuesError, match=re.escape(where)):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    report = helm.lint(CHART, values, strict=True)
    assert any(where in e for e in report["errors"]), report


def test_a_run_spec_is_required(chart: Any) -> None:
    with pytest.raises(helm.HelmRenderError, match="runSpec is empty"):
        chart.render({}, name=RELEASE, namespace=NAMESPACE)


def test_values_files_pass_the_schema_with_jsonschema_too() -> None:
    import json

    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    for name in ("values.yaml", "values-gpu.yaml"):
        assert not list(validator.iter_errors(yaml.safe_load((CHART / name).read_text()))), name
