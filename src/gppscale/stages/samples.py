"""The sample table: one row per coarse cell and quarter, pure cells flagged, a blocked split.

:func:`cells_table` flattens the coarse-grid statistics of :func:`~gppscale.stages.aggregate.aggregate_stats`
and the coarse labels (quarterly GPP/NPP sums) into rows, one per cell that the 30 m grid touches and
per quarter. :func:`flag_samples` then marks, per forest type, the pure cells (the paper's lowest 30 %
NDVI coefficient of variation, :func:`~gppscale.stages.purity.select_pure`) and the held-out test cells
(:func:`~gppscale.stages.purity.blocked_split`).

Rules, all per *cell* so that a cell's rows never disagree:

* A cell's type is its majority forest type and its ``type_fraction`` that type's share of the cell's
  typed area; a cell is a purity candidate of that type only.
* A cell's CV is the mean over the run's quarters of its quarterly NDVI CV (quarters with no valid
  NDVI left out), so the same cells are pure in every quarter.
* A cell less than :data:`MIN_COVERAGE` inside the 30 m grid (at the area's edge) is never pure: its
  features describe only part of the area its coarse label stands for.
* The split is drawn separately in each stratum (the pure cells of each type, then all other cells), by
  blocks of ``split.block_cells`` cells, so every type with pure cells in two blocks has test cells, and
  a cell is wholly train or wholly test.

Example:
    >>> import xarray as xr
    >>> from gppscale.config import PuritySpec, SplitSpec
    >>> table = pd.DataFrame({"cell": [0, 1, 2, 3], "row": [0, 0, 1, 1], "col": [0, 1, 0, 1],
    ...     "forest_type": ["DNF"] * 4, "type_fraction": [1.0, 1.0, 0.95, 0.5],
    ...     "ndvi_cv": [0.1, 0.3, 0.2, 0.05], "coverage": [1.0] * 4})
    >>> purity = PuritySpec.model_validate({"*": {"fraction": 0.5, "min_cells": 1}})
    >>> flagged, reports = flag_samples(table, purity, ["DNF"], SplitSpec(block_cells=1))
    >>> flagged.pure.tolist(), reports[0].candidates, reports[0].selected  # cell 3 is half another type
    ([True, False, True, False], 3, 2)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyproj
import xarray as xr
from odc.geo.geobox import GeoBox

from gppscale.config import PuritySpec, SplitSpec
from gppscale.errors import SpecError
from gppscale.stages.forest import FOREST_TYPE_IDS
from gppscale.stages.purity import PurityReport, blocked_split, select_pure
from gppscale.stages.quarters import Quarter

__all__ = [
    "MIN_COVERAGE",
    "STAT_COLUMNS",
    "cell_area_px",
    "cells_table",
    "flag_samples",
    "labels_by_cell",
    "type_counts",
]

MIN_COVERAGE = 0.95
"""Least share of a coarse cell's area inside the 30 m grid (with a known forest type) for it to be pure."""

STAT_COLUMNS = (
    "ndvi_std",
    "ndvi_cv",
    "n_fine",
    "n_typed",
    "forest_type_majority",
    *(f"frac_{name.replace('-', '_')}" for name in FOREST_TYPE_IDS),
)
"""Columns of the aggregation that describe the cell rather than predict GPP (not model features)."""

_TYPE_NAME = {i: name for name, i in FOREST_TYPE_IDS.items()}
F64 = npt.NDArray[np.float64]


