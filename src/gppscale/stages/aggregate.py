"""Fine→coarse aggregation: area weights between the 30 m grid and a coarse grid, weighted means and stats.

The coarse grid (MODIS sinusoidal 463.312716525 m for GLASS) is not a multiple of the 30 m grid, may be
in another CRS and may have any affine transform (sheared too), so the 30 m pixels are never block-
coarsened. Instead each 30 m pixel is split into ``s x s`` sub-points (``s = supersample``, default 5) at
the centres of an even sub-grid; their coordinates go to the coarse CRS (pyproj, vectorised) and through
the inverse coarse affine to a coarse ``(row, col)``. The weight of fine pixel ``p`` in coarse cell ``c``
is the number of ``p``'s sub-points that fall in ``c`` divided by ``s²``; a fine pixel partly outside the
coarse grid keeps weights summing to less than 1. The weights of a chunk of the fine grid form a sparse
matrix (coarse cells flattened row-major over the whole coarse grid, by fine pixels of the chunk flattened
row-major), built without Python loops (:func:`fine_to_coarse_chunk`).

A weighted mean over a coarse cell is ``Σ w·v / Σ w`` over the fine pixels whose value is finite
(:func:`aggregate_chunk` gives both sums for one chunk). The wrappers map every y/x chunk of a dask
array to these partial sums on the whole coarse grid and add the partials with dask's tree reduction, so
the graph grows linearly with the number of chunks and a chunk's weights are built once, whatever the
number of variables and time steps.

Example:
    >>> from affine import Affine
    >>> fine = GeoBox((1, 3), Affine(30, 0, 0, 0, -30, 30), "EPSG:32650")
    >>> coarse = GeoBox((1, 2), Affine(45, 0, 0, 0, -30, 30), "EPSG:32650")
    >>> w = fine_to_coarse_chunk(fine, coarse, slice(None), slice(None), supersample=2)
    >>> w.toarray().tolist()  # the middle pixel straddles the edge at x = 45 m
    [[1.0, 0.5, 0.0], [0.0, 0.5, 1.0]]
"""

from __future__ import annotations

import itertools
import threading
import types
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import dask.array as dsa
import numpy as np
import numpy.typing as npt
import pyproj
import scipy.sparse
import xarray as xr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
from odc.geo.geobox import GeoBox

from gppscale.errors import SpecError
from gppscale.stages.forest import FOREST_TYPE_FILL, FOREST_TYPE_IDS
from gppscale.stages.georef import spatial_ref

__all__ = [
    "DEFAULT_SUPERSAMPLE",
    "aggregate_chunk",
    "aggregate_mean",
    "aggregate_stats",
    "fine_to_coarse_chunk",
    "pixel_cells",
]

DEFAULT_SUPERSAMPLE = 5
"""Sub-points per fine pixel side: 25 sub-points per 30 m pixel (6 m spacing)."""

_NUMPY_CHUNK_PX = 512
"""Side of the blocks an in-memory (NumPy) input is aggregated in, to bound the sub-point arrays."""

F64 = npt.NDArray[np.float64]
Array = Any  # a NumPy or a dask array

_TYPE_NAMES = {i: name.replace("-", "_") for name, i in FOREST_TYPE_IDS.items()}


# --- weights ---------------------------------------------------------------------------------------


def _resolve_slice(sl: slice, n: int, what: str) -> tuple[int, int]:
    start, stop, step = sl.indices(n)
    if step != 1 or stop <= start:
        raise SpecError(
            f"{what} {sl!r} selects no contiguous run of the fine grid's {n} pixels; give a slice with "
            "step 1 and start < stop"
        )
    return start, stop


def _subpoints_xy(fine: GeoBox, rows: tuple[int, int], cols: tuple[int, int], s: int) -> tuple[F64, F64]:
    """Fine-CRS coordinates of the ``s x s`` sub-point centres of every pixel of a chunk.

    Ordered pixel by pixel (row-major within the chunk), then sub-point by sub-point, so sub-point ``k``
    belongs to the chunk's pixel ``k // s²``.
    """
    offsets = (np.arange(s, dtype=np.float64) + 0.5) / s
    r = np.arange(*rows, dtype=np.float64)[:, None, None, None] + offsets[None, None, :, None]
    c = np.arange(*cols, dtype=np.float64)[None, :, None, None] + offsets[None, None, None, :]
    shape = (rows[1] - rows[0], cols[1] - cols[0], s, s)
    r, c = np.broadcast_to(r, shape).ravel(), np.broadcast_to(c, shape).ravel()
    t = fine.transform
    return t.a * c + t.b * r + t.c, t.d * c + t.e * r + t.f


