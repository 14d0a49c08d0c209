"""Validation kernels: 3 x 3 windows around points, and scores per forest type and quarter.

Spatial skill is judged within a quarter: :func:`scores_by_type_quarter` scores each (type, quarter)
on its own, and adds, per type, a row pooled over quarters labelled ``"all (pooled: seasonal cycle)"``,
since such a score mostly measures the seasonal cycle. ``md`` is prediction minus observation.

Example:
    >>> values = np.arange(25, dtype=float).reshape(5, 5)
    >>> float(window_mean(values, 2, 2)), float(window_mean(values, 0, 0))  # a corner: NaN (outside)
    (12.0, nan)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyproj
from odc.geo.geobox import GeoBox

from gppscale.errors import SpecError
from gppscale.stages.metrics import bootstrap_scores
from gppscale.stages.quarters import Quarter

__all__ = [
    "ALL_TYPES",
    "POOLED",
    "interval_coverage",
    "point_pixel",
    "sample_pixels",
    "scores_by_type_quarter",
    "window_mean",
]

POOLED = "all (pooled: seasonal cycle)"
"""The ``quarter`` label of rows pooled over quarters."""

ALL_TYPES = "all"
"""The ``forest_type`` label of rows over every scored forest type together (the paper's "overall")."""


def point_pixel(geobox: GeoBox, lon: float, lat: float) -> tuple[int, int]:
    """``(row, col)`` of the pixel holding a lon/lat point (may lie outside the grid).

    Example:
        >>> from affine import Affine
        >>> g = GeoBox((10, 10), Affine(30, 0, 500000, 0, -30, 4650000), "EPSG:32650")
        >>> point_pixel(g, 117.0, 41.99)  # on the central meridian (x = 500000 m), below the 10 rows
        (44, 0)
    """
    if geobox.crs is None:
        raise SpecError("point_pixel: the grid has no CRS")
    x, y = pyproj.Transformer.from_crs("EPSG:4326", geobox.crs.to_wkt(), always_xy=True).transform(lon, lat)
    col, row = ~geobox.transform * (x, y)
    return int(np.floor(row)), int(np.floor(col))


def window_mean(values: npt.ArrayLike, row: int, col: int, half: int = 1) -> npt.NDArray[np.float64]:
    """NaN-aware mean of the ``(2·half+1)²`` window centred on ``(row, col)`` over the last two axes.

    NaN when the window leaves the grid or holds no finite value.
    """
    a = np.asarray(values, np.float64)
    ny, nx = a.shape[-2:]
    if row - half < 0 or col - half < 0 or row + half >= ny or col + half >= nx:
        return np.full(a.shape[:-2], np.nan)
    window = a[..., row - half : row + half + 1, col - half : col + half + 1]
    finite = np.isfinite(window)
    count = finite.sum(axis=(-2, -1))
    total = np.where(finite, window, 0.0).sum(axis=(-2, -1))
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def scores_by_type_quarter(
    prediction: npt.ArrayLike,
    observation: npt.ArrayLike,
    types: npt.ArrayLike,
    quarters: Sequence[Quarter],
    type_ids: Mapping[str, int | Collection[int]],
    *,
    n_boot: int = 200,
    max_pixels: int = 200_000,
    seed: int = 0,
) -> pd.DataFrame:
    """Scores with bootstrap intervals per forest type and quarter, and pooled over quarters per type.

    Args:
        prediction: ``(T, y, x)`` maps being judged (or ``(T, n)`` values at ``n`` sampled pixels).
        observation: ``(T, y, x)`` reference or truth on the same grid (or ``(T, n)``).
        types: ``(y, x)`` forest-type ids (or ``(n,)``).
        quarters: The ``T`` quarters.
        type_ids: Row label → the forest-type id (or ids) its pixels have: the modelled types, and
            e.g. ``{ALL_TYPES: [1, 2, 3, 4]}`` for a row over all of them.
        n_boot: Bootstrap resamples.
        max_pixels: Pixels per (type, quarter) above this are subsampled (seeded) for the intervals.
        seed: Random seed of the subsampling and the bootstrap.

    Returns:
        Columns ``forest_type``, ``quarter`` and those of
        :func:`~gppscale.stages.metrics.bootstrap_scores`.
    """
    p, o, t = np.asarray(prediction), np.asarray(observation), np.asarray(types)
    if p.shape != o.shape or p.shape[1:] != t.shape or p.shape[0] != len(quarters):
        raise SpecError(
            f"scores_by_type_quarter: shapes {p.shape}, {o.shape} and types {t.shape} do not fit "
            f"{len(quarters)} quarters"
        )
    rng = np.random.default_rng(seed)
    rows = []
    for name, type_id in type_ids.items():
        mask = np.isin(t, [type_id] if isinstance(type_id, int | np.integer) else list(type_id))
        if not mask.any():
            continue
        pooled_p, pooled_o = [], []
        for i, q in enumerate(quarters):
            pi, oi = p[i][mask], o[i][mask]
            if pi.size > max_pixels:
                pick = rng.choice(pi.size, max_pixels, replace=False)
                pi, oi = pi[pick], oi[pick]
            pooled_p.append(pi)
            pooled_o.append(oi)
            rows.append(
                {
                    "forest_type": name,
                    "quarter": q.label,
                    **bootstrap_scores(pi, oi, n_boot=n_boot, seed=seed),
                }
            )
        rows.append(
            {
                "forest_type": name,
                "quarter": POOLED,
                **bootstrap_scores(
                    np.concatenate(pooled_p), np.concatenate(pooled_o), n_boot=n_boot, seed=seed
                ),
            }
        )
    return pd.DataFrame(rows)


def sample_pixels(
    types: npt.ArrayLike,
    valid: npt.ArrayLike,
    type_ids: Mapping[str, int],
    max_per_type: int,
    *,
    seed: int = 0,
) -> npt.NDArray[np.intp]:
    """Sorted flat indices of up to ``max_per_type`` valid pixels of each type (seeded; all when fewer).

    Example:
        >>> types = np.array([[1, 1, 1], [2, 0, 1]])
        >>> sample_pixels(types, types > 0, {"ENF": 1, "EBF": 5}, 10).tolist()  # every ENF pixel
        [0, 1, 2, 5]
        >>> len(sample_pixels(types, types > 0, {"ENF": 1, "DBF": 2}, 2))
        3
    """
    t, ok = np.asarray(types).ravel(), np.asarray(valid, bool).ravel()
    if t.shape != ok.shape:
        raise SpecError(f"sample_pixels: types {np.shape(types)} and valid {np.shape(valid)} differ in shape")
    rng = np.random.default_rng(seed)
    picked = []
    for type_id in type_ids.values():
        where = np.flatnonzero((t == type_id) & ok)
        if where.size > max_per_type:
            where = rng.choice(where, max_per_type, replace=False)
        picked.append(where)
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.intp)