def cell_area_px(fine: GeoBox, coarse: GeoBox) -> F64:
    """Area of each coarse cell in fine-pixel units, ``(cy, cx)``.

    The cells' corners go to the fine grid's CRS and each cell's area is that of the quadrilateral
    through them (shoelace), divided by the area of a fine pixel. At 500 m the curvature of a cell's
    edges in another projection changes its area by far less than 1e-6.

    Example:
        >>> from affine import Affine
        >>> fine = GeoBox((4, 4), Affine(30, 0, 0, 0, -30, 120), "EPSG:32650")
        >>> coarse = GeoBox((1, 2), Affine(60, 0, 0, 0, -90, 120), "EPSG:32650")
        >>> cell_area_px(fine, coarse).tolist()  # 60 m x 90 m = 6 pixels of 30 m
        [[6.0, 6.0]]
    """
    if fine.crs is None or coarse.crs is None:
        raise SpecError("cell_area_px needs grids with a CRS")
    rows, cols = np.mgrid[0 : coarse.shape.y + 1, 0 : coarse.shape.x + 1].astype(np.float64)
    x, y = coarse.transform * (cols, rows)
    to_fine = pyproj.Transformer.from_crs(coarse.crs.to_wkt(), fine.crs.to_wkt(), always_xy=True)
    fx, fy = to_fine.transform(np.asarray(x), np.asarray(y))
    # Corners in order around each cell: (r, c), (r, c+1), (r+1, c+1), (r+1, c).
    px = np.stack([fx[:-1, :-1], fx[:-1, 1:], fx[1:, 1:], fx[1:, :-1]])
    py = np.stack([fy[:-1, :-1], fy[:-1, 1:], fy[1:, 1:], fy[1:, :-1]])
    twice = (px * np.roll(py, -1, axis=0) - np.roll(px, -1, axis=0) * py).sum(axis=0)
    pixel = abs(fine.transform.a * fine.transform.e - fine.transform.b * fine.transform.d)
    return np.asarray(np.abs(twice) / 2.0 / pixel, dtype=np.float64)


def _cell_lonlat(coarse: GeoBox) -> tuple[F64, F64]:
    if coarse.crs is None:
        raise SpecError("the coarse grid has no CRS")
    rows, cols = np.mgrid[0 : coarse.shape.y, 0 : coarse.shape.x] + 0.5
    x, y = coarse.transform * (cols, rows)
    to_ll = pyproj.Transformer.from_crs(coarse.crs.to_wkt(), "EPSG:4326", always_xy=True)
    lon, lat = to_ll.transform(np.asarray(x), np.asarray(y))
    return np.asarray(lon, np.float64), np.asarray(lat, np.float64)


def _check_labels(stats: xr.Dataset, labels: Mapping[str, xr.DataArray], n_quarters: int) -> None:
    want = (n_quarters, stats.sizes["cy"], stats.sizes["cx"])
    for name, label in labels.items():
        if label.shape != want:
            raise SpecError(
                f"cells_table: label {name!r} has shape {label.shape}, the statistics {want} "
                "(quarter, cy, cx); load the coarse product on the grid the statistics were aggregated to"
            )


def _layer(da: xr.DataArray, n_quarters: int) -> npt.NDArray[np.generic]:
    """``(quarter, cy, cx)`` values; a static ``(cy, cx)`` layer repeated for every quarter."""
    values = np.asarray(da.values)
    if values.ndim == 2:
        values = np.broadcast_to(values, (n_quarters, *values.shape))
    return values


