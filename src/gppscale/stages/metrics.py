"""Agreement between predictions and observations: R², RMSE, mean difference and count.

``r2`` is the coefficient of determination ``1 - SSE / SST`` around the observations' mean (it can be
negative: worse than predicting the mean), not the squared correlation, which forgives any bias and
scale error. ``md`` is the mean of ``prediction - observation`` (positive = overestimate). Only pairs
where both values are finite count. A score pooled over quarters mostly measures the seasonal cycle, so
:func:`scores_by_quarter` scores each quarter on its own and :func:`within_quarter_r2` averages them.

Example:
    >>> s = scores([1.0, 2.0, 3.0, np.nan], [1.0, 2.0, 4.0, 5.0])
    >>> s["n"], round(s["rmse"], 4), round(s["md"], 4), round(s["r2"], 4)
    (3, 0.5774, -0.3333, 0.7857)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gppscale.errors import SpecError

__all__ = ["scores", "scores_by_quarter", "within_quarter_r2"]

Scores = dict[str, float]


def scores(prediction: npt.ArrayLike, observation: npt.ArrayLike) -> Scores:
    """``{"r2", "rmse", "md", "n"}`` over the pairs where both are finite (NaN scores when n < 2).

    Raises:
        SpecError: If the shapes differ.
    """
    p = np.asarray(prediction, np.float64)
    o = np.asarray(observation, np.float64)
    if p.shape != o.shape:
        raise SpecError(f"scores: prediction shape {p.shape} differs from observation shape {o.shape}")
    ok = np.isfinite(p) & np.isfinite(o)
    p, o = p[ok], o[ok]
    n = int(p.size)
    if n < 2:
        return {"r2": math.nan, "rmse": math.nan, "md": math.nan, "n": n}
    err = p - o
    sst = float(((o - o.mean()) ** 2).sum())
    r2 = 1.0 - float((err**2).sum()) / sst if sst > 0 else math.nan
    return {"r2": r2, "rmse": float(np.sqrt((err**2).mean())), "md": float(err.mean()), "n": n}


def scores_by_quarter(
    prediction: npt.ArrayLike, observation: npt.ArrayLike, labels: Sequence[str]
) -> dict[str, Scores]:
    """:func:`scores` of each quarter; the last axis of both arrays is the quarter (``len(labels)``).

    Example:
        >>> obs = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
        >>> by_q = scores_by_quarter(obs * 1.0, obs, ["2021Q1", "2021Q2"])
        >>> by_q["2021Q2"]["r2"], by_q["2021Q2"]["n"]
        (1.0, 3)
    """
    p = np.asarray(prediction, np.float64)
    o = np.asarray(observation, np.float64)
    if p.shape != o.shape or p.shape[-1:] != (len(labels),):
        raise SpecError(
            f"scores_by_quarter: shapes {p.shape} and {o.shape} must match and end with "
            f"{len(labels)} quarters"
        )
    return {label: scores(p[..., i], o[..., i]) for i, label in enumerate(labels)}


def within_quarter_r2(by_quarter: dict[str, Scores], min_n: int = 5) -> float:
    """Mean R² over the quarters with at least ``min_n`` pairs (NaN when none has).

    Example:
        >>> by_q = {"Q1": {"r2": 0.5, "n": 9}, "Q2": {"r2": 0.7, "n": 9}, "Q3": {"r2": 0.0, "n": 1}}
        >>> within_quarter_r2(by_q)
        0.6
    """
    values = [s["r2"] for s in by_quarter.values() if s["n"] >= min_n and math.isfinite(s["r2"])]
    return float(np.mean(values)) if values else math.nan
