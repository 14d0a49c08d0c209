"""Training loop and batched prediction for the :class:`~gppscale.models.nets.Regressor` networks.

:func:`fit_model` trains one network on ``x`` ``(n, T, F)`` and labels ``y`` ``(n, T)`` (NaN = no
label) with a masked MSE, Adam and early stopping on a validation slice; :func:`predict` runs a trained
network over any number of samples in batches.

Example:
    >>> from gppscale.config import HyperParams
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 4, 3)).astype(np.float32)
    >>> y = (100 * np.log1p(np.exp(x.sum(axis=-1)))).astype(np.float32)
    >>> hyper = HyperParams(epochs=5, batch_size=32, hidden=(8,))
    >>> res = fit_model("dnn", x, y, hyper)
    >>> res.epochs_run, predict(res.model, x[:2]).shape
    (5, (2, 4))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from gppscale.config import HyperParams
from gppscale.errors import NoDataError, SpecError
from gppscale.models.nets import Regressor, build_model

__all__ = ["VAL_FRACTION", "FitResult", "fit_model", "predict"]

VAL_FRACTION = 0.15
"""Share of samples held out for validation when the caller passes no ``val_mask``."""

_PROGRESS_EVERY = 10


@dataclass(frozen=True)
class FitResult:
    """A trained network and how training went.

    Attributes:
        model: The network with the best validation weights, in eval mode, on the CPU.
        epochs_run: Epochs trained before stopping (early or at ``hyper.epochs``).
        best_epoch: The epoch (1-based) whose weights ``model`` holds; 0 if no epoch improved on the
            untrained network.
        best_val_loss: Masked MSE of ``model`` on the validation samples, in units of ``y_scale`` squared
            (on the training samples when there were no labelled validation samples).
        train_seconds: Wall time of the training loop.
        samples_per_s: Training samples processed per second (``n_train * epochs_run / train_seconds``).
        device: The torch device trained on (``"cpu"``, ``"cuda"``, ...).
    """

    model: Regressor
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    train_seconds: float
    samples_per_s: float
    device: str


def fit_model(
    kind: str,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    hyper: HyperParams,
    *,
    val_mask: npt.ArrayLike | None = None,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> FitResult:
    """Train a ``kind`` network on features ``x`` ``(n, T, F)`` and labels ``y`` ``(n, T)``.

    Standardisation statistics (per feature, over the training samples' ``n * T`` values, NaN ignored)
    and ``y_scale`` (root mean square of the training labels) come from the training samples only. The
    loss is the MSE over labelled entries (finite ``y``) at unit scale (divided by ``y_scale``). Adam with
    ``hyper.learning_rate`` takes steps of ``hyper.batch_size`` samples, shuffled by a generator seeded
    with ``hyper.seed``; weights are seeded by ``torch.manual_seed(hyper.seed)``, so the same inputs and
    seed on the CPU give identical weights. Training stops after ``hyper.patience`` epochs without a
    lower validation loss, or after ``hyper.epochs``, and the best weights are restored. Samples without
    any label contribute to the statistics only. If the validation samples hold no label, the training
    loss is monitored instead.

    Args:
        kind: One of :data:`~gppscale.models.nets.MODEL_KINDS`.
        x: Features, float32 ``(n, T, F)``, quarters in time order; NaN allowed.
        y: Labels in gC m-2 quarter-1, ``(n, T)``; NaN = no label.
        hyper: Hyper-parameters (epochs, batch size, learning rate, widths, dropout, patience, seed).
        val_mask: Boolean ``(n,)``: True for validation samples (pass a spatially blocked slice). None
            holds out a seeded random 15 % of the samples (at least one when ``n >= 2``).
        device: Torch device to train on; the returned model is on the CPU.
        progress: Called with a one-line summary every 10 epochs and at the end.

    Returns:
        The trained model and training statistics.

    Raises:
        SpecError: If the shapes do not fit together, ``F`` is 0 or ``kind`` is unknown.
        NoDataError: If no training sample has a finite label.
    """
    xa, ya = _check_xy(x, y)
    val = _resolve_val_mask(val_mask, xa.shape[0], hyper.seed)
    train = ~val
    train_labelled = train & np.isfinite(ya).any(axis=1)
    if not train_labelled.any():
        raise NoDataError(
            f"no training sample has a finite label ({int(train.sum())} training samples, "
            f"{int(val.sum())} validation); pass labels y with values or a val_mask that leaves labelled "
            "samples for training"
        )

    torch.manual_seed(hyper.seed)
    model = build_model(kind, xa.shape[2], hyper)
    model.standardize.set_stats(*_feature_stats(xa[train]), *_feature_range(xa[train]))
    model.set_y_scale(_label_scale(ya[train_labelled]))
    model.to(device)

    scale = float(model.y_scale)
    x_tr, y_tr = _to_device(xa[train_labelled], ya[train_labelled] / scale, device)
    has_val = bool(val.any() and np.isfinite(ya[val]).any())
    x_va, y_va = _to_device(xa[val], ya[val] / scale, device) if has_val else (x_tr, y_tr)

    loop = _Loop(model, hyper, progress)
    start = time.perf_counter()
    loop.run(x_tr, y_tr, x_va, y_va)
    seconds = time.perf_counter() - start

    model.load_state_dict(loop.best_state)
    model.eval().to("cpu")
    return FitResult(
        model=model,
        epochs_run=loop.epoch,
        best_epoch=loop.best_epoch,
        best_val_loss=loop.best_loss,
        train_seconds=seconds,
        samples_per_s=x_tr.shape[0] * loop.epoch / max(seconds, 1e-9),
        device=str(torch.device(device)),
    )


class _Loop:
    """Epoch loop with early stopping; keeps the best state dict (on the CPU)."""

    def __init__(self, model: Regressor, hyper: HyperParams, progress: Callable[[str], None] | None) -> None:
        self.model = model
        self.hyper = hyper
        self.progress = progress
        self.optimizer = torch.optim.Adam(model.parameters(), lr=hyper.learning_rate)
        self.generator = torch.Generator().manual_seed(hyper.seed)
        self.epoch = 0
        self.best_epoch = 0
        self.best_loss = float("inf")
        self.best_state = _state_copy(model)

    def run(self, x_tr: Tensor, y_tr: Tensor, x_va: Tensor, y_va: Tensor) -> None:
        stale = 0
        for epoch in range(1, self.hyper.epochs + 1):
            self.epoch = epoch
            train_loss = self._train_epoch(x_tr, y_tr)
            val_loss = _eval_loss(self.model, x_va, y_va, self.hyper.batch_size)
            if val_loss < self.best_loss:
                self.best_loss, self.best_epoch, stale = val_loss, epoch, 0
                self.best_state = _state_copy(self.model)
            else:
                stale += 1
            done = stale >= self.hyper.patience or epoch == self.hyper.epochs
            if self.progress is not None and (epoch % _PROGRESS_EVERY == 0 or done):
                self.progress(
                    f"{self.model.kind}: epoch {epoch}/{self.hyper.epochs} train {train_loss:.4g} "
                    f"val {val_loss:.4g} best {self.best_loss:.4g} (epoch {self.best_epoch})"
                    + (" - stopping early" if stale >= self.hyper.patience else "")
                )
            if done:
                return

    def _train_epoch(self, x: Tensor, y: Tensor) -> float:
        self.model.train()
        order = torch.randperm(x.shape[0], generator=self.generator).to(x.device)
        total, count = 0.0, 0
        for i in range(0, x.shape[0], self.hyper.batch_size):
            idx = order[i : i + self.hyper.batch_size]
            loss_sum, n = _masked_sse(self.model.unit_forward(x[idx]), y[idx])
            loss = loss_sum / n
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            self.optimizer.step()
            total += float(loss_sum.detach())
            count += int(n)
        return total / max(count, 1)


def _masked_sse(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Sum of squared errors over finite targets, and their count (at least 1)."""
    mask = torch.isfinite(target)
    diff = torch.where(mask, pred - torch.nan_to_num(target), torch.zeros_like(pred))
    return (diff * diff).sum(), mask.sum().clamp(min=1)


def _eval_loss(model: Regressor, x: Tensor, y: Tensor, batch_size: int) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch_size):
            sse, _ = _masked_sse(model.unit_forward(x[i : i + batch_size]), y[i : i + batch_size])
            total += float(sse)
            count += int(torch.isfinite(y[i : i + batch_size]).sum())
    return total / max(count, 1)