_PER_THREAD = threading.local()


def _transformer(src_wkt: str, dst_wkt: str) -> pyproj.Transformer:
    """A Transformer cached per thread: building one costs ~10 ms, and one object is not shared by threads."""
    cache: dict[tuple[str, str], pyproj.Transformer] = _PER_THREAD.__dict__.setdefault("transformers", {})
    if (src_wkt, dst_wkt) not in cache:
        cache[src_wkt, dst_wkt] = pyproj.Transformer.from_crs(src_wkt, dst_wkt, always_xy=True)
    return cache[src_wkt, dst_wkt]


def _coarse_cell_of(x: F64, y: F64, fine: GeoBox, coarse: GeoBox) -> npt.NDArray[np.int64]:
    """Flat (row-major) coarse cell index of fine-CRS points; -1 outside the coarse grid."""
    if fine.crs is None or coarse.crs is None:
        raise SpecError("fine_to_coarse_chunk: both GeoBoxes need a CRS; build them with crs=...")
    if fine.crs != coarse.crs:
        to_coarse = _transformer(fine.crs.to_wkt(), coarse.crs.to_wkt())
        x, y = to_coarse.transform(x, y, inplace=True)
    inv = ~coarse.transform
    col = np.floor(inv.a * x + inv.b * y + inv.c)
    row = np.floor(inv.d * x + inv.e * y + inv.f)
    ny, nx = coarse.shape
    # Non-finite results (points pyproj cannot project) fail these comparisons too.
    inside = (row >= 0) & (row < ny) & (col >= 0) & (col < nx)
    flat = np.where(inside, row, 0).astype(np.int64) * nx + np.where(inside, col, 0).astype(np.int64)
    return np.where(inside, flat, -1)


def fine_to_coarse_chunk(
    fine_geobox: GeoBox,
    coarse_geobox: GeoBox,
    y_slice: slice,
    x_slice: slice,
    supersample: int = DEFAULT_SUPERSAMPLE,
) -> scipy.sparse.csr_matrix:
    """Area weights from the fine pixels of one chunk to every cell of the coarse grid.

    Args:
        fine_geobox: The fine (30 m) grid.
        coarse_geobox: The coarse grid: any CRS (WKT without EPSG code too), any affine transform.
        y_slice: Rows of the fine grid in the chunk (step 1; ``slice(None)`` for all).
        x_slice: Columns of the fine grid in the chunk.
        supersample: Sub-points per fine pixel side (``s``); a weight is a multiple of ``1 / s²``.

    Returns:
        CSR matrix (float64) of shape ``(coarse ny * nx, chunk ny * nx)``: entry ``[c, p]`` is the share of
        fine pixel ``p`` (row-major within the chunk) that lies in coarse cell ``c`` (row-major over the
        whole coarse grid). A column sums to 1 where the pixel lies wholly inside the coarse grid; a row
        sums to the cell's area in fine-pixel units (within the supersampling error).

    Raises:
        SpecError: If ``supersample`` < 1, a slice is empty or strided, or a GeoBox has no CRS.

    Example:
        >>> from affine import Affine
        >>> fine = GeoBox((2, 2), Affine(30, 0, 0, 0, -30, 60), "EPSG:32650")
        >>> coarse = GeoBox((1, 1), Affine(60, 0, 0, 0, -60, 60), "EPSG:32650")
        >>> fine_to_coarse_chunk(fine, coarse, slice(0, 1), slice(None)).toarray().tolist()
        [[1.0, 1.0]]
    """
    if int(supersample) < 1:
        raise SpecError(f"supersample {supersample!r} must be >= 1 (sub-points per fine pixel side)")
    s = int(supersample)
    rows = _resolve_slice(y_slice, fine_geobox.shape.y, "y_slice")
    cols = _resolve_slice(x_slice, fine_geobox.shape.x, "x_slice")
    n_fine = (rows[1] - rows[0]) * (cols[1] - cols[0])
    x, y = _subpoints_xy(fine_geobox, rows, cols, s)
    cell = _coarse_cell_of(x, y, fine_geobox, coarse_geobox)
    pixel = np.arange(cell.size, dtype=np.int64) // (s * s)
    inside = cell >= 0
    n_coarse = coarse_geobox.shape.y * coarse_geobox.shape.x
    # Counting sub-points in integers (duplicates summed by the CSR conversion) and dividing once keeps
    # every weight an exact k / s², identical however the fine grid is chunked.
    counts = scipy.sparse.coo_matrix(
        (np.ones(int(inside.sum()), dtype=np.int32), (cell[inside], pixel[inside])), shape=(n_coarse, n_fine)
    ).tocsr()
    weights = scipy.sparse.csr_matrix(
        (counts.data / float(s * s), counts.indices, counts.indptr), shape=counts.shape
    )
    weights.sort_indices()
    return weights


