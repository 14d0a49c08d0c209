"""Checkpoints: safetensors + JSON round trip bit-identical, and every kind of damage refused."""

from __future__ import annotations

import doctest
import hashlib
import json
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

import gppscale.models.checkpoint as ckpt_mod
from gppscale.config import HyperParams
from gppscale.errors import CheckpointError, SpecError
from gppscale.models import (
    CHECKPOINT_FORMAT,
    MODEL_KINDS,
    Regressor,
    fit_model,
    from_bytes,
    predict,
    to_bytes,
)

T, F = 4, 5
FEATURES = ["red", "nir", "swir1", "tmean", "season_sin"]


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, T, F)).astype(np.float32) * 3 + 1
    y = (100 * np.logaddexp(0, x[..., 0] - 0.5 * x[..., 1])).astype(np.float32)
    return x, y


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # These nets are tiny: one thread is as fast as two, and does not stall when other test runs
    # share the cores (intra-op threads spin-wait under oversubscription).
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module", params=MODEL_KINDS)
def saved(request: pytest.FixtureRequest) -> tuple[Regressor, bytes, dict[str, Any]]:
    hyper = HyperParams(epochs=3, batch_size=32, hidden=(8, 8), dropout=0.1)
    model = fit_model(request.param, *data(80, 0), hyper).model
    meta = {"features": FEATURES, "forest_type": "ENF", "target": "gpp", "metrics": {"r2": 0.5}}
    weights, full = to_bytes(model, meta)
    return model, weights, full


def test_round_trip_is_bit_identical(saved: tuple[Regressor, bytes, dict[str, Any]]) -> None:
    model, weights, meta = saved
    x, _ = data(64, 1)
    x[0, 0, 0] = np.nan
    loaded = from_bytes(weights, json.loads(json.dumps(meta)))
    assert not loaded.training
    np.testing.assert_array_equal(predict(loaded, x), predict(model, x))
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name


def test_metadata_is_completed_and_keeps_the_callers_keys(
    saved: tuple[Regressor, bytes, dict[str, Any]],
) -> None:
    model, weights, meta = saved
    assert meta["format"] == CHECKPOINT_FORMAT
    assert (meta["kind"], meta["n_features"]) == (model.kind, F)
    assert meta["hyper"] == {**model.hyper.model_dump(), "hidden": [8, 8]}
    assert meta["sha256"] == hashlib.sha256(weights).hexdigest()
    assert meta["tensors"] == {k: list(v.shape) for k, v in model.state_dict().items()}
    assert meta["tensors"]["y_scale"] == []
    assert meta["torch"] == torch.__version__ and isinstance(meta["gppscale"], str)
    assert (meta["features"], meta["forest_type"], meta["metrics"]) == (FEATURES, "ENF", {"r2": 0.5})


def test_weights_are_plain_safetensors(saved: tuple[Regressor, bytes, dict[str, Any]]) -> None:
    _, weights, _ = saved
    (header_len,) = struct.unpack("<Q", weights[:8])
    header = json.loads(weights[8 : 8 + header_len])
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {"F32"}


