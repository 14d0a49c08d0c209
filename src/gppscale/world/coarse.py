"""The coarse product: truth aggregated by area onto the MODIS sinusoidal grid, with bias and noise.

The world's own fine-to-coarse operator (independent of the method's): every 30 m pixel is split into
``s x s`` sub-pixels whose centres are projected to the sinusoidal CRS and binned into 463 m cells; a cell's
value is the mean over its sub-pixels, i.e. an area-weighted mean with weights exact to ``1 / s**2`` of a
pixel. Cells not entirely inside the simulated world get nodata.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from pyproj import Transformer

from gppscale.world.grids import Grid

__all__ = ["CoarseOperator", "encode_uint16"]

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class CoarseOperator:
    """Sparse area weights from a fine grid to a coarse grid; rows are coarse cells (row-major)."""

    coarse: Grid
    weights: sp.csr_matrix  # (n_coarse, n_fine), each complete row sums to 1
    complete: npt.NDArray[np.bool_]  # (coarse.height, coarse.width)

    @staticmethod
    def build(fine: Grid, coarse: Grid, sub: int = 3, rows_per_block: int = 256) -> CoarseOperator:
        """Weights by ``sub x sub`` supersampling, built a block of fine rows at a time."""
        tr = Transformer.from_crs(fine.crs, coarse.crs, always_xy=True)
        offs = (np.arange(sub) + 0.5) / sub
        blocks = []
        for r0 in range(0, fine.height, rows_per_block):
            r1 = min(r0 + rows_per_block, fine.height)
            sx = fine.x0 + (np.arange(fine.width)[:, None] + offs[None, :]).ravel() * fine.res_x
            sy = fine.y0 - (np.arange(r0, r1)[:, None] + offs[None, :]).ravel() * fine.res_y
            gx, gy = np.meshgrid(sx, sy)
            cx, cy = tr.transform(gx, gy)
            col = np.floor((cx - coarse.x0) / coarse.res_x).astype(np.int64)
            row = np.floor((coarse.y0 - cy) / coarse.res_y).astype(np.int64)
            inside = (col >= 0) & (col < coarse.width) & (row >= 0) & (row < coarse.height)
            fine_idx = (r0 + np.arange(gy.shape[0])[:, None] // sub) * fine.width + (
                np.arange(gx.shape[1])[None, :] // sub
            )
            cell = row * coarse.width + col
            # CSR sums the s*s duplicate entries of each pixel at once, keeping memory near 1-2 per pixel.
            blocks.append(
                sp.csr_matrix(
                    (np.ones(int(inside.sum())), (cell[inside], fine_idx[inside])),
                    shape=(coarse.width * coarse.height, fine.width * fine.height),
                )
            )
        counts = sp.csr_matrix(sum(blocks[1:], blocks[0]))
        complete = _complete_cells(fine, coarse)
        total = np.asarray(counts.sum(axis=1)).ravel()
        norm = np.where(total > 0, 1.0 / np.maximum(total, 1), 0.0)
        weights = sp.csr_matrix(sp.diags(norm) @ counts)
        return CoarseOperator(coarse, weights, complete)

    def apply(self, fine_values: F32) -> F32:
        """Area-weighted mean of a fine field per coarse cell; NaN where the cell is incomplete."""
        flat = np.asarray(fine_values, dtype=np.float64).ravel()
        out = (self.weights @ flat).reshape(self.coarse.shape)
        return np.where(self.complete, out, np.nan).astype(np.float32)


def _complete_cells(fine: Grid, coarse: Grid, n_edge: int = 8) -> npt.NDArray[np.bool_]:
    """Cells whose whole outline (sampled densely) falls inside the fine grid."""
    tr = Transformer.from_crs(coarse.crs, fine.crs, always_xy=True)
    t = np.linspace(0.0, 1.0, n_edge, endpoint=False)
    ux = np.concatenate([t, np.ones_like(t), 1.0 - t, np.zeros_like(t)])
    uy = np.concatenate([np.zeros_like(t), t, np.ones_like(t), 1.0 - t])
    cols, rows = np.meshgrid(np.arange(coarse.width), np.arange(coarse.height))
    x = coarse.x0 + (cols[..., None] + ux) * coarse.res_x
    y = coarse.y0 - (rows[..., None] + uy) * coarse.res_y
    fx, fy = tr.transform(x, y)
    w, s, e, n = fine.bounds
    inside = (fx > w) & (fx < e) & (fy > s) & (fy < n)
    return np.asarray(inside.all(axis=-1))


def encode_uint16(values: F32, scale: float, nodata: int) -> npt.NDArray[np.uint16]:
    """Quantise physical values to ``round(v / scale)`` uint16, NaN -> nodata, clipped below nodata."""
    q = np.round(np.nan_to_num(values, nan=0.0) / scale)
    q = np.clip(q, 0, nodata - 1)
    return np.where(np.isnan(values), nodata, q).astype(np.uint16)