def pixel_cells(
    fine_geobox: GeoBox, coarse_geobox: GeoBox, y_slice: slice = slice(None), x_slice: slice = slice(None)
) -> npt.NDArray[np.int64]:
    """The coarse cell (flat, row-major; -1 outside the grid) holding each fine pixel's centre.

    Returns an array shaped like the window ``(rows, cols)`` of the fine grid.

    Example:
        >>> from affine import Affine
        >>> fine = GeoBox((1, 4), Affine(30, 0, 0, 0, -30, 30), "EPSG:32650")
        >>> coarse = GeoBox((1, 2), Affine(40, 0, 0, 0, -30, 30), "EPSG:32650")
        >>> pixel_cells(fine, coarse).tolist()  # pixel centres at x = 15, 45, 75 and 105 m
        [[0, 1, 1, -1]]
    """
    rows = _resolve_slice(y_slice, fine_geobox.shape.y, "y_slice")
    cols = _resolve_slice(x_slice, fine_geobox.shape.x, "x_slice")
    x, y = _subpoints_xy(fine_geobox, rows, cols, 1)
    cell = _coarse_cell_of(x, y, fine_geobox, coarse_geobox)
    return cell.reshape(rows[1] - rows[0], cols[1] - cols[0])


# --- kernel ----------------------------------------------------------------------------------------


def aggregate_chunk(weights_csr: scipy.sparse.csr_matrix, values_tyx_chunk: npt.ArrayLike) -> tuple[F64, F64]:
    """Weighted sums and sums of weights of one fine chunk over the coarse cells, NaN-aware.

    Args:
        weights_csr: Weights of the chunk, ``(n_coarse, ny * nx)`` (:func:`fine_to_coarse_chunk`).
        values_tyx_chunk: Fine values ``(t, ny, nx)``; NaN (or ±inf) counts neither in the sum nor in the
            weight.

    Returns:
        ``(weighted_sum, weight_sum)``, each float64 ``(t, n_coarse)``: ``Σ w·v`` and ``Σ w`` over the
        chunk's pixels with a finite value.

    Raises:
        SpecError: If the values are not 3-D or their pixel count differs from the weights' columns.

    Example:
        >>> w = scipy.sparse.csr_matrix(np.array([[1.0, 0.5, 0.0], [0.0, 0.5, 1.0]]))
        >>> s, n = aggregate_chunk(w, np.array([[[2.0, 4.0, np.nan]]]))
        >>> s.tolist(), n.tolist()
        ([[4.0, 2.0]], [[1.5, 0.5]])
    """
    values = np.asarray(values_tyx_chunk)
    if values.ndim != 3 or values.shape[1] * values.shape[2] != weights_csr.shape[1]:
        raise SpecError(
            f"aggregate_chunk: values of shape {values.shape} do not match weights for "
            f"{weights_csr.shape[1]} fine pixels; give (t, ny, nx) values of the chunk the weights were "
            "built for"
        )
    flat = values.reshape(values.shape[0], -1)
    valid = np.isfinite(flat)
    filled = np.where(valid, flat, 0).astype(np.float64)
    weighted_sum = np.asarray(weights_csr @ filled.T, dtype=np.float64).T
    weight_sum = np.asarray(weights_csr @ valid.T.astype(np.float64), dtype=np.float64).T
    return np.ascontiguousarray(weighted_sum), np.ascontiguousarray(weight_sum)