def cells_table(
    stats: xr.Dataset,
    labels: Mapping[str, xr.DataArray],
    quarters: Sequence[Quarter],
    fine: GeoBox,
    coarse: GeoBox,
) -> pd.DataFrame:
    """Rows of (coarse cell, quarter) for every cell the fine grid reaches, features and labels as columns.

    Args:
        stats: :func:`~gppscale.stages.aggregate.aggregate_stats` output on ``(time, cy, cx)`` (static
            variables on ``(cy, cx)``), computed (NumPy-backed) or small.
        labels: Coarse labels by column name (``gpp``, ``npp``), each ``(time, cy, cx)`` on ``coarse``, in
            gC m-2 quarter-1; matched to ``stats`` by position.
        quarters: The run's quarters, one per ``time`` step.
        fine: The 30 m grid the statistics came from.
        coarse: The coarse grid of ``stats`` and ``labels``.

    Returns:
        One row per cell with ``n_typed > 0`` and quarter: ``quarter`` ("2021Q3"), ``year``, ``q``,
        ``cell`` (``row * width + col``), ``row``, ``col``, ``lon``, ``lat`` (cell centre), every
        variable of ``stats`` under its name, ``forest_type`` (majority type name),
        ``type_fraction`` (its share), ``coverage`` (``n_typed`` / cell area in fine pixels, 0 to 1) and
        the labels. Rows are sorted by quarter then cell.

    Raises:
        SpecError: If a label's shape differs from the statistics or the quarters do not match ``time``.
    """
    n_q, nx = len(quarters), stats.sizes["cx"]
    if "time" in stats.dims and stats.sizes["time"] != n_q:
        raise SpecError(f"cells_table: {stats.sizes['time']} time steps in the statistics, {n_q} quarters")
    _check_labels(stats, labels, n_q)
    area = cell_area_px(fine, coarse)
    n_typed = np.asarray(stats["n_typed"].values, dtype=np.float64)
    if n_typed.ndim != 2:
        raise SpecError(
            f"cells_table: the forest type varies along {stats['n_typed'].dims}; give a static (y, x) map"
        )
    keep = n_typed > 0
    lon, lat = _cell_lonlat(coarse)
    rows, cols = np.nonzero(keep)
    columns: dict[str, npt.ArrayLike] = {
        "quarter": np.repeat([q.label for q in quarters], rows.size),
        "year": np.repeat(np.array([q.year for q in quarters], np.int16), rows.size),
        "q": np.repeat(np.array([q.q for q in quarters], np.int8), rows.size),
        "cell": np.tile((rows * nx + cols).astype(np.int64), n_q),
        "row": np.tile(rows.astype(np.int32), n_q),
        "col": np.tile(cols.astype(np.int32), n_q),
        "lon": np.tile(lon[keep], n_q),
        "lat": np.tile(lat[keep], n_q),
    }
    for name in stats.data_vars:
        columns[str(name)] = _layer(stats[name], n_q)[:, keep].ravel()
    majority = np.asarray(stats["forest_type_majority"].values)[keep]
    # The fill id (255, no typed pixel) never occurs here: kept cells have n_typed > 0.
    names = np.array([_TYPE_NAME[int(i)] for i in majority], dtype=object)
    frac = np.full(majority.shape, np.nan, np.float32)
    for i, name in _TYPE_NAME.items():
        here = majority == i
        frac[here] = np.asarray(stats[f"frac_{name.replace('-', '_')}"].values)[keep][here]
    columns["forest_type"] = np.tile(names, n_q)
    columns["type_fraction"] = np.tile(frac, n_q)
    columns["coverage"] = np.tile(np.minimum(n_typed[keep] / area[keep], 1.0).astype(np.float32), n_q)
    for name, label in labels.items():
        columns[name] = np.asarray(label.values, np.float32)[:, keep].ravel()
    return pd.DataFrame(columns)


