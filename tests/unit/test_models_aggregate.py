"""Aggregate-aware training (issue 11): a class-conditioned 30 m network fitted to coarse-cell means."""

from __future__ import annotations

import doctest
from collections.abc import Iterator

import numpy as np
import pytest
import scipy.sparse
import torch

from gppscale.config import HyperParams
from gppscale.errors import NoDataError, SpecError
from gppscale.models import aggregate as aggregate_mod
from gppscale.models.aggregate import (
    Bags,
    WithClass,
    aggregate_predictions,
    fit_aggregate,
    one_hot_features,
    pixel_predictions,
)
from gppscale.models.checkpoint import from_bytes, to_bytes
from gppscale.models.fit import _feature_range, _feature_stats
from gppscale.models.nets import MODEL_KINDS, build_model

# The known pixel-level truth: the same linear map of the features in every quarter (bpnn, dnn and cnn
# share their weights across quarters) plus a class offset; well above 0 so the softplus head is linear.
INTERCEPT, SLOPES, CLASS_OFFSET = 110.0, np.array([15.0, -8.0]), np.array([0.0, 40.0])


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # These nets are tiny: on a busy 2-core machine torch's intra-op threads cost ~100x the maths
    # (12 ms vs 0.03 ms for a 400-row Linear), so run single-threaded and restore the setting after.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def true_f(x: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return (INTERCEPT + x @ SLOPES + CLASS_OFFSET[classes][:, None]).astype(np.float32)