def _partial_block(weights_csr: scipy.sparse.csr_matrix, layers_lyx: npt.ArrayLike) -> F64:
    """Both sums of one chunk as one dask block ``(2, l, 1, 1, n_coarse)``."""
    weighted_sum, weight_sum = aggregate_chunk(weights_csr, layers_lyx)
    return np.stack([weighted_sum, weight_sum])[:, :, None, None, :]


# --- reduction over the chunks ---------------------------------------------------------------------


def _starts(chunks: Sequence[int]) -> list[tuple[int, int]]:
    edges = np.concatenate([[0], np.cumsum(chunks)]).tolist()
    return list(itertools.pairwise(edges))


def _grid_token(fine: GeoBox, coarse: GeoBox, s: int) -> str:
    def key(g: GeoBox) -> tuple[Any, ...]:
        return (tuple(g.shape), tuple(g.transform), g.crs.to_wkt() if g.crs is not None else None)

    return str(tokenize(key(fine), key(coarse), s))


def _weights_graph(
    fine: GeoBox, coarse: GeoBox, s: int, chunks_yx: tuple[Sequence[int], Sequence[int]]
) -> tuple[str, dict[Any, Any]]:
    """One task per y/x chunk building its weights: ``(name, {(name, i, j): task})``."""
    ys, xs = _starts(chunks_yx[0]), _starts(chunks_yx[1])
    name = f"aggregate-weights-{tokenize(_grid_token(fine, coarse, s), chunks_yx)}"
    tasks = {
        (name, i, j): (fine_to_coarse_chunk, fine, coarse, slice(*y), slice(*x), s)
        for i, y in enumerate(ys)
        for j, x in enumerate(xs)
    }
    return name, tasks


def _sums_dask(stack: Array, weights: tuple[str, dict[Any, Any]], n_coarse: int) -> tuple[Array, Array]:
    """Sums ``(l, n_coarse)`` of a dask ``(l, y, x)`` stack, lazy, one chunk along the cells.

    Every partial task of a y/x chunk reads that chunk's weights task, so the weights are built once per
    chunk for all stacks (the weights layer has the same name and tasks in every stack's graph); the
    partials ``(2, l, 1, 1, n_coarse)`` are then added by dask's tree reduction over the chunk axes, so
    the task count grows linearly with the number of chunks.
    """
    w_name, w_tasks = weights
    chunks_l, chunks_y, chunks_x = stack.chunks
    p_name = f"aggregate-partial-{tokenize(stack.name, w_name)}"
    partials: dict[Any, Any] = {
        (p_name, 0, k, i, j, 0): (_partial_block, (w_name, i, j), (stack.name, k, i, j))
        for k in range(len(chunks_l))
        for i in range(len(chunks_y))
        for j in range(len(chunks_x))
    }
    layers = {**stack.dask.layers, w_name: w_tasks, p_name: partials}
    deps = {**stack.dask.dependencies, w_name: set(), p_name: {w_name, *stack.__dask_layers__()}}
    chunks = ((2,), chunks_l, (1,) * len(chunks_y), (1,) * len(chunks_x), (n_coarse,))
    partial = dsa.Array(  # type: ignore[no-untyped-call,unused-ignore]
        HighLevelGraph(layers, deps), p_name, chunks, dtype=np.float64, meta=np.empty((0,) * 5, np.float64)
    )
    total = partial.sum(axis=(2, 3))  # type: ignore[no-untyped-call,unused-ignore]
    return total[0], total[1]


def _blocks(n: int) -> list[tuple[int, int]]:
    return _starts([min(_NUMPY_CHUNK_PX, n - i) for i in range(0, n, _NUMPY_CHUNK_PX)])


def _sums_numpy(
    stacks: list[npt.NDArray[Any]], fine: GeoBox, coarse: GeoBox, s: int
) -> list[tuple[F64, F64]]:
    """Sums ``(l, n_coarse)`` of in-memory ``(l, y, x)`` stacks, block by block (one weights per block)."""
    n_coarse = coarse.shape.y * coarse.shape.x
    sums = [(np.zeros((a.shape[0], n_coarse)), np.zeros((a.shape[0], n_coarse))) for a in stacks]
    for y0, y1 in _blocks(fine.shape.y):
        for x0, x1 in _blocks(fine.shape.x):
            w = fine_to_coarse_chunk(fine, coarse, slice(y0, y1), slice(x0, x1), s)
            for stack, (weighted, weight) in zip(stacks, sums, strict=True):
                a, b = aggregate_chunk(w, stack[:, y0:y1, x0:x1])
                weighted += a
                weight += b
    return sums