def _state_copy(model: Regressor) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def predict(
    model: Regressor, x: npt.ArrayLike, *, device: str = "cpu", batch_size: int = 65536
) -> npt.NDArray[np.float32]:
    """Run ``model`` on ``x`` ``(n, T, F)`` in batches; returns float32 ``(n, T)``, never negative.

    The model runs in eval mode under ``torch.inference_mode()`` on ``device``; its previous device and
    train/eval mode are restored afterwards. Memory per batch grows with ``batch_size * T`` times the
    widest activation: for the CNN that is ``hidden[0] * F`` floats per quarter (about 2.7 GB for 65536
    samples, 8 quarters, 64 channels, 20 features), so lower ``batch_size`` on small machines.

    Raises:
        SpecError: If ``x`` is not ``(n, T, F)`` with the model's ``F``, or ``batch_size`` is below 1.

    Example:
        >>> from gppscale.config import HyperParams
        >>> from gppscale.models.nets import build_model
        >>> m = build_model("cnn", 6, HyperParams(hidden=(4, 8)))
        >>> out = predict(m, np.full((10, 4, 6), np.nan, dtype=np.float32), batch_size=3)
        >>> out.shape, out.dtype, bool((out >= 0).all())
        ((10, 4), dtype('float32'), True)
    """
    xa = np.asarray(x, dtype=np.float32)
    if xa.ndim != 3 or xa.shape[2] != model.n_features:
        raise SpecError(
            f"predict: x has shape {xa.shape}; expected (n, T, {model.n_features}) with the "
            f"{model.n_features} features the {model.kind} model was trained on, in the same order"
        )
    if batch_size < 1:
        raise SpecError(f"predict: batch_size {batch_size!r} must be at least 1")
    old_device = next(model.buffers()).device
    was_training = model.training
    model.eval().to(device)
    try:
        out = np.empty(xa.shape[:2], dtype=np.float32)
        with torch.inference_mode():
            for i in range(0, xa.shape[0], batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(xa[i : i + batch_size])).to(device)
                out[i : i + batch_size] = model(batch).to("cpu").numpy()
        return out
    finally:
        model.train(was_training).to(old_device)