def make_bags(n_cells: int, seed: int, *, missing: float = 0.0) -> tuple[Bags, np.ndarray]:
    """Cells of 6-20 pixels with Dirichlet area weights; ~30 % of cells also hold their neighbour's last
    pixel. Features = a cell-level signal + pixel noise; each cell has its own class mix. Labels are the
    exact weighted means of ``true_f``, with a share ``missing`` of them NaN."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(6, 21, n_cells)
    owner = np.repeat(np.arange(n_cells), sizes)
    n_px = owner.size
    x = (rng.normal(size=(n_cells, 2, 2))[owner] + 0.5 * rng.normal(size=(n_px, 2, 2))).astype(np.float32)
    classes = (rng.uniform(size=n_px) < rng.uniform(size=n_cells)[owner]).astype(np.int64)
    last_pixel = np.cumsum(sizes) - 1
    sharing = np.flatnonzero(rng.uniform(size=n_cells) < 0.3)
    sharing = sharing[sharing > 0]
    rows = np.concatenate([owner, sharing])
    cols = np.concatenate([np.arange(n_px), last_pixel[sharing - 1]])
    order = np.argsort(rows, kind="stable")
    rows, cols = rows[order], cols[order]
    counts = np.bincount(rows, minlength=n_cells)
    weights = np.concatenate([rng.dirichlet(np.full(c, 2.0)) for c in counts])
    w = scipy.sparse.csr_matrix((weights, (rows, cols)), shape=(n_cells, n_px))
    f = true_f(x, classes)
    labels = (w @ f / np.asarray(w.sum(axis=1))).astype(np.float32)
    labels[rng.uniform(size=labels.shape) < missing] = np.nan
    return Bags(x, classes, w, labels, n_classes=2), f


def r2(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(1 - ((pred - truth) ** 2).sum() / ((truth - truth.mean()) ** 2).sum())


def test_doctests() -> None:
    assert doctest.testmod(aggregate_mod, optionflags=doctest.ELLIPSIS).failed == 0


@pytest.mark.parametrize("kind", ["bpnn", "dnn"])
def test_recovers_known_linear_pixel_function(kind: str) -> None:
    """Acceptance (issue 11): exact weights and a known linear f; aggregate training recovers f."""
    bags, _ = make_bags(1500, seed=0, missing=0.05)
    test, f_test = make_bags(300, seed=1)  # cells and pixels never seen in training
    hyper = HyperParams(epochs=30, batch_size=32, learning_rate=0.01, hidden=(16,), dropout=0.0, seed=0)
    res = fit_aggregate(kind, bags, hyper)

    pred = pixel_predictions(res.model, test.x, test.classes, 2)
    scores = [r2(pred[:, t], f_test[:, t]) for t in range(2)]
    assert min(scores) > 0.95, scores
    cells = aggregate_predictions(res.model, test)
    rel_rmse = np.sqrt(np.mean((cells - test.labels) ** 2) / np.mean(test.labels**2))
    assert rel_rmse < 0.02
    # Sub-cell detail is real: "coarse value everywhere" explains only about half the pixel variance.
    main_cell = np.asarray(test.weights.argmax(axis=0)).ravel()
    baseline = [r2(test.labels[main_cell, t], f_test[:, t]) for t in range(2)]
    assert max(baseline) < 0.7 < min(scores)


def test_aggregate_predictions_match_dense_weighted_means() -> None:
    bags, _ = make_bags(40, seed=3)
    empty = scipy.sparse.vstack([bags.weights, scipy.sparse.csr_matrix((1, bags.n_px))]).tocsr()
    bags = Bags(bags.x, bags.classes, empty, np.vstack([bags.labels, [[1.0, 1.0]]]), 2)
    torch.manual_seed(0)
    model = build_model("dnn", 4, HyperParams(hidden=(8,)))
    pixels = pixel_predictions(model, bags.x, bags.classes, 2, batch_size=7)
    dense = bags.weights.toarray()[:-1]
    expected = dense @ pixels / dense.sum(axis=1, keepdims=True)
    got = aggregate_predictions(model, bags, batch_cells=6)
    np.testing.assert_allclose(got[:-1], expected, rtol=1e-5)
    assert np.isnan(got[-1]).all()  # a cell without pixels


def test_with_class_equals_pixel_predictions() -> None:
    torch.manual_seed(1)
    model = build_model("rnn", 3 + 4, HyperParams(hidden=(8,)))
    x = np.random.default_rng(2).normal(size=(30, 5, 3)).astype(np.float32)
    x[0, 1, 2] = np.nan
    for c in range(4):
        with torch.inference_mode():
            wrapped = WithClass(model, c, 4).eval()(torch.from_numpy(x)).numpy()
        expected = pixel_predictions(model, x, np.full(30, c), 4)
        np.testing.assert_allclose(wrapped, expected, rtol=1e-6)
    assert WithClass(model, 0, 4).n_features == 3


def test_class_stats_match_the_one_hot_columns() -> None:
    classes = np.array([2, 0, 2, 2, 0])
    x = one_hot_features(np.zeros((5, 3, 1), np.float32), classes, 4)[..., 1:]
    expected = (*_feature_stats(x), *_feature_range(x))
    for got, want in zip(aggregate_mod._class_stats(classes, 4), expected, strict=True):
        np.testing.assert_allclose(got, want)


def _tiny() -> dict[str, object]:
    return {
        "x": np.zeros((3, 2, 1), np.float32),
        "classes": np.array([0, 1, 1]),
        "weights": scipy.sparse.csr_matrix([[1.0, 1.0, 0.0], [0.0, 0.5, 0.5]]),
        "labels": np.ones((2, 2), np.float32),
        "n_classes": 2,
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x": np.zeros((3, 2), np.float32)}, "x has shape"),
        ({"classes": np.array([0, 1])}, "classes has dtype int64 and shape"),
        ({"classes": np.array([0.0, 1.0, 1.0])}, "classes has dtype float64"),
        ({"classes": np.array([0, 2, 1])}, "class index 2 is outside"),
        ({"n_classes": 0}, "n_classes 0 must be a positive integer"),
        ({"weights": scipy.sparse.csr_matrix(np.ones((2, 4)))}, "x has 3 pixels"),
        ({"weights": np.ones((2, 3))}, "pass a scipy.sparse matrix"),
        ({"weights": scipy.sparse.csr_matrix([[1.0, -1.0, 0.0], [0, 1, 1]])}, "weight -1.0 is not"),
        ({"labels": np.ones((3, 2), np.float32)}, r"expected \(n_cells, T\) = \(2, 2\)"),
    ],
)
def test_bags_reject_mismatches(change: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        Bags(**{**_tiny(), **change})  # type: ignore[arg-type]


def test_no_label_and_bad_arguments() -> None:
    hyper = HyperParams(epochs=1, hidden=(4,))
    unlabelled = Bags(**{**_tiny(), "labels": np.full((2, 2), np.nan, np.float32)})  # type: ignore[arg-type]
    with pytest.raises(NoDataError, match="no training cell has pixels and a finite label"):
        fit_aggregate("bpnn", unlabelled, hyper)
    bags = Bags(**_tiny())  # type: ignore[arg-type]
    with pytest.raises(NoDataError):
        fit_aggregate("bpnn", bags, hyper, val_cells=np.array([True, True]))
    with pytest.raises(SpecError, match="val_cells has dtype int64"):
        fit_aggregate("bpnn", bags, hyper, val_cells=np.array([0, 1]))  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="unknown model kind"):
        fit_aggregate("svm", bags, hyper)
    narrow = build_model("bpnn", 2, HyperParams(hidden=(4,)))
    with pytest.raises(SpecError, match="takes 2 features but the pixels have 1 plus 2 classes"):
        aggregate_predictions(narrow, bags)
    with pytest.raises(SpecError, match="no more than n_classes=2"):
        WithClass(narrow, 0, 2)
    with pytest.raises(SpecError, match="class index 3 is outside"):
        WithClass(build_model("bpnn", 3, HyperParams(hidden=(4,))), 3, 2)


def test_seeded_fits_are_identical() -> None:
    bags, _ = make_bags(60, seed=4, missing=0.1)
    hyper = HyperParams(epochs=3, batch_size=8, hidden=(8, 8), dropout=0.2, seed=7)
    first, second = (fit_aggregate("dnn", bags, hyper) for _ in range(2))
    a, b = first.model.state_dict(), second.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert first.best_val_loss == second.best_val_loss
    other = fit_aggregate("dnn", bags, hyper.model_copy(update={"seed": 8})).model.state_dict()
    assert not all(torch.equal(a[k], other[k]) for k in a)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_every_kind_trains_and_predicts_non_negative(kind: str) -> None:
    bags, _ = make_bags(30, seed=5)
    messages: list[str] = []
    res = fit_aggregate(
        kind, bags, HyperParams(epochs=2, batch_size=8, hidden=(4, 4)), progress=messages.append
    )
    assert res.model.n_features == 2 + 2 and res.epochs_run == 2 and res.device == "cpu"
    assert messages and messages[-1].startswith(f"{kind} (aggregate): epoch 2/2")
    cells = aggregate_predictions(res.model, bags)
    pixels = pixel_predictions(res.model, bags.x, bags.classes, 2)
    assert np.isfinite(cells).all() and (cells >= 0).all() and (pixels >= 0).all()


def test_checkpoint_round_trip_lists_the_class_columns() -> None:
    bags, _ = make_bags(20, seed=6)
    model = fit_aggregate("cnn", bags, HyperParams(epochs=1, batch_size=8, hidden=(4, 4))).model
    weights, meta = to_bytes(model, {"features": ["a", "b", "class=0", "class=1"], "target": "gpp"})
    restored = from_bytes(weights, meta)
    np.testing.assert_array_equal(aggregate_predictions(restored, bags), aggregate_predictions(model, bags))
