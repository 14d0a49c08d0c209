"""Aggregate-aware training: one class-conditioned 30 m network fitted to coarse-cell means.

Yu et al. (2022) train one network per forest type on the 500 m means of "pure" coarse cells and apply it
to 30 m pixels. Aggregate training instead fits a single pixel-level network ``f``, told each pixel's
land-cover class by a one-hot code appended to its features, so that for every coarse cell ``k`` and
quarter ``t`` the area-weighted mean of its pixels' predictions matches the coarse value::

    sum_i w_ki f(x_i, c_i)_t / sum_i w_ki  ~  G_kt

Every sufficiently covered cell counts, pure or mixed, and the network is trained at the scale it is
applied at. :class:`Bags` holds the cells with their pixels, :func:`fit_aggregate` trains,
:func:`aggregate_predictions` and :func:`pixel_predictions` run a trained network, and :class:`WithClass`
presents it as the model of one forest type to :func:`gppscale.stages.predict.predict_block`.

Example:
    >>> import scipy.sparse
    >>> from gppscale.config import HyperParams
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(6, 2, 3)).astype(np.float32)
    >>> classes = np.array([0, 1, 1, 0, 0, 1])
    >>> weights = scipy.sparse.csr_matrix([[1, 1, 1, 0, 0, 0], [0, 0, 0.5, 1, 1, 1]])
    >>> bags = Bags(x, classes, weights, np.array([[90, 110], [100, 95]], np.float32), n_classes=2)
    >>> hyper = HyperParams(epochs=2, hidden=(4,))
    >>> res = fit_aggregate("bpnn", bags, hyper, val_cells=np.array([False, True]))
    >>> res.model.n_features, aggregate_predictions(res.model, bags).shape
    (5, (2, 2))
    >>> bool((pixel_predictions(res.model, x, classes, 2) >= 0).all())
    True
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
import scipy.sparse
import torch
from torch import Tensor

from gppscale.config import HyperParams
from gppscale.errors import NoDataError, SpecError
from gppscale.models.fit import (
    VAL_FRACTION,
    FitResult,
    _feature_range,
    _feature_stats,
    _label_scale,
    _Loop,
    _resolve_val_mask,
    predict,
)
from gppscale.models.nets import Regressor, build_model

__all__ = [
    "Bags",
    "WithClass",
    "aggregate_predictions",
    "fit_aggregate",
    "one_hot_features",
    "pixel_predictions",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)  # arrays have no truth value: compare Bags by identity
class Bags:
    """Coarse cells with all their fine pixels: what aggregate training learns from.

    Arrays are converted on construction (``x`` and ``labels`` to float32, ``classes`` to int64,
    ``weights`` to a float64 CSR copy without explicit zeros) and checked against each other.

    Attributes:
        x: Pixel predictor sequences ``(n_px, T, F)`` float32, quarters in time order; NaN allowed (read
            as the training mean).
        classes: Class index of each pixel ``(n_px,)`` in ``[0, n_classes)``.
        weights: Sparse ``(n_cells, n_px)``: area weight of pixel ``i`` in cell ``k``, ``>= 0``; a pixel
            may sit in two cells. A cell whose weights sum to 0 has no pixels and is never used.
        labels: Coarse values ``(n_cells, T)`` in gC m-2 quarter-1; NaN = no label for that cell/quarter.
        n_classes: Number of classes (length of the one-hot code).

    Raises:
        SpecError: If a shape, dtype or value does not fit; the message names the array and the fix.

    Example:
        >>> w = scipy.sparse.csr_matrix([[0.5, 0.5, 0.0], [0.0, 0.2, 0.8]])
        >>> bags = Bags(np.zeros((3, 4, 2), np.float32), np.array([0, 1, 1]), w, np.ones((2, 4)), 2)
        >>> bags.n_cells, bags.n_px, bags.weights.nnz
        (2, 3, 4)
        >>> Bags(np.zeros((3, 4, 2), np.float32), np.array([0, 1, 1]), w, np.ones((2, 3)), 2)
        Traceback (most recent call last):
        ...
        gppscale.errors.SpecError: Bags: labels has shape (2, 3); expected (n_cells, T) = (2, 4), ...
    """

    x: F32
    classes: I64
    weights: scipy.sparse.csr_matrix
    labels: F32
    n_classes: int

    def __post_init__(self) -> None:
        x, classes, n_classes = _check_pixels(self.x, self.classes, self.n_classes)
        weights = _check_weights(self.weights, x.shape[0])
        labels = np.asarray(self.labels, dtype=np.float32)
        if labels.shape != (weights.shape[0], x.shape[1]):
            raise SpecError(
                f"Bags: labels has shape {labels.shape}; expected (n_cells, T) = "
                f"{(weights.shape[0], x.shape[1])}, one coarse value (or NaN) per cell of weights and "
                "quarter of x"
            )
        for name, value in (("x", x), ("classes", classes), ("weights", weights), ("labels", labels)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "n_classes", n_classes)

    @property
    def n_cells(self) -> int:
        """Number of coarse cells (rows of ``weights``)."""
        return int(self.weights.shape[0])

    @property
    def n_px(self) -> int:
        """Number of pixels (rows of ``x``)."""
        return int(self.x.shape[0])


def _check_pixels(x: npt.ArrayLike, classes: npt.ArrayLike, n_classes: int) -> tuple[F32, I64, int]:
    xa = np.asarray(x, dtype=np.float32)
    if xa.ndim != 3 or xa.shape[1] < 1 or xa.shape[2] < 1:
        raise SpecError(
            f"Bags: x has shape {xa.shape}; expected (n_px pixels, T quarters, F features) with T, F >= 1"
        )
    ca = _check_classes(classes, xa.shape[0], n_classes, "Bags")
    return xa, ca, int(n_classes)


def _check_classes(classes: npt.ArrayLike, n: int, n_classes: int, where: str) -> I64:
    if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer) or n_classes < 1:
        raise SpecError(f"{where}: n_classes {n_classes!r} must be a positive integer (the one-hot length)")
    ca = np.asarray(classes)
    if ca.shape != (n,) or not (ca.dtype.kind in "iu" or ca.size == 0):
        raise SpecError(
            f"{where}: classes has dtype {ca.dtype} and shape {ca.shape}; expected integer class "
            f"indices ({n},), one per pixel of x"
        )
    if ca.size and (ca.min() < 0 or ca.max() >= n_classes):
        bad = ca[(ca < 0) | (ca >= n_classes)][0]
        raise SpecError(
            f"{where}: class index {int(bad)!r} is outside [0, {int(n_classes)}); map classes to "
            "0 .. n_classes-1 or raise n_classes"
        )
    return ca.astype(np.int64, copy=False)


def _check_weights(weights: object, n_px: int) -> scipy.sparse.csr_matrix:
    if not scipy.sparse.issparse(weights):
        raise SpecError(
            f"Bags: weights is a {type(weights).__name__}; pass a scipy.sparse matrix (n_cells, n_px), "
            "never a dense one"
        )
    w = scipy.sparse.csr_matrix(weights, dtype=np.float64, copy=True)
    if w.shape[1] != n_px:
        raise SpecError(
            f"Bags: weights has shape {w.shape} but x has {n_px} pixels; weights must be "
            f"(n_cells, {n_px}), one column per pixel of x"
        )
    if not np.isfinite(w.data).all() or (w.data < 0).any():
        bad = w.data[~(np.isfinite(w.data) & (w.data >= 0))][0]
        raise SpecError(f"Bags: weight {float(bad)!r} is not a finite number >= 0; pass area weights")
    w.sum_duplicates()
    w.eliminate_zeros()
    return w


def one_hot_features(x: npt.ArrayLike, classes: npt.ArrayLike, n_classes: int) -> F32:
    """``(n, T, F)`` → ``(n, T, F + n_classes)``: the class one-hot appended to every quarter's features.

    Raises:
        SpecError: If ``x`` is not 3-D or ``classes`` is not ``(n,)`` integers in ``[0, n_classes)``.

    Example:
        >>> one_hot_features(np.zeros((2, 1, 1), np.float32), np.array([1, 0]), 2).tolist()
        [[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]]
    """
    xa = np.asarray(x, dtype=np.float32)
    if xa.ndim != 3:
        raise SpecError(f"one_hot_features: x has shape {xa.shape}; expected (n, T quarters, F features)")
    ca = _check_classes(classes, xa.shape[0], n_classes, "one_hot_features")
    code = np.eye(n_classes, dtype=np.float32)[ca]
    return np.concatenate([xa, np.broadcast_to(code[:, None, :], (*xa.shape[:2], n_classes))], axis=-1)


def _class_stats(classes: I64, n_classes: int) -> tuple[F64, F64, F64, F64]:
    """Mean, std, min and max of each one-hot column of ``classes``.

    What ``_feature_stats`` and ``_feature_range`` give on :func:`one_hot_features`, without the copy.
    A class absent from ``classes`` has the range ``[0, 0]``: the network reads it as none of the classes
    it was trained on.

    Example:
        >>> [a.tolist() for a in _class_stats(np.array([0, 0, 0, 1]), 3)]
        [[0.75, 0.25, 0.0], [0.4330127018922193, 0.4330127018922193, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]
    """
    frac = np.bincount(classes, minlength=n_classes) / max(classes.size, 1)
    low = np.where(frac < 1, 0.0, 1.0)
    return frac, np.sqrt(frac * (1 - frac)), low, np.where(frac > 0, 1.0, 0.0)


class _CellModel(torch.nn.Module):
    """A Regressor seen as a model of cells: ``unit_forward(cell ids (b,))`` → ``(b, T)`` weighted means.

    For a batch of cells it gathers their CSR rows, runs the network on the batch's unique pixels only
    (with their class one-hot) and sums each cell's row-normalised weights times its pixels' predictions
    with ``index_add``. It quacks like a :class:`Regressor` (``kind``, ``unit_forward``, ``parameters``,
    ``state_dict``), so ``fit._Loop`` trains it unchanged: its samples are cell ids, its batches bags.
    """

    def __init__(self, model: Regressor, bags: Bags) -> None:
        super().__init__()
        self.model = model
        self.kind = f"{model.kind} (aggregate)"
        self.bags = bags
        sums = np.asarray(bags.weights.sum(axis=1)).ravel()
        self.has_pixels = sums > 0
        inverse = np.divide(1.0, sums, out=np.zeros_like(sums), where=self.has_pixels)
        self.norm = scipy.sparse.csr_matrix(scipy.sparse.diags(inverse) @ bags.weights)

    def unit_forward(self, cells: Tensor) -> Tensor:
        """Weighted mean of the unit-scale pixel predictions of ``cells``, ``(b, T)``."""
        device = self.model.y_scale.device
        rows = self.norm[cells.cpu().numpy()]
        pixels, local = np.unique(rows.indices, return_inverse=True)
        b = self.bags
        x = torch.from_numpy(one_hot_features(b.x[pixels], b.classes[pixels], b.n_classes)).to(device)
        pred = self.model.unit_forward(x)
        owner = torch.from_numpy(np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))).to(device)
        w = torch.from_numpy(rows.data.astype(np.float32)).to(device)
        terms = pred[torch.from_numpy(local.reshape(-1)).to(device)] * w[:, None]
        return torch.zeros(rows.shape[0], pred.shape[1], device=device).index_add_(0, owner, terms)

    def forward(self, cells: Tensor) -> Tensor:
        """Weighted mean of the pixel predictions of ``cells`` in the target's units, ``(b, T)``."""
        return self.unit_forward(cells) * self.model.y_scale


def fit_aggregate(
    kind: str,
    bags: Bags,
    hyper: HyperParams,
    *,
    val_cells: npt.NDArray[np.bool_] | None = None,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> FitResult:
    """Train one class-conditioned ``kind`` network so that each cell's weighted mean matches its label.

    The network is a :class:`~gppscale.models.nets.Regressor` with ``F + n_classes`` features (the
    pixel's features and its class one-hot, :func:`one_hot_features`). The loss is the MSE, over finite
    labels, between each cell's weighted mean prediction ``sum_i w_ki f(x_i) / sum_i w_ki`` and its label,
    at unit scale (divided by ``y_scale``). Standardisation statistics and range come from the pixels of
    the training cells (each pixel once, on all ``F + n_classes`` features); ``y_scale`` is the root mean
    square of the training labels.

    A step takes ``hyper.batch_size`` cells with all their pixels: with ``p`` pixels per cell the network
    sees about ``hyper.batch_size * p`` pixel sequences per step (a 500 m cell holds about 280 pixels at
    30 m, so the 256-cell default runs ~70 000 pixels a step: about 1.5 GB of activations for the
    ``dnn`` at 64 units and 8 quarters; lower ``batch_size`` where memory is short).
    Only the batch's pixels are gathered and moved to ``device``. Seeding, shuffling (of cells), early
    stopping after ``hyper.patience`` epochs and the restore of the best weights are those of
    :func:`~gppscale.models.fit.fit_model`, so the same inputs and seed on the CPU give identical weights.
    Cells without pixels or without any finite label only feed the statistics (if they are training
    cells); when no validation cell has a label the training loss is monitored instead.

    Args:
        kind: One of :data:`~gppscale.models.nets.MODEL_KINDS`.
        bags: The cells, their pixels, weights and labels.
        hyper: Hyper-parameters; ``batch_size`` counts cells.
        val_cells: Boolean ``(n_cells,)``: True for cells held out for early stopping (pass a spatially
            blocked set). None holds out a seeded random 15 % of the cells.
        device: Torch device to train on; the returned model is on the CPU.
        progress: Called with a one-line summary every 10 epochs and at the end.

    Returns:
        The trained network (``model.n_features == F + n_classes``) and training statistics;
        ``samples_per_s`` counts training cells.

    Raises:
        SpecError: If ``kind`` is unknown or ``val_cells`` is not a boolean ``(n_cells,)`` array.
        NoDataError: If no training cell has pixels and a finite label.
    """
    val = _resolve_val_cells(val_cells, bags.n_cells, hyper.seed)
    torch.manual_seed(hyper.seed)
    model = build_model(kind, bags.x.shape[2] + bags.n_classes, hyper)
    cells = _CellModel(model, bags)
    labelled = cells.has_pixels & np.isfinite(bags.labels).any(axis=1)
    train = labelled & ~val
    if not train.any():
        raise NoDataError(
            f"aggregate training of {kind}: no training cell has pixels and a finite label "
            f"({int((~val).sum())} training cells, {int(val.sum())} validation, {int(labelled.sum())} "
            "labelled in all); pass labels with values or val_cells that leave labelled cells for training"
        )
    _set_stats(model, bags, ~val & cells.has_pixels)
    model.set_y_scale(_label_scale(bags.labels[train]))
    model.to(device)

    tr = _cell_tensors(bags, train, float(model.y_scale), device)
    va = _cell_tensors(bags, labelled & val, float(model.y_scale), device) if (labelled & val).any() else tr
    # cells quacks like a Regressor (see _CellModel), so the loop of fit_model serves unchanged.
    loop = _Loop(cast(Regressor, cells), hyper, progress)
    start = time.perf_counter()
    loop.run(*tr, *va)
    seconds = time.perf_counter() - start
    cells.load_state_dict(loop.best_state)
    return FitResult(
        model=model.eval().to("cpu"),
        epochs_run=loop.epoch,
        best_epoch=loop.best_epoch,
        best_val_loss=loop.best_loss,
        train_seconds=seconds,
        samples_per_s=int(train.sum()) * loop.epoch / max(seconds, 1e-9),
        device=str(torch.device(device)),
    )


def _resolve_val_cells(val_cells: npt.ArrayLike | None, n_cells: int, seed: int) -> npt.NDArray[np.bool_]:
    if val_cells is None:
        return _resolve_val_mask(None, n_cells, seed)
    mask = np.asarray(val_cells)
    if mask.dtype != np.bool_ or mask.shape != (n_cells,):
        raise SpecError(
            f"val_cells has dtype {mask.dtype} and shape {mask.shape}; expected a boolean ({n_cells},) "
            f"array, True for the validation cells (or None for a random {VAL_FRACTION:.0%})"
        )
    return mask


def _set_stats(model: Regressor, bags: Bags, cells: npt.NDArray[np.bool_]) -> None:
    """Standardise by the pixels of ``cells``, each counted once: features, then the one-hot columns."""
    pixels = np.unique(bags.weights[np.flatnonzero(cells)].indices)
    x = bags.x[pixels]
    features = (*_feature_stats(x), *_feature_range(x))
    codes = _class_stats(bags.classes[pixels], bags.n_classes)
    model.standardize.set_stats(*(np.concatenate(pair) for pair in zip(features, codes, strict=True)))


def _cell_tensors(
    bags: Bags, cells: npt.NDArray[np.bool_], scale: float, device: str
) -> tuple[Tensor, Tensor]:
    """Ids of ``cells`` and their labels at unit scale, on ``device``."""
    ids = np.flatnonzero(cells)
    labels = np.ascontiguousarray(bags.labels[ids] / np.float32(scale))
    return torch.from_numpy(ids).to(device), torch.from_numpy(labels).to(device)


class WithClass(torch.nn.Module):
    """A class-conditioned Regressor seen as a per-type model: ``(n, T, F)`` → ``(n, T)``.

    Appends the fixed one-hot of ``class_index`` to every quarter's features and runs ``model``, so
    :func:`gppscale.stages.predict.predict_block` can use it as the model of one forest type.
    ``n_features`` is ``F``, the features without the code.

    Raises:
        SpecError: If ``class_index`` is outside ``[0, n_classes)`` or ``model`` has no more than
            ``n_classes`` features.

    Example:
        >>> m = build_model("dnn", 3 + 2, HyperParams(hidden=(4,))).eval()
        >>> x = torch.zeros(5, 4, 3)
        >>> code = torch.tensor([0.0, 1.0]).expand(5, 4, 2)
        >>> bool(torch.equal(WithClass(m, 1, 2)(x), m(torch.cat([x, code], dim=-1))))
        True
    """

    code: Tensor

    def __init__(self, model: Regressor, class_index: int, n_classes: int) -> None:
        super().__init__()
        _check_classes(np.array([class_index]), 1, n_classes, "WithClass")
        if model.n_features <= n_classes:
            raise SpecError(
                f"WithClass: the {model.kind} model has {model.n_features} features, no more than "
                f"n_classes={n_classes}; pass the n_classes it was trained with (fit_aggregate)"
            )
        self.model = model
        self.class_index = int(class_index)
        self.n_classes = int(n_classes)
        self.n_features = model.n_features - n_classes
        code = torch.zeros(n_classes)
        code[class_index] = 1.0
        self.register_buffer("code", code, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Predict ``(n, T)`` from ``(n, T, F)`` for pixels of class ``class_index``."""
        code = self.code.to(x.dtype).expand(*x.shape[:-1], self.n_classes)
        out: Tensor = self.model(torch.cat([x, code], dim=-1))
        return out


def aggregate_predictions(
    model: Regressor, bags: Bags, *, batch_cells: int = 256, device: str = "cpu"
) -> F32:
    """``(n_cells, T)`` float32: each cell's weighted mean of ``model``'s pixel predictions.

    NaN for cells whose weights sum to 0. Runs in eval mode under ``torch.inference_mode()``,
    ``batch_cells`` cells (with all their pixels) at a time; the model's device and mode are restored.

    Raises:
        SpecError: If ``batch_cells`` is below 1 or ``model`` does not take ``F + n_classes`` features.
    """
    if batch_cells < 1:
        raise SpecError(f"aggregate_predictions: batch_cells {batch_cells!r} must be at least 1")
    _check_width(model, bags.x.shape[2], bags.n_classes, "aggregate_predictions")
    cells = _CellModel(model, bags)
    out = np.full(bags.labels.shape, np.nan, np.float32)
    ids = np.flatnonzero(cells.has_pixels)
    old_device, was_training = model.y_scale.device, model.training
    cells.eval().to(device)
    try:
        with torch.inference_mode():
            for i in range(0, ids.size, batch_cells):
                batch = torch.from_numpy(ids[i : i + batch_cells]).to(device)
                out[ids[i : i + batch_cells]] = cells(batch).to("cpu").numpy()
        return out
    finally:
        model.train(was_training).to(old_device)


def pixel_predictions(
    model: Regressor,
    x: npt.ArrayLike,
    classes: npt.ArrayLike,
    n_classes: int,
    *,
    batch_size: int = 65536,
    device: str = "cpu",
) -> F32:
    """``(n, T)`` float32 predictions of pixels ``x`` ``(n, T, F)`` of any classes ``(n,)``.

    The one-hot code is built one batch of ``batch_size`` pixels at a time
    (:func:`~gppscale.models.fit.predict` does the rest).

    Raises:
        SpecError: If shapes or classes do not fit, or ``model`` does not take ``F + n_classes`` features.
    """
    xa = np.asarray(x, dtype=np.float32)
    if xa.ndim != 3:
        raise SpecError(f"pixel_predictions: x has shape {xa.shape}; expected (n, T quarters, F features)")
    ca = _check_classes(classes, xa.shape[0], n_classes, "pixel_predictions")
    _check_width(model, xa.shape[2], n_classes, "pixel_predictions")
    if batch_size < 1:
        raise SpecError(f"pixel_predictions: batch_size {batch_size!r} must be at least 1")
    out = np.empty(xa.shape[:2], np.float32)
    for i in range(0, xa.shape[0], batch_size):
        part = one_hot_features(xa[i : i + batch_size], ca[i : i + batch_size], n_classes)
        out[i : i + batch_size] = predict(model, part, device=device, batch_size=batch_size)
    return out


def _check_width(model: Regressor, n_features: int, n_classes: int, where: str) -> None:
    if model.n_features != n_features + n_classes:
        raise SpecError(
            f"{where}: the {model.kind} model takes {model.n_features} features but the pixels have "
            f"{n_features} plus {n_classes} classes; pass the pixels and n_classes it was trained with"
        )
