"""Agreement between predictions and observations: R², RMSE, mean difference and count.

``r2`` is the coefficient of determination ``1 - SSE / SST`` around the observations' mean (it can be
negative: worse than predicting the mean), not the squared correlation, which forgives any bias and
scale error. ``md`` is the mean of ``prediction - observation`` (positive = overestimate). Only pairs
where both values are finite count. A score pooled over quarters mostly measures the seasonal cycle, so
:func:`scores_by_quarter` scores each quarter on its own and :func:`within_quarter_r2` measures the
variance explained around each quarter's mean.

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

__all__ = ["bootstrap_scores", "scores", "scores_by_quarter", "within_quarter_r2"]

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


def within_quarter_r2(prediction: npt.ArrayLike, observation: npt.ArrayLike) -> float:
    """R² around each quarter's own mean: ``1 - Σ SSE / Σ SST`` with both sums over every quarter.

    The last axis is the quarter. Each quarter's observations are centred on that quarter's mean, so the
    seasonal cycle explains nothing; summing squares before dividing keeps a quarter with little spread
    (winter) from dominating, as an average of per-quarter R² would. NaN when no quarter has spread.

    Example:
        >>> obs = np.array([[1.0, 100.0], [3.0, 300.0]])  # two cells, two quarters
        >>> within_quarter_r2(obs, obs), within_quarter_r2([[2.0, 200.0], [2.0, 200.0]], obs)
        (1.0, 0.0)
    """
    p = np.asarray(prediction, np.float64)
    o = np.asarray(observation, np.float64)
    if p.shape != o.shape or p.ndim == 0:
        raise SpecError(f"within_quarter_r2: shapes {p.shape} and {o.shape} must match, quarters last")
    ok = np.isfinite(p) & np.isfinite(o)
    o_flat, p_flat, ok_flat = (a.reshape(-1, a.shape[-1]) for a in (o, p, ok))
    sse = sst = 0.0
    for q in range(o_flat.shape[1]):
        oq, pq = o_flat[ok_flat[:, q], q], p_flat[ok_flat[:, q], q]
        if oq.size >= 2:
            sse += float(((pq - oq) ** 2).sum())
            sst += float(((oq - oq.mean()) ** 2).sum())
    return 1.0 - sse / sst if sst > 0 else math.nan


def bootstrap_scores(
    prediction: npt.ArrayLike,
    observation: npt.ArrayLike,
    *,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
    max_n: int = 20_000,
) -> dict[str, float]:
    """:func:`scores` plus percentile bootstrap intervals (``r2_lo``, ``r2_hi``, ``rmse_lo`` … ``md_hi``).

    Pairs are resampled with replacement ``n_boot`` times (seeded); the interval is the central
    ``level`` of the resampled scores. With fewer than 3 pairs the intervals are NaN. Above ``max_n``
    pairs the intervals come from a seeded subsample of ``max_n`` pairs (the point scores use them all),
    which keeps the cost bounded; such intervals are wider than the full sample's would be.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> obs = rng.normal(100, 20, 500)
        >>> s = bootstrap_scores(obs + rng.normal(0, 5, 500), obs)
        >>> s["r2_lo"] <= s["r2"] <= s["r2_hi"], s["n"]
        (True, 500)
    """
    p = np.asarray(prediction, np.float64).ravel()
    o = np.asarray(observation, np.float64).ravel()
    point: dict[str, float] = dict(scores(p, o))
    ok = np.isfinite(p) & np.isfinite(o)
    p, o = p[ok], o[ok]
    names = ("r2", "rmse", "md")
    if p.size < 3:
        return {**point, **{f"{k}_{e}": math.nan for k in names for e in ("lo", "hi")}}
    rng = np.random.default_rng(seed)
    if p.size > max_n:
        keep = rng.choice(p.size, max_n, replace=False)
        p, o = p[keep], o[keep]
    draws = rng.integers(0, p.size, size=(n_boot, p.size))
    err = p[draws] - o[draws]
    ob = o[draws]
    sst = ((ob - ob.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    sse = (err**2).sum(axis=1)
    boot = {
        "r2": np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0), np.nan),
        "rmse": np.sqrt((err**2).mean(axis=1)),
        "md": err.mean(axis=1),
    }
    tail = (1.0 - level) / 2.0 * 100.0
    for name in names:
        values = boot[name][np.isfinite(boot[name])]
        lo, hi = np.percentile(values, [tail, 100.0 - tail]) if values.size else (math.nan, math.nan)
        point[f"{name}_lo"], point[f"{name}_hi"] = float(lo), float(hi)
    return point