def _layer_sums(stacks: list[Array], fine: GeoBox, coarse: GeoBox, s: int) -> list[tuple[Array, Array]]:
    """``(Σ w·v, Σ w)`` over valid pixels, ``(l, n_coarse)`` each, for every ``(l, y, x)`` stack.

    NumPy stacks give NumPy sums; if any stack is a dask array all are aggregated lazily, on the y/x
    chunks of the first dask stack.
    """
    lazy = [a for a in stacks if isinstance(a, dsa.Array)]
    if not lazy:
        return _sums_numpy([np.asarray(a) for a in stacks], fine, coarse, s)
    cy, cx = lazy[0].chunks[1:]
    weights = _weights_graph(fine, coarse, s, (cy, cx))
    n_coarse = coarse.shape.y * coarse.shape.x
    return [_sums_dask(_on_chunks(a, (cy, cx)), weights, n_coarse) for a in stacks]


def _on_chunks(stack: Array, chunks_yx: tuple[Sequence[int], Sequence[int]]) -> Array:
    if isinstance(stack, dsa.Array):
        return stack.rechunk({1: chunks_yx[0], 2: chunks_yx[1]})  # type: ignore[no-untyped-call,unused-ignore]
    return dsa.from_array(stack, chunks=(-1, *chunks_yx))  # type: ignore[no-untyped-call,unused-ignore]


# --- xarray wrappers -------------------------------------------------------------------------------


def _check_grids(fine: GeoBox, coarse: GeoBox, supersample: int) -> int:
    if fine.crs is None or coarse.crs is None:
        raise SpecError("aggregation needs GeoBoxes with a CRS (fine_geobox and coarse_geobox)")
    if int(supersample) < 1:
        raise SpecError(f"supersample {supersample!r} must be >= 1 (sub-points per fine pixel side)")
    return int(supersample)


def _check_fine(da: xr.DataArray, fine: GeoBox, what: str) -> None:
    """Dims ``(lead?, y, x)`` and the fine grid's shape (and its coordinates where both have them)."""
    if "y" not in da.dims or "x" not in da.dims or da.ndim > 3:
        raise SpecError(
            f"{what} has dims {da.dims}; aggregation needs (y, x) or (one other dim, y, x) on the fine grid"
        )
    shape = (da.sizes["y"], da.sizes["x"])
    if shape != tuple(fine.shape):
        raise SpecError(
            f"{what} has shape (y, x) = {shape} but fine_geobox has {tuple(fine.shape)}; pass the GeoBox "
            "of the grid the data is on"
        )
    if fine.axis_aligned and "x" in da.coords and "y" in da.coords:
        ref = fine.coords
        for dim in ("y", "x"):
            got = np.asarray(da[dim].values, np.float64)[[0, -1]]
            want = np.asarray(ref[dim].values, np.float64)[[0, -1]]
            if not np.allclose(got, want, atol=1e-6 * abs(fine.resolution.x)):
                raise SpecError(
                    f"{what}: {dim} coordinates run {got.tolist()} but fine_geobox's run {want.tolist()}; "
                    "pass the GeoBox of the grid the data is on"
                )


def _lead_dim(da: xr.DataArray) -> Hashable | None:
    lead = [d for d in da.dims if d not in ("y", "x")]
    return lead[0] if lead else None


def _layers_of(da: xr.DataArray, dtype: type[np.generic] | None = np.float32) -> Array:
    """``da``'s data as ``(l, y, x)`` (l = 1 without a leading dim), cast to ``dtype`` unless None."""
    lead = _lead_dim(da)
    data = da.transpose(*([lead] if lead is not None else []), "y", "x").data
    data = data.astype(dtype) if dtype is not None else data
    return data if lead is not None else data[None]


