"""The four networks and their training loop: learning, non-negative outputs, NaN handling, seeding."""

from __future__ import annotations

import doctest
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import gppscale.models
import gppscale.models.fit as fit_mod
import gppscale.models.nets as nets_mod
from gppscale.config import HyperParams
from gppscale.errors import NoDataError, SpecError
from gppscale.models import MODEL_KINDS, FitResult, build_model, fit_model, predict

T, F = 4, 6
# Per-kind settings that fit the synthetic functions in well under a second or two on 2 cores.
HYPER = {
    "bpnn": HyperParams(epochs=80, batch_size=32, learning_rate=1e-2, hidden=(32,), patience=15),
    "dnn": HyperParams(
        epochs=80, batch_size=32, learning_rate=5e-3, hidden=(32, 32), dropout=0.0, patience=15
    ),
    "cnn": HyperParams(
        epochs=80, batch_size=32, learning_rate=5e-3, hidden=(8, 32), dropout=0.0, patience=15
    ),
    "rnn": HyperParams(epochs=80, batch_size=32, learning_rate=1e-2, hidden=(32,), dropout=0.0, patience=15),
}


def softplus(v: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, v)


def make_data(n: int, seed: int, *, sequence: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Smooth, non-negative synthetic GPP in gC m-2 quarter-1 from F=6 features, like the real inputs.

    Features 0-3 are noise-free predictors on deliberately different scales and offsets (so that
    standardisation matters); features 4-5 are the sin/cos season features the feature stage appends,
    the same for every sample. y = 100 * softplus(a·z) * (seasonal factor from the season features);
    with ``sequence`` a term 60 * softplus(z0 of the previous quarter) is added, which no per-quarter
    model can see.
    """
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, T, F))
    angle = 2 * np.pi * (np.arange(T) + 0.5) / T
    z[..., 4], z[..., 5] = np.sin(angle), np.cos(angle)
    x = z * np.array([1, 5, 0.1, 20, 2, 1]) + np.array([0, 10, -5, 100, 0.5, 3])
    season = 1 + 0.6 * z[..., 4] - 0.3 * z[..., 5]
    y = 100 * softplus(z @ np.array([0.8, -0.5, 0.4, 0.3, 0, 0])) * season
    if sequence:
        previous = np.roll(z[..., 0], 1, axis=1)
        previous[:, 0] = 0.0
        y = y + 60 * softplus(previous)
    return x.astype(np.float32), y.astype(np.float32)


def r2(pred: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(y)
    return float(1 - np.sum((pred[ok] - y[ok]) ** 2) / np.sum((y[ok] - y[ok].mean()) ** 2))


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # These nets are tiny: one thread is as fast as two, and does not stall when other test runs
    # share the cores (intra-op threads spin-wait under oversubscription).
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def trained() -> dict[str, FitResult]:
    """One model per kind, each on its function (the RNN on the one with the neighbouring quarter)."""
    return {
        kind: fit_model(kind, *make_data(600, 0, sequence=kind == "rnn"), HYPER[kind]) for kind in MODEL_KINDS
    }


# --- learning ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_each_kind_learns_its_function(kind: str, trained: dict[str, FitResult]) -> None:
    x, y = make_data(300, 1, sequence=kind == "rnn")
    res = trained[kind]
    assert r2(predict(res.model, x), y) > 0.9
    assert 1 <= res.best_epoch <= res.epochs_run <= HYPER[kind].epochs
    assert res.best_val_loss < 0.01  # unit scale: MSE / y_scale**2
    assert res.device == "cpu" and res.train_seconds > 0 and res.samples_per_s > 0
    assert not res.model.training
    assert all(p.device.type == "cpu" for p in res.model.parameters())


def test_only_the_sequence_model_sees_neighbouring_quarters(trained: dict[str, FitResult]) -> None:
    x, y = make_data(300, 1, sequence=True)
    per_quarter = fit_model("dnn", *make_data(600, 0, sequence=True), HYPER["dnn"])
    assert r2(predict(trained["rnn"].model, x), y) > 0.98
    assert r2(predict(per_quarter.model, x), y) < 0.95


def test_nan_labels_are_masked_and_nan_features_read_as_mean() -> None:
    x, y = make_data(600, 0)
    rng = np.random.default_rng(5)
    y[rng.random(y.shape) < 0.3] = np.nan
    y[:20] = np.nan  # samples without any label
    x[rng.random(x.shape) < 0.03] = np.nan  # cloudy quarters
    res = fit_model("dnn", x, y, HYPER["dnn"])
    x_test, y_test = make_data(300, 1)
    assert r2(predict(res.model, x_test), y_test) > 0.9
    x_test[::3, 1, :] = np.nan
    out = predict(res.model, x_test)
    assert np.isfinite(out).all() and (out >= 0).all()
    assert all(torch.isfinite(v).all() for v in res.model.state_dict().values())


def test_statistics_come_from_training_samples_only() -> None:
    x, y = make_data(100, 0)
    val = np.zeros(100, dtype=bool)
    val[:30] = True
    x[:30, :, 0] = 1e6  # validation samples far off: must not move the mean
    x[30:, :, 2] = np.nan  # a feature with no training data at all: mean 0, std 1, no warning
    y[30:40] = 0.0
    res = fit_model("bpnn", x, y, HyperParams(epochs=1, hidden=(4,)), val_mask=val)
    mean, std = res.model.standardize.mean.numpy(), res.model.standardize.std.numpy()
    train_x = x[30:].reshape(-1, F)[:, [0, 1, 3]]
    np.testing.assert_allclose(mean[[0, 1, 3]], train_x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(std[[0, 1, 3]], train_x.std(axis=0), rtol=1e-5)
    assert (mean[2], std[2]) == (0.0, 1.0)
    assert float(res.model.y_scale) == pytest.approx(np.sqrt(np.mean(y[30:].astype(float) ** 2)), rel=1e-6)


# --- outputs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_outputs_are_never_negative_or_nan_for_extreme_inputs(
    kind: str, trained: dict[str, FitResult]
) -> None:
    x = np.zeros((7, T, F), dtype=np.float32)
    x[0] = 1e30
    x[1] = -1e30
    x[2] = np.inf
    x[3] = -np.inf
    x[4] = np.nan
    x[5, :, ::2] = np.finfo(np.float32).max
    x[6, :, 1::2] = np.nan
    out = predict(trained[kind].model, x)
    assert out.dtype == np.float32 and out.shape == (7, T)
    assert np.isfinite(out).all() and (out >= 0).all()


def test_a_large_negative_head_gives_zero_not_negative() -> None:
    model = build_model("dnn", F, HyperParams(hidden=(8,)))
    with torch.no_grad():
        model.head.bias.fill_(-1e4)
    out = predict(model, make_data(10, 0)[0])
    assert (out == 0).all() and not np.signbit(out).any()


def test_predict_batches_restores_mode_and_checks_shape(trained: dict[str, FitResult]) -> None:
    model = trained["cnn"].model
    x, _ = make_data(50, 3)
    model.train()
    np.testing.assert_allclose(predict(model, x, batch_size=7), predict(model, x), rtol=1e-6)
    assert model.training
    model.eval()
    assert predict(model, x[:0]).shape == (0, T)
    with pytest.raises(SpecError, match=r"expected \(n, T, 6\)"):
        predict(model, x[..., :5])
    with pytest.raises(SpecError, match="batch_size"):
        predict(model, x, batch_size=0)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_forward_shape_and_state_dict_holds_statistics(kind: str) -> None:
    model = build_model(kind, F, HyperParams(hidden=(8, 8), dropout=0.2))
    assert model(torch.zeros(3, T, F)).shape == (3, T)
    names = set(model.state_dict())
    assert {"standardize.mean", "standardize.std", "y_scale"} <= names


def test_rnn_is_bidirectional_and_stacked() -> None:
    gru = build_model("rnn", F, HyperParams(hidden=(8, 8, 8), dropout=0.2)).body.gru  # type: ignore[union-attr]
    assert gru.bidirectional and gru.num_layers == 3 and gru.hidden_size == 8 and gru.dropout == 0.2


# --- reproducibility and early stopping -------------------------------------------------------------


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_seeded_training_is_reproducible(kind: str) -> None:
    x, y = make_data(120, 0)
    hyper = HyperParams(epochs=3, batch_size=16, hidden=(8, 8), dropout=0.3, seed=7)
    a = fit_model(kind, x, y, hyper).model.state_dict()
    b = fit_model(kind, x, y, hyper).model.state_dict()
    c = fit_model(kind, x, y, hyper.model_copy(update={"seed": 8})).model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_early_stopping_restores_the_best_weights() -> None:
    rng = np.random.default_rng(0)
    x, _ = make_data(300, 0)
    y = rng.uniform(0, 1000, size=(300, T)).astype(np.float32)  # labels unrelated to x: val stalls
    val = np.zeros(300, dtype=bool)
    val[::4] = True
    lines: list[str] = []
    hyper = HyperParams(
        epochs=300, batch_size=16, learning_rate=1e-2, hidden=(64, 64), dropout=0.0, patience=4
    )
    res = fit_model("dnn", x, y, hyper, val_mask=val, progress=lines.append)
    assert res.epochs_run < hyper.epochs
    assert res.epochs_run == res.best_epoch + hyper.patience
    scale = float(res.model.y_scale)
    val_loss = np.mean(((predict(res.model, x[val]) - y[val]) / scale).astype(np.float64) ** 2)
    assert val_loss == pytest.approx(res.best_val_loss, rel=1e-4)
    last_val = float(lines[-1].split(" val ")[1].split()[0])
    assert last_val > val_loss  # the last epoch's weights were worse, and were not kept
    assert lines[-1].startswith(f"dnn: epoch {res.epochs_run}/300") and "stopping early" in lines[-1]


def test_progress_every_ten_epochs() -> None:
    x, y = make_data(50, 0)
    lines: list[str] = []
    fit_model("bpnn", x, y, HyperParams(epochs=25, hidden=(4,), patience=100), progress=lines.append)
    assert [line.split()[2] for line in lines] == ["10/25", "20/25", "25/25"]


def test_validation_without_labels_monitors_training_loss() -> None:
    x, y = make_data(100, 0)
    val = np.zeros(100, dtype=bool)
    val[:10] = True
    y[:10] = np.nan
    res = fit_model("bpnn", x, y, HyperParams(epochs=3, hidden=(4,)), val_mask=val)
    assert np.isfinite(res.best_val_loss) and res.best_epoch >= 1


def test_default_validation_split_is_seeded_fifteen_percent() -> None:
    val = fit_mod._resolve_val_mask(None, 200, 3)
    assert val.sum() == 30
    np.testing.assert_array_equal(val, fit_mod._resolve_val_mask(None, 200, 3))
    assert fit_mod._resolve_val_mask(None, 2, 0).sum() == 1
    assert fit_mod._resolve_val_mask(None, 1, 0).sum() == 0


def test_a_single_sample_trains_without_validation() -> None:
    x, y = make_data(1, 0)
    res = fit_model("dnn", x, y, HyperParams(epochs=2, hidden=(4,)))
    assert res.epochs_run == 2


# --- input checks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x_shape", "y_shape", "match"),
    [
        ((10, T), (10, T), r"expected \(n samples, T quarters, F features\)"),
        ((10, T, F), (10, T + 1), r"y must be \(n, T\) = \(10, 4\)"),
        ((10, T, 0), (10, T), "at least one quarter and one feature"),
    ],
)
def test_bad_shapes_raise_spec_error(x_shape: tuple[int, ...], y_shape: tuple[int, ...], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        fit_model("dnn", np.zeros(x_shape, np.float32), np.zeros(y_shape, np.float32), HyperParams())


def test_bad_val_mask_raises_spec_error() -> None:
    x, y = make_data(10, 0)
    with pytest.raises(SpecError, match=r"boolean \(10,\) array"):
        fit_model("dnn", x, y, HyperParams(), val_mask=np.zeros(10, dtype=int))
    with pytest.raises(SpecError, match=r"boolean \(10,\) array"):
        fit_model("dnn", x, y, HyperParams(), val_mask=np.zeros(9, dtype=bool))


def test_no_training_label_raises_no_data_error() -> None:
    x, y = make_data(10, 0)
    with pytest.raises(NoDataError, match="no training sample has a finite label"):
        fit_model("dnn", x, np.full_like(y, np.nan), HyperParams())
    with pytest.raises(NoDataError, match="0 training samples, 10 validation"):
        fit_model("dnn", x, y, HyperParams(), val_mask=np.ones(10, dtype=bool))


def test_unknown_kind_raises_spec_error() -> None:
    x, y = make_data(10, 0)
    with pytest.raises(SpecError, match="unknown model kind 'lstm'; use one of dnn, cnn, bpnn, rnn"):
        fit_model("lstm", x, y, HyperParams())
    with pytest.raises(SpecError, match="at least one feature"):
        build_model("dnn", 0, HyperParams())


def test_standardize_rejects_wrong_statistics_shape() -> None:
    with pytest.raises(SpecError, match=r"expected \(3,\)"):
        nets_mod.Standardize(3).set_stats(np.zeros(2), np.ones(2))


def test_y_scale_must_be_positive() -> None:
    with pytest.raises(SpecError, match="y_scale"):
        build_model("dnn", F, HyperParams()).set_y_scale(0.0)


# --- docs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [gppscale.models, nets_mod, fit_mod], ids=lambda m: m.__name__)
def test_doctests(module: object) -> None:
    assert doctest.testmod(module).failed == 0  # type: ignore[arg-type]