def _check_xy(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    xa = np.asarray(x, dtype=np.float32)
    ya = np.asarray(y, dtype=np.float32)
    if xa.ndim != 3:
        raise SpecError(f"x has shape {xa.shape}; expected (n samples, T quarters, F features)")
    if ya.shape != xa.shape[:2]:
        raise SpecError(
            f"y has shape {ya.shape} but x has {xa.shape}; y must be (n, T) = {xa.shape[:2]}, "
            "one label (or NaN) per sample and quarter"
        )
    if xa.shape[2] < 1 or xa.shape[1] < 1:
        raise SpecError(f"x has shape {xa.shape}; at least one quarter and one feature are needed")
    return xa, ya


def _resolve_val_mask(val_mask: npt.ArrayLike | None, n: int, seed: int) -> npt.NDArray[np.bool_]:
    if val_mask is None:
        n_val = max(1, round(VAL_FRACTION * n)) if n >= 2 else 0
        val = np.zeros(n, dtype=bool)
        val[np.random.default_rng(seed).permutation(n)[:n_val]] = True
        return val
    mask = np.asarray(val_mask)
    if mask.dtype != np.bool_ or mask.shape != (n,):
        raise SpecError(
            f"val_mask has dtype {mask.dtype} and shape {mask.shape}; expected a boolean ({n},) array, "
            "True for the validation samples"
        )
    return mask


def _feature_stats(x: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """NaN-ignoring per-feature mean and std over all samples and quarters (0 and 1 where no data)."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    ok = np.isfinite(flat)
    count = ok.sum(axis=0)
    safe = np.maximum(count, 1)
    mean = np.where(ok, flat, 0.0).sum(axis=0) / safe
    var = np.where(ok, (flat - mean) ** 2, 0.0).sum(axis=0) / safe
    return np.where(count > 0, mean, 0.0), np.where(count > 0, np.sqrt(var), 1.0)


def _feature_range(x: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """NaN-ignoring per-feature minimum and maximum (NaN where a feature has no data)."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    ok = np.isfinite(flat)
    low = np.where(ok, flat, np.inf).min(axis=0)
    high = np.where(ok, flat, -np.inf).max(axis=0)
    has = ok.any(axis=0)
    return np.where(has, low, np.nan), np.where(has, high, np.nan)


def _label_scale(y: npt.NDArray[np.float32]) -> float:
    """Root mean square of the finite labels; 1 when they are all zero."""
    finite = y[np.isfinite(y)].astype(np.float64)
    rms = float(np.sqrt(np.mean(finite * finite)))
    return rms if rms > 0 else 1.0


def _to_device(x: npt.NDArray[np.float32], y: npt.ArrayLike, device: str) -> tuple[Tensor, Tensor]:
    yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
    return torch.from_numpy(np.ascontiguousarray(x)).to(device), yt.to(device)