def _coarse_coords(coarse: GeoBox) -> dict[Hashable, Any]:
    """``cy``/``cx`` cell-centre coordinates (2-D ``y``/``x`` centres for a rotated or sheared grid)."""
    coords: dict[Hashable, Any] = {"spatial_ref": spatial_ref(coarse)}
    if coarse.axis_aligned:
        c = coarse.coords
        coords["cy"] = ("cy", np.asarray(c["y"].values), {"long_name": "coarse cell centre y", "units": "m"})
        coords["cx"] = ("cx", np.asarray(c["x"].values), {"long_name": "coarse cell centre x", "units": "m"})
        return coords
    rows, cols = np.mgrid[0 : coarse.shape.y, 0 : coarse.shape.x] + 0.5
    x, y = coarse.transform * (cols, rows)
    coords.update(cy=np.arange(coarse.shape.y), cx=np.arange(coarse.shape.x))
    coords.update(x=(("cy", "cx"), np.asarray(x)), y=(("cy", "cx"), np.asarray(y)))
    return coords


def _to_grid(flat_ln: Array, coarse: GeoBox) -> Array:
    """``(l, n_coarse)`` → ``(l, cy, cx)``."""
    return flat_ln.reshape((flat_ln.shape[0], coarse.shape.y, coarse.shape.x))


def _wrap(
    data_lyx: Array, like: xr.DataArray, coarse: GeoBox, attrs: dict[str, Any] | None = None
) -> xr.DataArray:
    """A coarse-grid DataArray carrying ``like``'s leading dim (and its coordinates) if it has one."""
    lead = _lead_dim(like)
    coords = _coarse_coords(coarse)
    if lead is None:
        return xr.DataArray(data_lyx[0], dims=("cy", "cx"), coords=coords, attrs=attrs or {})
    # Only coordinates along the leading dim: a scalar one such as the fine grid's spatial_ref is wrong here.
    coords.update({k: v for k, v in like.coords.items() if v.dims == (lead,)})
    return xr.DataArray(data_lyx, dims=(lead, "cy", "cx"), coords=coords, attrs=attrs or {})


def _xp(*arrays: Array) -> types.ModuleType:
    """``dask.array`` if any of ``arrays`` is a dask array, else ``numpy``."""
    return dsa if any(isinstance(a, dsa.Array) for a in arrays) else np


def _ratio(num: Array, den: Array, dtype: type[np.floating[Any]] = np.float32) -> Array:
    """``num / den`` where ``den > 0``, NaN elsewhere (no division warnings), as ``dtype``."""
    xp = _xp(num, den)
    ok = den > 0
    return xp.where(ok, num / xp.where(ok, den, 1.0), np.nan).astype(dtype)


def aggregate_mean(
    da: xr.DataArray, fine_geobox: GeoBox, coarse_geobox: GeoBox, supersample: int = DEFAULT_SUPERSAMPLE
) -> xr.DataArray:
    """Area-weighted mean of a fine-grid variable over each coarse cell, ignoring NaN.

    Args:
        da: Values on ``(y, x)`` or ``(time, y, x)`` (any one leading dim) of ``fine_geobox``; NumPy or
            dask (dask stays lazy; any y/x chunking).
        fine_geobox: The grid of ``da``.
        coarse_geobox: The coarse grid (any CRS, any affine).
        supersample: Sub-points per fine pixel side (:func:`fine_to_coarse_chunk`).

    Returns:
        float32 on ``(time?, cy, cx)``: ``Σ w·v / Σ w`` over the fine pixels with a finite value, NaN where
        no such pixel touches the cell. ``cy``/``cx`` hold the coarse cell centres (for a rotated or
        sheared grid: cell indices, with 2-D ``y``/``x`` centres); ``spatial_ref`` holds the coarse CRS.

    Raises:
        SpecError: If dims or shape do not match ``fine_geobox``, a GeoBox has no CRS, or
            ``supersample`` < 1.

    Example:
        >>> from affine import Affine
        >>> fine = GeoBox((1, 3), Affine(30, 0, 0, 0, -30, 30), "EPSG:32650")
        >>> coarse = GeoBox((1, 2), Affine(45, 0, 0, 0, -30, 30), "EPSG:32650")
        >>> v = xr.DataArray([[2.0, 4.0, np.nan]], dims=("y", "x"))
        >>> [round(float(m), 4) for m in aggregate_mean(v, fine, coarse, supersample=2)[0]]  # 4 / 1.5, 4
        [2.6667, 4.0]
    """
    s = _check_grids(fine_geobox, coarse_geobox, supersample)
    _check_fine(da, fine_geobox, f"variable {da.name!r}")
    [sums] = _layer_sums([_layers_of(da)], fine_geobox, coarse_geobox, s)
    mean = _to_grid(_ratio(*sums), coarse_geobox)
    return _wrap(mean, da, coarse_geobox, dict(da.attrs)).rename(da.name)


