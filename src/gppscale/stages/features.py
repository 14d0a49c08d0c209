"""Model inputs: the same named features, in the same order, for coarse cells and for 30 m pixels.

Models see ``(n, T, F)`` arrays: ``n`` samples (coarse cells when training, 30 m pixels when predicting),
the run's ``T`` quarters in time order, and ``F`` features in a fixed order — the predictor names of the
sample table (area-weighted means at the coarse scale, the cube's own values at 30 m) followed by
:data:`SEASON_FEATURES`, the sine and cosine of each quarter's mid-year day, which tell a per-quarter
model where in the year a quarter lies. Targets are ``(n, T)``; NaN marks a missing value in both.

Example:
    >>> import pandas as pd
    >>> from gppscale.stages.quarters import Quarter
    >>> table = pd.DataFrame({"cell": [7, 7, 9], "quarter": ["2021Q1", "2021Q2", "2021Q2"],
    ...                       "ndvi": [0.2, 0.6, 0.5], "gpp": [10.0, 300.0, 250.0]})
    >>> qs = [Quarter(2021, 1), Quarter(2021, 2)]
    >>> x, y, cells = table_to_sequences(table, ["ndvi"], "gpp", qs)
    >>> x.shape, cells.tolist(), y.tolist()  # cell 9 has no 2021Q1 row: NaN
    ((2, 2, 3), [7, 9], [[10.0, 300.0], [nan, 250.0]])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from gppscale.errors import SpecError
from gppscale.stages.quarters import Quarter

__all__ = ["SEASON_FEATURES", "cube_to_sequences", "feature_names", "season_features", "table_to_sequences"]

SEASON_FEATURES = ("season_sin", "season_cos")
"""Features added to the predictors: sin and cos of 2π · (quarter's mid day) / (days in its year)."""

F32 = npt.NDArray[np.float32]


def feature_names(predictors: Sequence[str]) -> list[str]:
    """The model's feature order: the predictors as given, then :data:`SEASON_FEATURES`.

    Raises:
        SpecError: If a predictor is named twice or takes a season feature's name.
    """
    names = [*predictors, *SEASON_FEATURES]
    if len(set(names)) != len(names):
        raise SpecError(f"feature names repeat: {names}; each predictor must appear once")
    return names


def season_features(quarters: Sequence[Quarter]) -> F32:
    """``(T, 2)`` sin/cos of each quarter's mid day of year.

    Example:
        >>> season_features([Quarter(2021, 1), Quarter(2021, 3)]).astype(float).round(3).tolist()
        [[0.712, 0.703], [-0.706, -0.709]]
    """
    out = np.empty((len(quarters), 2), np.float32)
    for i, q in enumerate(quarters):
        days = 366 if q.year % 4 == 0 and (q.year % 100 != 0 or q.year % 400 == 0) else 365
        angle = 2 * math.pi * q.mid_doy / days
        out[i] = math.sin(angle), math.cos(angle)
    return out


def _with_season(x: F32, quarters: Sequence[Quarter]) -> F32:
    season = np.broadcast_to(season_features(quarters), (x.shape[0], len(quarters), 2))
    return np.concatenate([x, season], axis=2).astype(np.float32, copy=False)


def table_to_sequences(
    table: pd.DataFrame, predictors: Sequence[str], target: str, quarters: Sequence[Quarter]
) -> tuple[F32, F32, npt.NDArray[np.int64]]:
    """Sample-table rows → ``x (cells, T, F)``, ``y (cells, T)`` and the cell ids (sorted).

    A cell without a row for some quarter gets NaN there.

    Raises:
        SpecError: If a column is missing or a quarter in the table is not among ``quarters``.
    """
    missing = {"cell", "quarter", target, *predictors} - set(table.columns)
    if missing:
        raise SpecError(
            f"the sample table lacks columns {sorted(missing)}; rebuild it with `gppscale samples`"
        )
    index = {q.label: i for i, q in enumerate(quarters)}
    unknown = set(table.quarter.unique()) - set(index)
    if unknown:
        raise SpecError(
            f"the sample table has quarters {sorted(unknown)} that the run does not: {list(index)}"
        )
    cells, row_of = np.unique(table.cell.to_numpy(np.int64), return_inverse=True)
    t_of = table.quarter.map(index).to_numpy(np.int64)
    x = np.full((cells.size, len(quarters), len(predictors)), np.nan, np.float32)
    y = np.full((cells.size, len(quarters)), np.nan, np.float32)
    x[row_of, t_of] = table[list(predictors)].to_numpy(np.float32)
    y[row_of, t_of] = table[target].to_numpy(np.float32)
    return _with_season(x, quarters), y, cells


def cube_to_sequences(
    layers: Mapping[str, npt.ArrayLike], predictors: Sequence[str], quarters: Sequence[Quarter]
) -> F32:
    """30 m cube values → ``x (pixels, T, F)`` in the model's feature order.

    Args:
        layers: NumPy arrays by predictor name, ``(T, *pixels)`` for quarterly variables or
            ``(*pixels)`` for static ones (e.g. one chunk of the cube, ``pixels = (y, x)``).
        predictors: The predictor names, in the model's order.
        quarters: The quarters of the ``T`` axis.

    Returns:
        float32 ``(P, T, F)`` with ``P`` the number of pixels (row-major over the pixel dims).

    Raises:
        SpecError: If a predictor is missing or has a shape that fits neither form.
    """
    missing = [p for p in predictors if p not in layers]
    if missing:
        raise SpecError(f"the cube lacks predictors {missing}; the model was trained on {list(predictors)}")
    n_t = len(quarters)
    arrays = {p: np.asarray(layers[p], np.float32) for p in predictors}
    shapes = {a.shape[1:] if a.ndim >= 1 and a.shape[0] == n_t else a.shape for a in arrays.values()}
    pixel_shape = max(shapes, key=len)
    n_pix = int(np.prod(pixel_shape))
    x = np.empty((n_pix, n_t, len(predictors)), np.float32)
    for j, name in enumerate(predictors):
        a = arrays[name]
        if a.shape == (n_t, *pixel_shape):
            x[:, :, j] = a.reshape(n_t, n_pix).T
        elif a.shape == pixel_shape:
            x[:, :, j] = a.reshape(n_pix, 1)
        else:
            raise SpecError(
                f"predictor {name!r} has shape {a.shape}; expected {(n_t, *pixel_shape)} or {pixel_shape}"
            )
    return _with_season(x, quarters)
