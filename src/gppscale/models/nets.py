"""The paper's four networks as torch modules: BPNN, DNN, CNN and RNN regressors of quarterly GPP/NPP.

Every network is a :class:`Regressor`: standardise the features, run a body (:class:`BPNNBody`,
:class:`DNNBody`, :class:`CNNBody` or :class:`RNNBody`), map each quarter's hidden vector to one number
with a linear head, and make it non-negative with a softplus scaled by ``y_scale``. Input ``x`` is
``(batch, T, F)`` float32 (``T`` quarters in time order, ``F`` features in a fixed, named order; NaN
allowed), output ``(batch, T)`` float32 in the target's units (gC m-2 quarter-1), never negative.

Yu et al. (2022) name the four architectures but give no layer sizes; the designs here are stated in
each body's docstring and sized by :class:`~gppscale.config.HyperParams` (``hidden``, ``dropout``).

Example:
    >>> import torch
    >>> from gppscale.config import HyperParams
    >>> _ = torch.manual_seed(0)
    >>> model = build_model("rnn", n_features=5, hyper=HyperParams(hidden=(8, 8))).eval()
    >>> x = torch.randn(3, 4, 5)
    >>> x[0, 1, 2] = float("nan")  # a cloudy quarter
    >>> y = model(x)
    >>> y.shape, bool((y >= 0).all()), bool(y.isfinite().all())
    (torch.Size([3, 4]), True, True)
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from gppscale.config import HyperParams
from gppscale.errors import SpecError

__all__ = [
    "MODEL_KINDS",
    "Z_CLIP",
    "BPNNBody",
    "CNNBody",
    "DNNBody",
    "RNNBody",
    "Regressor",
    "Standardize",
    "build_model",
]

MODEL_KINDS: Final = ("dnn", "cnn", "bpnn", "rnn")
"""The network kinds :func:`build_model` knows, in the order of ``models.kinds``' default."""

Z_CLIP: Final = 50.0
"""Standardised features are clipped to ``[-Z_CLIP, Z_CLIP]`` (see :class:`Standardize`)."""


class Standardize(nn.Module):
    """Per-feature z-scores, held inside the training range, missing values at the training mean.

    ``(x - mean) / std`` is clamped per feature to ``[lo, hi]``, the z-scores of the smallest and largest
    training values, then NaN becomes 0 (the training mean: a cloudy quarter carries no information).
    The clamp keeps a network from extrapolating: a model fitted on coarse-cell means sees wider values
    at 30 m (one pixel varies more than a cell's mean), and outside the range it was fitted on its
    output is unconstrained, so such a pixel is read as the nearest value the model knows. ``lo`` and
    ``hi`` default to ``±Z_CLIP``; ±inf saturates there, so a corrupt pixel (a reflectance of 1e30)
    cannot overflow float32 inside the body.

    ``mean``, ``std``, ``lo`` and ``hi`` are ``(F,)`` buffers, so they travel in the state dict and the
    checkpoint. A ``std`` of 0 (a constant feature) or a non-finite one is stored as 1, a non-finite
    ``mean`` as 0, a non-finite bound as ``±Z_CLIP``.

    Example:
        >>> s = Standardize(2)
        >>> s.set_stats(np.array([1.0, 5.0]), np.array([2.0, 0.0]))
        >>> s(torch.tensor([[3.0, float("nan")], [1.0, 9.0], [1e30, -float("inf")]])).tolist()
        [[1.0, 0.0], [0.0, 4.0], [50.0, -50.0]]
        >>> s.set_stats(np.array([1.0, 5.0]), np.array([2.0, 1.0]), low=[0.0, 4.0], high=[2.0, 6.0])
        >>> s(torch.tensor([[3.0, 9.0], [-7.0, 5.5]])).tolist()  # held within the training range
        [[0.5, 1.0], [-0.5, 0.5]]
    """

    mean: Tensor
    std: Tensor
    lo: Tensor
    hi: Tensor

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.register_buffer("lo", torch.full((n_features,), -Z_CLIP))
        self.register_buffer("hi", torch.full((n_features,), Z_CLIP))

    def set_stats(
        self,
        mean: npt.ArrayLike,
        std: npt.ArrayLike,
        low: npt.ArrayLike | None = None,
        high: npt.ArrayLike | None = None,
    ) -> None:
        """Store ``(F,)`` training means, standard deviations and, optionally, minima and maxima."""
        n = self.mean.numel()
        arrays = [np.asarray(a, dtype=np.float64).reshape(-1) for a in (mean, std)]
        bounds = [None if b is None else np.asarray(b, dtype=np.float64).reshape(-1) for b in (low, high)]
        if any(a.shape != (n,) for a in [*arrays, *(b for b in bounds if b is not None)]):
            raise SpecError(
                f"standardisation statistics have shapes {[a.shape for a in arrays]}; "
                f"expected ({n},), one value per feature"
            )
        m = np.where(np.isfinite(arrays[0]), arrays[0], 0.0)
        sd = np.where(np.isfinite(arrays[1]) & (arrays[1] > 0), arrays[1], 1.0)
        z = [
            np.full(n, edge) if b is None else (b - m) / sd
            for b, edge in zip(bounds, (-Z_CLIP, Z_CLIP), strict=True)
        ]
        lo = np.clip(np.where(np.isfinite(z[0]), z[0], -Z_CLIP), -Z_CLIP, 0.0)
        hi = np.clip(np.where(np.isfinite(z[1]), z[1], Z_CLIP), 0.0, Z_CLIP)
        with torch.no_grad():
            for buffer, value in ((self.mean, m), (self.std, sd), (self.lo, lo), (self.hi, hi)):
                buffer.copy_(torch.from_numpy(value))

    def forward(self, x: Tensor) -> Tensor:
        """Standardise ``(..., F)`` features; same shape out."""
        z = torch.nan_to_num((x - self.mean) / self.std, nan=0.0, posinf=Z_CLIP, neginf=-Z_CLIP)
        return torch.minimum(torch.maximum(z, self.lo), self.hi)