def interval_coverage(
    lower: npt.ArrayLike,
    upper: npt.ArrayLike,
    observation: npt.ArrayLike,
    types: npt.ArrayLike,
    quarters: Sequence[Quarter],
    type_ids: Mapping[str, int | Collection[int]],
) -> pd.DataFrame:
    """Share of observations inside ``[lower, upper]`` per forest type and quarter, and pooled per type.

    Pixels where any of the three is NaN are left out. Shapes as in :func:`scores_by_type_quarter`.

    Returns:
        Columns ``forest_type``, ``quarter``, ``coverage`` (0-1), ``mean_width`` (of the interval, in
        the observation's units), ``n``; coverage NaN where ``n`` is 0.

    Example:
        >>> lo, hi = np.array([[0.0, 0.0, 5.0, 0.0]]), np.array([[2.0, 2.0, 6.0, 4.0]])
        >>> obs, types = np.array([[1.0, 3.0, 5.5, np.nan]]), np.array([1, 1, 2, 2])
        >>> t = interval_coverage(lo, hi, obs, types, [Quarter(2021, 2)], {"ENF": 1, "all": [1, 2]})
        >>> t[["forest_type", "quarter", "coverage", "mean_width", "n"]].round(3).values.tolist()[::2]
        [['ENF', '2021Q2', 0.5, 2.0, 2], ['all', '2021Q2', 0.667, 1.667, 3]]
    """
    lo, hi, o, t = (np.asarray(a, np.float64) for a in (lower, upper, observation, types))
    if not (lo.shape == hi.shape == o.shape) or o.shape[1:] != t.shape or o.shape[0] != len(quarters):
        raise SpecError(
            f"interval_coverage: shapes {lo.shape}, {hi.shape}, {o.shape} and types {t.shape} do not fit "
            f"{len(quarters)} quarters"
        )
    ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(o)
    inside = ok & (o >= lo) & (o <= hi)
    width = np.where(ok, hi - lo, 0.0)
    rows = []
    for name, type_id in type_ids.items():
        mask = np.isin(t, [type_id] if isinstance(type_id, int | np.integer) else list(type_id))
        if not mask.any():
            continue
        picks = [*((q.label, [i]) for i, q in enumerate(quarters)), (POOLED, list(range(len(quarters))))]
        for label, pick in picks:
            n = int(ok[pick][:, mask].sum())
            rows.append(
                {
                    "forest_type": name,
                    "quarter": label,
                    "coverage": float(inside[pick][:, mask].sum() / n) if n else float("nan"),
                    "mean_width": float(width[pick][:, mask].sum() / n) if n else float("nan"),
                    "n": n,
                }
            )
    return pd.DataFrame(rows)