def _per_cell(table: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: its type, type fraction, coverage, position and quarter-mean NDVI CV."""
    return table.groupby("cell", sort=True).agg(
        row=("row", "first"),
        col=("col", "first"),
        forest_type=("forest_type", "first"),
        type_fraction=("type_fraction", "first"),
        coverage=("coverage", "first"),
        ndvi_cv=("ndvi_cv", "mean"),  # pandas' mean skips NaN: quarters without NDVI are left out
    )


def _split(cells: pd.DataFrame, stratum: npt.NDArray[np.bool_], split: SplitSpec) -> npt.NDArray[np.bool_]:
    test = np.zeros(len(cells), dtype=np.bool_)
    if stratum.any():
        test[stratum] = blocked_split(
            cells.row.to_numpy()[stratum],
            cells.col.to_numpy()[stratum],
            split.block_cells,
            split.test_fraction,
            split.seed,
        )
    return test


def flag_samples(
    table: pd.DataFrame,
    purity: PuritySpec,
    modelled: Sequence[str],
    split: SplitSpec,
    min_coverage: float = MIN_COVERAGE,
) -> tuple[pd.DataFrame, list[PurityReport]]:
    """Add ``pure`` and ``test`` (booleans, per cell) to a :func:`cells_table`; one report per type.

    Args:
        table: The rows; needs ``cell``, ``row``, ``col``, ``forest_type``, ``type_fraction``,
            ``ndvi_cv`` and ``coverage``.
        purity: Purity parameters per type (``spec.purity``).
        modelled: Forest types that get models (``spec.forest_types.modelled``); other cells are never
            pure.
        split: The blocked split (``spec.split``).
        min_coverage: Least ``coverage`` of a pure cell.

    Returns:
        A copy of ``table`` with ``pure`` and ``test`` columns, and the :class:`PurityReport` of each
        modelled type (a :class:`~gppscale.errors.DataWarning` was issued for a relaxed or skipped type).
    """
    missing = {"cell", "row", "col", "forest_type", "type_fraction", "ndvi_cv", "coverage"} - set(table)
    if missing:
        raise SpecError(f"flag_samples: the table lacks columns {sorted(missing)}; build it with cells_table")
    cells = _per_cell(table)
    cv = cells.ndvi_cv.to_numpy(np.float64).copy()
    cv[cells.coverage.to_numpy() < min_coverage] = np.nan
    pure = np.zeros(len(cells), dtype=np.bool_)
    test = np.zeros(len(cells), dtype=np.bool_)
    reports = []
    for forest_type in modelled:
        of_type = cells.forest_type.to_numpy() == forest_type
        fraction = np.where(of_type, cells.type_fraction.to_numpy(np.float64), 0.0)
        keep, report = select_pure(cv, fraction, purity.for_type(forest_type), forest_type)
        reports.append(report)
        pure |= keep
        test |= _split(cells, keep, split)
    test |= _split(cells, ~pure, split)
    out = table.copy()
    by_cell = pd.DataFrame({"pure": pure, "test": test}, index=cells.index)
    out["pure"] = by_cell.pure.reindex(out.cell).to_numpy()
    out["test"] = by_cell.test.reindex(out.cell).to_numpy()
    return out, reports


def type_counts(table: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Cells per forest type: all, pure, pure in training and pure in test (per cell, not per row).

    Example:
        >>> t = pd.DataFrame({"cell": [0, 0, 1, 2], "forest_type": ["ENF", "ENF", "ENF", "MF"],
        ...                   "pure": [True, True, False, True], "test": [False, False, False, True]})
        >>> type_counts(t)["ENF"]
        {'cells': 2, 'pure': 1, 'train': 1, 'test': 0}
    """
    cells = table.drop_duplicates("cell")
    counts: dict[str, dict[str, int]] = {}
    for name, group in cells.groupby("forest_type", sort=True):
        pure = group.pure.to_numpy(np.bool_)
        test = group.test.to_numpy(np.bool_)
        counts[str(name)] = {
            "cells": len(group),
            "pure": int(pure.sum()),
            "train": int((pure & ~test).sum()),
            "test": int((pure & test).sum()),
        }
    return counts


def labels_by_cell(table: pd.DataFrame, target: str, quarters: Sequence[Quarter], n_cells: int) -> F64:
    """A label column of the table as ``(T, n_cells)`` over the whole coarse grid (NaN where no row).

    Example:
        >>> t = pd.DataFrame({"quarter": ["2021Q2", "2021Q1"], "cell": [2, 0], "gpp": [300.0, 5.0]})
        >>> labels_by_cell(t, "gpp", [Quarter(2021, 1), Quarter(2021, 2)], 3).tolist()
        [[5.0, nan, nan], [nan, nan, 300.0]]
    """
    out = np.full((len(quarters), n_cells), np.nan, np.float64)
    index = {q.label: i for i, q in enumerate(quarters)}
    out[table.quarter.map(index).to_numpy(), table.cell.to_numpy()] = table[target].to_numpy(np.float64)
    return out
