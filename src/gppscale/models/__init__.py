"""The paper's four deep networks (Yu et al. 2022), their training loop, and safe checkpoints.

Torch modules and their training only; no data loading. Every network maps features ``x``
``(n, T, F)`` float32 (``n`` samples - coarse cells or 30 m pixels -, ``T`` quarters in time order,
``F`` features in a fixed, named order; NaN allowed, read as the training mean) to ``(n, T)`` float32
GPP or NPP in gC m-2 quarter-1, never negative (softplus head scaled by the labels' magnitude).

Kinds (:data:`MODEL_KINDS`, chosen by ``models.kinds`` in the run spec):

- ``bpnn``: classic back-propagation net, one sigmoid hidden layer, each quarter on its own;
- ``dnn``: deep fully connected net, Linear → LayerNorm → ReLU → Dropout per width, per quarter;
- ``cnn``: 1-D convolutions along each quarter's feature vector, then a dense layer;
- ``rnn``: bidirectional GRU over the quarters, sequence to sequence.

:func:`fit_model` trains one (masked MSE, Adam, early stopping, seeded), :func:`predict` runs it in
batches, :func:`to_bytes` / :func:`from_bytes` write and read safetensors + JSON checkpoints.

Example:
    >>> import numpy as np
    >>> from gppscale.config import HyperParams
    >>> x = np.random.default_rng(0).normal(size=(50, 4, 3)).astype(np.float32)
    >>> res = fit_model("bpnn", x, 100 + 10 * x[..., 0], HyperParams(epochs=2, hidden=(4,)))
    >>> weights, meta = to_bytes(res.model, {"features": ["a", "b", "c"], "target": "gpp"})
    >>> predict(from_bytes(weights, meta), x).shape
    (50, 4)
"""

from __future__ import annotations

from gppscale.models.aggregate import (
    Bags,
    WithClass,
    aggregate_predictions,
    fit_aggregate,
    one_hot_features,
    pixel_predictions,
)
from gppscale.models.checkpoint import CHECKPOINT_FORMAT, from_bytes, to_bytes
from gppscale.models.fit import FitResult, fit_model, predict
from gppscale.models.nets import MODEL_KINDS, Regressor, Standardize, build_model

__all__ = [
    "CHECKPOINT_FORMAT",
    "MODEL_KINDS",
    "Bags",
    "FitResult",
    "Regressor",
    "Standardize",
    "WithClass",
    "aggregate_predictions",
    "build_model",
    "fit_aggregate",
    "fit_model",
    "from_bytes",
    "one_hot_features",
    "pixel_predictions",
    "predict",
    "to_bytes",
]
