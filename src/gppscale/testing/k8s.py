"""Offline checks of Kubernetes objects against the dask-kubernetes operator's CRDs (for tests).

Example:
    >>> validators = crd_validators()  # doctest: +SKIP
    >>> crd_errors(validators, {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskJob"})  # doctest: +SKIP
    ["DaskJob : 'metadata' is a required property", ...]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["crd_dir", "crd_errors", "crd_validators", "tighten"]

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def crd_dir() -> Path:
    """The CRD folder of the operator chart shipped inside the ``dask-kubernetes`` wheel."""
    from dask_kubernetes import operator

    return Path(operator.__file__).parent / "deployment" / "helm" / "dask-kubernetes-operator" / "crds"


def tighten(schema: Any) -> Any:  # noqa: ANN401 - any JSON schema node
    """The CRD schema with ``additionalProperties: false`` wherever the API server would prune fields.

    A structural CRD schema does not reject unknown fields: the API server drops them silently, so a typo
    (``tolerationss``) would vanish. Objects that list ``properties`` and neither allow extra properties
    nor preserve unknown fields are closed here, which turns such a typo into a validation error.
    """
    if isinstance(schema, list):
        return [tighten(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    tightened = {key: tighten(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        tightened["additionalProperties"] = False
    return tightened


def crd_validators() -> dict[str, Any]:
    """A JSON Schema validator per operator kind (DaskCluster, DaskJob, DaskWorkerGroup, DaskAutoscaler)."""
    import jsonschema

    validators = {}
    for path in sorted(crd_dir().glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=_LOADER)  # a safe loader (C or Python)
        (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
        schema = tighten(version["schema"]["openAPIV3Schema"])
        schema["properties"].setdefault("apiVersion", {"const": f"{crd['spec']['group']}/v1"})
        schema["properties"].setdefault("kind", {"const": crd["spec"]["names"]["kind"]})
        schema["properties"].setdefault("metadata", {"type": "object"})
        schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
        validators[crd["spec"]["names"]["kind"]] = jsonschema.Draft7Validator(schema)
    return validators


def crd_errors(validators: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    """The validation errors of one operator object (empty when valid)."""
    return [
        f"{obj['kind']} {'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validators[obj["kind"]].iter_errors(obj)
    ]
