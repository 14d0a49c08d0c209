"""Bags for aggregate-aware training: covered coarse cells with every 30 m pixel in them, from the run store.

A bag is one coarse cell: its coarse GPP/NPP per quarter and all fine pixels with their area weights
(:func:`gppscale.stages.aggregate.fine_to_coarse_chunk`), predictor sequences and land-cover classes
(:func:`gppscale.stages.landclass.pixel_classes`). Cells count when the run's area covers at least
``min_coverage`` of them, pure or mixed. Pixels straddling two cells sit in both bags with their shares.

The cube is read one variable at a time and cut to the bags' pixels at once, so the peak is one full
variable plus the bags.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse
from odc.geo.geobox import GeoBox

from gppscale.errors import NoDataError
from gppscale.io.store import CUBE_REL, RunStore
from gppscale.stages.aggregate import fine_to_coarse_chunk
from gppscale.stages.features import cube_to_sequences
from gppscale.stages.landclass import N_CLASSES, pixel_classes
from gppscale.stages.quarters import Quarter
from gppscale.stages.samples import labels_by_cell

__all__ = ["CellBags", "cube_at_pixels", "read_bags"]


@dataclass(frozen=True)
class CellBags:
    """The bags of one target and which of them are test cells.

    Attributes:
        bags: :class:`gppscale.models.aggregate.Bags` of the covered cells.
        cells: Flat coarse-cell index of each bag ``(n_cells,)``.
        test: True for the bags of test cells (the samples stage's blocked split).
        pixels: Flat fine-pixel index of each bag pixel ``(n_px,)``.
    """

    bags: Any  # gppscale.models.aggregate.Bags (torch is imported lazily)
    cells: npt.NDArray[np.int64]
    test: npt.NDArray[np.bool_]
    pixels: npt.NDArray[np.int64]


def cube_at_pixels(
    store: RunStore, names: Sequence[str], index: npt.NDArray[np.integer[Any]]
) -> dict[str, npt.NDArray[Any]]:
    """Cube variables at flat pixel indices: ``(T, n)`` for quarterly ones, ``(n,)`` for static ones.

    Raises:
        StoreError: If the cube is missing or unfinished.
    """
    from gppscale.io.regions import open_complete

    cube = open_complete(store, CUBE_REL, what="the predictor cube", fix="run `gppscale cube SPEC` first")
    out = {}
    for name in names:
        values = np.asarray(cube[name].values)
        flat = values.reshape(values.shape[0], -1) if values.ndim == 3 else values.reshape(1, -1)
        picked = flat[:, index]
        out[name] = picked if values.ndim == 3 else picked[0]
    return out


def read_bags(
    store: RunStore,
    fine: GeoBox,
    coarse: GeoBox,
    table: pd.DataFrame,
    predictors: Sequence[str],
    quarters: Sequence[Quarter],
    target: str,
    *,
    min_coverage: float = 0.95,
) -> CellBags:
    """The bags of every covered cell with a ``target`` label, read from the run's cube and samples.

    Raises:
        NoDataError: If no cell is covered enough and labelled.
    """
    from gppscale.models.aggregate import Bags

    n_coarse = coarse.shape.y * coarse.shape.x
    labels = labels_by_cell(table, target, quarters, n_coarse).T  # (n_coarse, T)
    per_cell = table.drop_duplicates("cell").set_index("cell")
    covered = per_cell.index[(per_cell.coverage >= min_coverage).to_numpy()].to_numpy(np.int64)
    cells = np.sort(covered[np.isfinite(labels[covered]).any(axis=1)])
    if cells.size == 0:
        raise NoDataError(
            f"no coarse cell is covered to {min_coverage:.0%} by the run's area and labelled with "
            f"{target}; enlarge the area or lower the coverage rule"
        )
    weights = fine_to_coarse_chunk(fine, coarse, slice(None), slice(None))[cells]
    pixels = np.unique(weights.indices).astype(np.int64)
    weights = scipy.sparse.csr_matrix(weights[:, pixels], dtype=np.float32)
    layers = cube_at_pixels(store, [*predictors, "land_cover", "forest_type"], pixels)
    classes = pixel_classes(layers.pop("land_cover"), layers.pop("forest_type"))
    x = cube_to_sequences(layers, predictors, quarters)
    test = per_cell.loc[cells, "test"].to_numpy(bool)
    bags = Bags(x, classes, weights, np.asarray(labels[cells], np.float32), N_CLASSES)
    return CellBags(bags, cells, test, pixels)