# --- statistics for the samples --------------------------------------------------------------------


def _type_layers(types: xr.DataArray) -> Array:
    """0/1 float32 layers ``(type id, l, y, x)`` flattened to ``(6 * l, y, x)``; other codes are in none."""
    ids = _layers_of(types, dtype=None)
    xp = _xp(ids)
    return xp.concatenate([(ids == i).astype(np.float32) for i in sorted(_TYPE_NAMES)])


def _ndvi_vars(
    sums: tuple[Array, Array], sums2: tuple[Array, Array], like: xr.DataArray, coarse: GeoBox
) -> dict[str, xr.DataArray]:
    """NDVI weighted standard deviation, coefficient of variation and the weight of valid pixels."""
    mean = _ratio(*sums, dtype=np.float64)
    # Population variance E[v²] - E[v]²: v² is exact in float64 (v is float32) and the sums are float64,
    # so a uniform cell gives a variance of ~1e-16, clipped at zero.
    xp = _xp(mean)
    std = xp.sqrt(xp.maximum(_ratio(*sums2, dtype=np.float64) - mean**2, 0.0))
    pieces = {
        "ndvi_std": (std.astype(np.float32), "area-weighted standard deviation of 30 m NDVI"),
        "ndvi_cv": (_ratio(std, abs(mean)), "coefficient of variation of 30 m NDVI (std / |mean|)"),
        "n_fine": (sums[1].astype(np.float32), "fine pixels with a valid NDVI (sum of weights)"),
    }
    return {
        name: _wrap(_to_grid(data, coarse), like, coarse, {"long_name": long, "units": "1"})
        for name, (data, long) in pieces.items()
    }


def _forest_vars(weighted: Array, types: xr.DataArray, coarse: GeoBox) -> dict[str, xr.DataArray]:
    """Forest-type fractions among pixels with a valid type, their total weight, the majority type."""
    ids = sorted(_TYPE_NAMES)
    per_type = weighted.reshape((len(ids), -1, weighted.shape[-1]))  # (type, l, n_coarse)
    n_typed = per_type.sum(axis=0)
    out = {
        f"frac_{_TYPE_NAMES[i]}": _wrap(
            _to_grid(_ratio(per_type[k], n_typed), coarse),
            types,
            coarse,
            {"long_name": f"area fraction of {_TYPE_NAMES[i]} among pixels with a forest type", "units": "1"},
        )
        for k, i in enumerate(ids)
    }
    # The ids are 0..5, so the position of the largest weight is the id (ties: the smaller id).
    majority = _xp(per_type).where(n_typed > 0, per_type.argmax(axis=0), FOREST_TYPE_FILL)
    meanings = " ".join(_TYPE_NAMES[i] for i in ids)
    out["forest_type_majority"] = _wrap(
        _to_grid(majority.astype(np.uint8), coarse),
        types,
        coarse,
        {"long_name": "forest type with the largest area", "flag_values": ids, "flag_meanings": meanings},
    )
    out["n_typed"] = _wrap(
        _to_grid(n_typed.astype(np.float32), coarse),
        types,
        coarse,
        {"long_name": "fine pixels with a valid forest type (sum of weights)", "units": "1"},
    )
    return out


def _resolve_types(predictors: xr.Dataset, forest_type: Hashable | xr.DataArray) -> xr.DataArray:
    if isinstance(forest_type, xr.DataArray):
        return forest_type
    if forest_type not in predictors.data_vars:
        raise SpecError(
            f"aggregate_stats: no forest-type variable {forest_type!r} in the predictors "
            f"({sorted(map(str, predictors.data_vars))}); pass forest_type= its name or the DataArray"
        )
    return predictors[forest_type]