def test_loading_never_unpickles(
    saved: tuple[Regressor, bytes, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load must not be called")

    monkeypatch.setattr(torch, "load", refuse)
    _, weights, meta = saved
    from_bytes(weights, meta)


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.mark.parametrize("where", ["header", "middle", "last"])
def test_a_flipped_byte_is_refused(saved: tuple[Regressor, bytes, dict[str, Any]], where: str) -> None:
    _, weights, meta = saved
    at = {"header": 10, "middle": len(weights) // 2, "last": len(weights) - 1}[where]
    with pytest.raises(CheckpointError, match="changed or truncated"):
        from_bytes(flip(weights, at), meta)


def test_truncated_weights_are_refused(saved: tuple[Regressor, bytes, dict[str, Any]]) -> None:
    _, weights, meta = saved
    with pytest.raises(CheckpointError, match="changed or truncated"):
        from_bytes(weights[:-4], meta)
    # Even with a matching digest (a careless re-hash), truncated bytes do not parse.
    short = weights[: len(weights) // 2]
    with pytest.raises(CheckpointError, match="not valid safetensors"):
        from_bytes(short, {**meta, "sha256": hashlib.sha256(short).hexdigest()})


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            {"n_features": F + 1, "features": [*FEATURES, "extra"]},
            r"'standardize\.mean' has shape \[5\], .* expects \[6\]",
        ),
        ({"kind": "svm"}, "does not describe a model"),
        ({"hyper": {"hidden": [16, 16]}}, "has shape"),
        ({"format": "gppscale-checkpoint/0"}, "format is 'gppscale-checkpoint/0'"),
        ({"features": FEATURES[:2]}, "lists features"),
        ({"tensors": {"y_scale": []}}, "not part of the metadata's 'tensors'"),
        ({"tensors": {"y_scale": 3}}, r"'y_scale' has shape \[\], but the metadata's 'tensors' expects 3"),
    ],
)
def test_metadata_that_does_not_match_is_refused(
    saved: tuple[Regressor, bytes, dict[str, Any]], change: dict[str, Any], match: str
) -> None:
    _, weights, meta = saved
    bad = {**meta, **change}
    if "hyper" in change:
        bad["hyper"] = {**meta["hyper"], **change["hyper"]}
    with pytest.raises(CheckpointError, match=match):
        from_bytes(weights, bad)


@pytest.mark.parametrize("hidden", [[8, 8, 8], [8, 4]])
def test_hidden_widths_are_checked_where_the_kind_uses_them(
    saved: tuple[Regressor, bytes, dict[str, Any]], hidden: list[int]
) -> None:
    model, weights, meta = saved
    bad = {**meta, "hyper": {**meta["hyper"], "hidden": hidden}}
    # bpnn uses hidden[0] only, cnn hidden[0] and hidden[-1], rnn hidden[0] and len(hidden): another
    # `hidden` that builds the same tensors describes the same network and loads.
    same = {"bpnn": True, "cnn": hidden == [8, 8, 8], "rnn": hidden == [8, 4], "dnn": False}[model.kind]
    if same:
        x, _ = data(8, 2)
        np.testing.assert_array_equal(predict(from_bytes(weights, bad), x), predict(model, x))
    else:
        with pytest.raises(
            CheckpointError, match=r"checkpoint (tensor .* has shape|lacks tensor)|not part of"
        ):
            from_bytes(weights, bad)


def test_another_kind_is_refused(saved: tuple[Regressor, bytes, dict[str, Any]]) -> None:
    model, weights, meta = saved
    other = next(k for k in MODEL_KINDS if k != model.kind)
    with pytest.raises(CheckpointError, match=r"checkpoint (tensor|lacks tensor)"):
        from_bytes(weights, {**meta, "kind": other})


def test_missing_metadata_keys_are_refused(saved: tuple[Regressor, bytes, dict[str, Any]]) -> None:
    _, weights, meta = saved
    with pytest.raises(CheckpointError, match="lacks sha256, tensors"):
        from_bytes(weights, {k: v for k, v in meta.items() if k not in ("sha256", "tensors")})


def test_to_bytes_checks_features_and_json(saved: tuple[Regressor, bytes, dict[str, Any]]) -> None:
    model, _, _ = saved
    with pytest.raises(SpecError, match="list of the 5 feature names"):
        to_bytes(model, {"features": FEATURES[:4]})
    with pytest.raises(SpecError, match="list of the 5 feature names"):
        to_bytes(model, {"target": "gpp"})
    with pytest.raises(SpecError, match="not JSON-serialisable"):
        to_bytes(model, {"features": FEATURES, "metrics": {"r2": object()}})


def test_doctests() -> None:
    assert doctest.testmod(ckpt_mod).failed == 0