class _Body(nn.Module):
    """A network body: ``(batch, T, F)`` → ``(batch, T, out_features)``."""

    out_features: int


class BPNNBody(_Body):
    """Classic back-propagation network: one hidden layer of ``hidden[0]`` sigmoid units per quarter.

    ``Linear(F, hidden[0]) → Sigmoid``, applied to each quarter independently (the weights are shared
    across quarters; time order plays no role). Further ``hidden`` widths and ``dropout`` are not used:
    the classic BPNN has a single hidden layer and no dropout.
    """

    def __init__(self, n_features: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.out_features = hidden[0]
        self.layers = nn.Sequential(nn.Linear(n_features, hidden[0]), nn.Sigmoid())

    def forward(self, z: Tensor) -> Tensor:
        """``(batch, T, F)`` → ``(batch, T, hidden[0])``."""
        out: Tensor = self.layers(z)
        return out


class DNNBody(_Body):
    """Deep fully connected network: per width in ``hidden``, Linear → LayerNorm → ReLU → Dropout.

    Applied to each quarter independently, with weights shared across quarters. LayerNorm (rather than
    BatchNorm) keeps a sample's prediction independent of the other samples in its batch, so training
    batches and 30 m inference tiles of any size give the same numbers.
    """

    def __init__(self, n_features: int, hidden: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LayerNorm(h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.out_features = width
        self.layers = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        """``(batch, T, F)`` → ``(batch, T, hidden[-1])``."""
        out: Tensor = self.layers(z)
        return out


class CNNBody(_Body):
    """1-D convolutions over each quarter's feature vector, then a dense layer.

    The paper applies a CNN to per-pixel samples, which have no spatial neighbourhood; here, as there,
    the convolution runs along the feature axis: each quarter's ``F`` features form a 1-channel sequence
    in the fixed feature order, passed through two ``Conv1d(kernel 3, padding 1)`` layers of
    ``hidden[0]`` channels with ReLU, flattened, dropped out and mapped by ``Linear`` + ReLU to
    ``hidden[-1]`` units. Adjacent features (say red and NIR reflectance) are neighbours only because
    of that order, so the kernels are best read as learned local mixings of a few features with weights
    shared along the vector; the final dense layer sees every position. It is a faithful reproduction of
    the paper's model class, not a claim that features have a spatial structure. Quarters are independent.
    """

    def __init__(self, n_features: int, hidden: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        channels = hidden[0]
        self.out_features = hidden[-1]
        self.conv = nn.Sequential(
            nn.Conv1d(1, channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv1d(channels, channels, kernel_size=3, padding=1),
            nn.ReLU(),
        )
        self.dense = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels * n_features, hidden[-1]), nn.ReLU()
        )

    def forward(self, z: Tensor) -> Tensor:
        """``(batch, T, F)`` → ``(batch, T, hidden[-1])``."""
        b, t, f = z.shape
        out: Tensor = self.dense(self.conv(z.reshape(b * t, 1, f)))
        return out.reshape(b, t, self.out_features)


class RNNBody(_Body):
    """Bidirectional GRU over the ``T`` quarters, sequence to sequence.

    ``len(hidden)`` stacked GRU layers of ``hidden[0]`` units each way (other widths in ``hidden`` are
    not used), with ``dropout`` between layers when there is more than one. Bidirectional because every
    quarter of a run is known when predicting, so a quarter's estimate may use the quarters before and
    after it (phenology, carry-over of water stress). The output concatenates both directions.
    """

    def __init__(self, n_features: int, hidden: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        self.out_features = 2 * hidden[0]
        self.gru = nn.GRU(
            n_features,
            hidden[0],
            num_layers=len(hidden),
            batch_first=True,
            bidirectional=True,
            dropout=dropout if len(hidden) > 1 else 0.0,
        )

    def forward(self, z: Tensor) -> Tensor:
        """``(batch, T, F)`` → ``(batch, T, 2 * hidden[0])``."""
        out: Tensor = self.gru(z)[0]
        return out


class Regressor(nn.Module):
    """Standardise → body → per-quarter linear head → softplus → times ``y_scale``.

    ``(batch, T, F)`` float32 in, ``(batch, T)`` float32 out, never negative. The softplus works at unit
    scale; ``y_scale`` (a positive scalar buffer, set by training to the labels' root mean square) brings
    it to the target's units. ``kind``, ``n_features`` and ``hyper`` are kept for checkpoints. Build one
    with :func:`build_model`.
    """

    y_scale: Tensor

    def __init__(self, kind: str, n_features: int, hyper: HyperParams) -> None:
        super().__init__()
        self.kind = kind
        self.n_features = n_features
        self.hyper = hyper
        self.standardize = Standardize(n_features)
        self.body = _make_body(kind, n_features, tuple(hyper.hidden), hyper.dropout)
        self.head = nn.Linear(self.body.out_features, 1)
        self.register_buffer("y_scale", torch.ones(()))

    def set_y_scale(self, value: float) -> None:
        """Set the output scale (target units per unit of softplus); must be finite and positive."""
        if not (np.isfinite(value) and value > 0):
            raise SpecError(f"y_scale {value!r} is not a finite positive number; pass the labels' scale")
        with torch.no_grad():
            self.y_scale.fill_(float(value))

    def forward(self, x: Tensor) -> Tensor:
        """Predict ``(batch, T)`` from ``(batch, T, F)``."""
        return self.unit_forward(x) * self.y_scale

    def unit_forward(self, x: Tensor) -> Tensor:
        """The prediction divided by ``y_scale`` (what training fits), ``(batch, T)``."""
        h = self.body(self.standardize(x))
        return nn.functional.softplus(self.head(h).squeeze(-1))


def _make_body(kind: str, n_features: int, hidden: tuple[int, ...], dropout: float) -> _Body:
    if kind == "bpnn":
        return BPNNBody(n_features, hidden)
    if kind == "dnn":
        return DNNBody(n_features, hidden, dropout)
    if kind == "cnn":
        return CNNBody(n_features, hidden, dropout)
    if kind == "rnn":
        return RNNBody(n_features, hidden, dropout)
    raise SpecError(f"unknown model kind {kind!r}; use one of {', '.join(MODEL_KINDS)} (models.kinds)")


def build_model(kind: str, n_features: int, hyper: HyperParams) -> Regressor:
    """A fresh :class:`Regressor` of ``kind`` for ``n_features`` features, sized by ``hyper``.

    Weights come from torch's global generator: call ``torch.manual_seed`` first for reproducible ones.

    Raises:
        SpecError: If ``kind`` is not one of :data:`MODEL_KINDS` or ``n_features`` is below 1.

    Example:
        >>> from gppscale.config import HyperParams
        >>> m = build_model("bpnn", 3, HyperParams(hidden=(4,)))
        >>> [tuple(p.shape) for p in m.parameters()]
        [(4, 3), (4,), (1, 4), (1,)]
        >>> build_model("svm", 3, HyperParams())
        Traceback (most recent call last):
        ...
        gppscale.errors.SpecError: unknown model kind 'svm'; use one of dnn, cnn, bpnn, rnn (models.kinds)
    """
    if kind not in MODEL_KINDS:
        raise SpecError(f"unknown model kind {kind!r}; use one of {', '.join(MODEL_KINDS)} (models.kinds)")
    if isinstance(n_features, bool) or not isinstance(n_features, int | np.integer) or n_features < 1:
        raise SpecError(f"a {kind} model needs at least one feature, got n_features={n_features!r}")
    return Regressor(kind, int(n_features), hyper)