def aggregate_stats(
    predictors: xr.Dataset,
    fine_geobox: GeoBox,
    coarse_geobox: GeoBox,
    *,
    forest_type: Hashable | xr.DataArray = "forest_type",
    ndvi: Hashable = "ndvi",
    skip: Iterable[Hashable] = ("land_cover",),
    supersample: int = DEFAULT_SUPERSAMPLE,
) -> xr.Dataset:
    """Per coarse cell: predictor means, NDVI spread, fine-pixel count and forest-type mix.

    All statistics come from one pass over the fine chunks (one weight matrix per chunk).

    Args:
        predictors: Fine-grid variables on ``(time, y, x)`` or ``(y, x)`` of ``fine_geobox`` (NumPy or
            dask); NaN marks missing values.
        fine_geobox: The grid of ``predictors``.
        coarse_geobox: The coarse grid (any CRS, any affine).
        forest_type: Name of the forest-type variable in ``predictors`` or the DataArray itself; ids
            0 non-forest, 1 ENF, 2 DBF, 3 MF, 4 DNF, 5 EBF; anything else (255 fill, NaN) has no type.
        ndvi: Name of the NDVI variable.
        skip: Variables not to average (categorical codes).
        supersample: Sub-points per fine pixel side (:func:`fine_to_coarse_chunk`).

    Returns:
        Dataset on ``(time?, cy, cx)`` with coordinates as :func:`aggregate_mean`:

        * every predictor except the forest type and ``skip`` (NDVI always): area-weighted mean (float32,
          NaN-aware);
        * ``ndvi_std`` (weighted population standard deviation), ``ndvi_cv`` (``ndvi_std / |mean|``, NaN
          where the mean is 0) and ``n_fine`` (sum of the weights of pixels with a valid NDVI);
        * ``frac_non_forest``, ``frac_ENF``, ``frac_DBF``, ``frac_MF``, ``frac_DNF``, ``frac_EBF``: weight of
          the pixels of each type / ``n_typed``, the weight of the pixels with a valid type (NaN where 0);
        * ``forest_type_majority`` (uint8): the id with the largest weight, 255 where ``n_typed`` is 0.

    Raises:
        SpecError: If a variable is missing or its dims or shape do not match ``fine_geobox``.

    Example:
        >>> from affine import Affine
        >>> fine = GeoBox((1, 4), Affine(30, 0, 0, 0, -30, 30), "EPSG:32650")
        >>> coarse = GeoBox((1, 1), Affine(120, 0, 0, 0, -30, 30), "EPSG:32650")
        >>> ds = xr.Dataset({"ndvi": (("y", "x"), [[0.2, 0.4, 0.6, np.nan]]),
        ...                  "forest_type": (("y", "x"), np.array([[1, 1, 4, 255]], np.uint8))})
        >>> out = aggregate_stats(ds, fine, coarse, supersample=1)
        >>> round(float(out.ndvi[0, 0]), 3), float(out.n_fine[0, 0]), int(out.forest_type_majority[0, 0])
        (0.4, 3.0, 1)
        >>> round(float(out.frac_ENF[0, 0]), 4), round(float(out.frac_DNF[0, 0]), 4)
        (0.6667, 0.3333)
    """
    s = _check_grids(fine_geobox, coarse_geobox, supersample)
    types = _resolve_types(predictors, forest_type)
    if ndvi not in predictors.data_vars:
        raise SpecError(
            f"aggregate_stats: no NDVI variable {ndvi!r} in the predictors "
            f"({sorted(map(str, predictors.data_vars))}); pass ndvi= its name"
        )
    excluded = {*skip, types.name} - {ndvi}  # the NDVI mean is needed for its CV
    means = [n for n in predictors.data_vars if n not in excluded]
    for name in [*means, ndvi]:
        _check_fine(predictors[name], fine_geobox, f"variable {name!r}")
    _check_fine(types, fine_geobox, "forest type")
    stacks = [_layers_of(predictors[n]) for n in means]
    stacks += [_layers_of(predictors[ndvi]).astype(np.float64) ** 2, _type_layers(types)]
    sums = _layer_sums(stacks, fine_geobox, coarse_geobox, s)
    out = {
        str(name): _wrap(
            _to_grid(_ratio(*sum_), coarse_geobox),
            predictors[name],
            coarse_geobox,
            dict(predictors[name].attrs),
        )
        for name, sum_ in zip(means, sums, strict=False)
    }
    out.update(_ndvi_vars(sums[means.index(ndvi)], sums[-2], predictors[ndvi], coarse_geobox))
    out.update(_forest_vars(sums[-1][0], types, coarse_geobox))
    return xr.Dataset(out, attrs={"supersample": s})
