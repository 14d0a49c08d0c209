"""Checkpoints of trained networks: safetensors weights plus JSON metadata, never pickle.

:func:`to_bytes` turns a :class:`~gppscale.models.nets.Regressor` into safetensors bytes (its state
dict: weights, standardisation statistics, ``y_scale``) and a JSON-ready metadata dict;
:func:`from_bytes` checks both and rebuilds the network. Loading never runs code from the checkpoint:
safetensors holds only tensors, and the architecture is rebuilt from ``kind``, ``n_features`` and
``hyper`` in the metadata. The ``sha256`` of the weight bytes catches truncation and accidental or
careless edits; it is not a signature (whoever can rewrite both files can forge it).

Metadata keys set here: ``format`` (:data:`CHECKPOINT_FORMAT`), ``kind``, ``n_features``, ``hyper``,
``sha256``, ``tensors`` (name → shape), ``torch`` and ``gppscale`` versions. Every other key of the
caller's ``meta`` (``features`` - required, one name per feature in input order -, ``forest_type``,
``target``, ``metrics`` ...) is kept as given.

Example:
    >>> import numpy as np
    >>> from gppscale.config import HyperParams
    >>> from gppscale.models.fit import predict
    >>> from gppscale.models.nets import build_model
    >>> model = build_model("dnn", 2, HyperParams(hidden=(4,)))
    >>> weights, meta = to_bytes(model, {"features": ["ndvi", "tmean"], "target": "gpp"})
    >>> meta["format"], meta["kind"], meta["tensors"]["head.weight"]
    ('gppscale-checkpoint/1', 'dnn', [1, 4])
    >>> x = np.ones((3, 4, 2), dtype=np.float32)
    >>> bool((predict(from_bytes(weights, meta), x) == predict(model, x)).all())
    True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

import pydantic
import safetensors
import safetensors.torch
import torch

import gppscale
from gppscale.config import HyperParams
from gppscale.errors import CheckpointError, GppscaleError, SpecError
from gppscale.models.nets import Regressor, build_model

__all__ = ["CHECKPOINT_FORMAT", "from_bytes", "to_bytes"]

CHECKPOINT_FORMAT: Final = "gppscale-checkpoint/1"
"""The ``format`` value of checkpoints this version writes and reads."""

_RETRAIN = "retrain the model to write a fresh checkpoint"


def to_bytes(model: Regressor, meta: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """Serialise ``model``: safetensors bytes of its state dict, and the completed metadata.

    The metadata is returned as it will read back from JSON (tuples become lists). Keys this function
    sets (see the module docstring) replace any the caller passed.

    Raises:
        SpecError: If ``meta["features"]`` is missing or does not list ``model.n_features`` names, or
            ``meta`` is not JSON-serialisable.
    """
    features = meta.get("features")
    if not isinstance(features, list | tuple) or len(features) != model.n_features:
        raise SpecError(
            f"checkpoint meta 'features' is {features!r}; give a list of the {model.n_features} feature "
            f"names the {model.kind} model was trained on, in input order"
        )
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    weights: bytes = safetensors.torch.save(state)
    out = {
        **meta,
        "format": CHECKPOINT_FORMAT,
        "kind": model.kind,
        "n_features": model.n_features,
        "hyper": model.hyper.model_dump(mode="json"),
        "sha256": hashlib.sha256(weights).hexdigest(),
        "tensors": {k: list(v.shape) for k, v in state.items()},
        "torch": torch.__version__,
        "gppscale": gppscale.__version__,
    }
    try:
        return weights, json.loads(json.dumps(out))
    except (TypeError, ValueError) as e:
        raise SpecError(
            f"checkpoint meta is not JSON-serialisable ({e}); pass plain str/number/list/dict"
        ) from e


def from_bytes(weights: bytes, meta: Mapping[str, Any]) -> Regressor:
    """Rebuild the network stored by :func:`to_bytes`, in eval mode on the CPU.

    Checks, in order: ``format``; the ``sha256`` of ``weights``; that the bytes parse as safetensors;
    that their tensors are those ``meta["tensors"]`` lists; that ``kind``, ``n_features`` and ``hyper``
    rebuild a network with exactly these tensor names, shapes and dtypes. Then loads with
    ``strict=True``. Never unpickles.

    Raises:
        CheckpointError: If any check fails; the message names the key or tensor.
    """
    _check_format(meta)
    digest = hashlib.sha256(weights).hexdigest()
    if digest != meta["sha256"]:
        raise CheckpointError(
            f"checkpoint weights have sha256 {digest} but the metadata records {meta['sha256']!r}: "
            f"the checkpoint was changed or truncated after it was written; {_RETRAIN}"
        )
    try:
        state: dict[str, torch.Tensor] = safetensors.torch.load(weights)
    except safetensors.SafetensorError as e:
        raise CheckpointError(f"checkpoint weights are not valid safetensors ({e}); {_RETRAIN}") from e
    _check_shapes({k: list(v.shape) for k, v in state.items()}, meta["tensors"], "the metadata's 'tensors'")
    model = _rebuild(meta)
    expected = model.state_dict()
    _check_shapes(
        {k: list(v.shape) for k, v in state.items()},
        {k: list(v.shape) for k, v in expected.items()},
        f"the {meta['kind']!r} model of n_features={meta['n_features']!r}, hyper={meta['hyper']!r}",
    )
    for name, tensor in state.items():
        if tensor.dtype != expected[name].dtype:
            raise CheckpointError(
                f"checkpoint tensor {name!r} has dtype {tensor.dtype}, expected {expected[name].dtype}; "
                f"{_RETRAIN}"
            )
    model.load_state_dict(state, strict=True)
    return model.eval()


def _check_format(meta: Mapping[str, Any]) -> None:
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint metadata format is {meta.get('format')!r}, this gppscale reads "
            f"{CHECKPOINT_FORMAT!r}; {_RETRAIN}"
        )
    missing = [k for k in ("kind", "n_features", "hyper", "sha256", "tensors") if k not in meta]
    if missing:
        raise CheckpointError(f"checkpoint metadata lacks {', '.join(missing)}; {_RETRAIN}")
    if not isinstance(meta["tensors"], Mapping):
        raise CheckpointError(
            f"checkpoint metadata 'tensors' is {meta['tensors']!r}, not a mapping; {_RETRAIN}"
        )


def _rebuild(meta: Mapping[str, Any]) -> Regressor:
    features = meta.get("features")
    n_features = meta["n_features"]
    if features is not None and (not isinstance(features, list) or len(features) != n_features):
        raise CheckpointError(
            f"checkpoint metadata lists features {features!r} for n_features={n_features!r}; {_RETRAIN}"
        )
    try:
        return build_model(meta["kind"], n_features, HyperParams(**meta["hyper"]))
    except (GppscaleError, pydantic.ValidationError, TypeError) as e:
        raise CheckpointError(
            f"checkpoint metadata kind={meta['kind']!r}, n_features={n_features!r}, "
            f"hyper={meta['hyper']!r} does not describe a model ({e}); {_RETRAIN}"
        ) from e


def _check_shapes(got: Mapping[str, list[int]], expected: Mapping[str, Any], what: str) -> None:
    # The expected order (a state dict's: standardisation first) names the most telling tensor first.
    for name in [*expected, *(k for k in got if k not in expected)]:
        if name not in expected:
            raise CheckpointError(f"checkpoint tensor {name!r} is not part of {what}; {_RETRAIN}")
        if name not in got:
            raise CheckpointError(f"checkpoint lacks tensor {name!r} of {what}; {_RETRAIN}")
        shape = expected[name]
        if not isinstance(shape, list | tuple) or list(shape) != got[name]:
            raise CheckpointError(
                f"checkpoint tensor {name!r} has shape {got[name]}, but {what} expects {shape!r}; {_RETRAIN}"
            )
