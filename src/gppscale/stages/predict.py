"""30 m prediction kernel: each forest pixel gets the model of its forest type; other pixels stay NaN.

The kernel works on NumPy blocks of the predictor cube (one chunk, or any set of pixels), so the same
code serves the chunked 30 m maps and the held-out checks.

Example:
    >>> import torch
    >>> from gppscale.stages.quarters import Quarter
    >>> class Double(torch.nn.Module):  # a stand-in "model": twice the first feature
    ...     def forward(self, x):
    ...         return 2 * x[..., 0]
    >>> layers = {"ndvi": np.array([[[0.5, 0.25]]], np.float32)}  # (T=1, y=1, x=2)
    >>> types = np.array([[4, 0]], np.uint8)                        # DNF, non-forest
    >>> predict_block(layers, types, {4: Double()}, ["ndvi"], [Quarter(2021, 2)]).tolist()
    [[[1.0, nan]]]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from gppscale.errors import SpecError
from gppscale.stages.features import cube_to_sequences
from gppscale.stages.quarters import Quarter

if TYPE_CHECKING:
    import torch

__all__ = ["coarse_everywhere", "predict_block"]

F32 = npt.NDArray[np.float32]


def _run(model: torch.nn.Module | Callable[[F32], F32], x: F32, device: str, batch_size: int) -> F32:
    import torch

    out = np.empty(x.shape[:2], np.float32)
    if not isinstance(model, torch.nn.Module):  # e.g. the tree baseline: NumPy in, NumPy out
        for start in range(0, x.shape[0], batch_size):
            out[start : start + batch_size] = model(x[start : start + batch_size])
        return out
    model = model.to(device).eval()
    with torch.inference_mode():
        for start in range(0, x.shape[0], batch_size):
            part = torch.from_numpy(x[start : start + batch_size]).to(device)
            out[start : start + batch_size] = model(part).float().cpu().numpy()
    return out


def predict_block(
    layers: Mapping[str, npt.ArrayLike],
    forest_type: npt.ArrayLike,
    models: Mapping[int, Any],
    predictors: Sequence[str],
    quarters: Sequence[Quarter],
    *,
    device: str = "cpu",
    batch_size: int = 65536,
) -> F32:
    """Predict a block: ``(T, *pixels)`` float32, NaN where the pixel's type has no model.

    Args:
        layers: Predictors by name, ``(T, *pixels)`` or static ``(*pixels)`` (NaN allowed: the models
            treat it as the training mean).
        forest_type: Forest-type ids ``(*pixels)`` (0 non-forest, 1 ENF … 5 EBF, 255 no data).
        models: Torch modules (or NumPy callables such as :class:`gppscale.train.TreeModel`) by
            forest-type id, mapping ``(n, T, F)`` to ``(n, T)``.
        predictors: The models' predictor order (without the season features, added here).
        quarters: The quarters of the ``T`` axis.
        device: Torch device for the models.
        batch_size: Pixels per forward pass.

    Raises:
        SpecError: If a predictor is missing or shapes disagree with ``forest_type``.
    """
    types = np.asarray(forest_type)
    out = np.full((len(quarters), types.size), np.nan, np.float32)
    flat_types = types.ravel()
    for type_id, model in models.items():
        where = np.flatnonzero(flat_types == type_id)
        if where.size == 0:
            continue
        picked = {
            name: _pick(np.asarray(layers[name]), types.shape, where, len(quarters), name)
            for name in predictors
            if name in layers
        }
        x = cube_to_sequences(picked, predictors, quarters)
        out[:, where] = _run(model, x, device, batch_size).T
    return out.reshape(len(quarters), *types.shape)


def _pick(
    a: npt.NDArray[Any], shape: tuple[int, ...], where: npt.NDArray[np.intp], n_t: int, name: str
) -> Any:  # noqa: ANN401
    if a.shape == (n_t, *shape):
        return a.reshape(n_t, -1)[:, where]
    if a.shape == shape:
        return a.reshape(-1)[where]
    raise SpecError(f"predictor {name!r} has shape {a.shape}; expected {(n_t, *shape)} or {shape}")


def coarse_everywhere(labels_tc: npt.ArrayLike, cells: npt.ArrayLike) -> F32:
    """The "coarse value everywhere" baseline: each pixel gets its coarse cell's value, ``(T, *pixels)``.

    Args:
        labels_tc: Coarse values ``(T, n_cells)`` (cells flattened row-major; NaN where unknown).
        cells: Each pixel's cell index (:func:`~gppscale.stages.aggregate.pixel_cells`; -1 outside).

    Example:
        >>> coarse_everywhere([[10.0, 20.0]], np.array([[0, 1, -1]])).tolist()
        [[[10.0, 20.0, nan]]]
    """
    labels = np.asarray(labels_tc, np.float32)
    idx = np.asarray(cells)
    out = np.full((labels.shape[0], *idx.shape), np.nan, np.float32)
    inside = idx >= 0
    out[:, inside] = labels[:, idx[inside]]
    return out
