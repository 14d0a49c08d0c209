"""Small lazy datasets shaped like gppscale outputs, for tests of Zarr writers.

Example:
    >>> ds = lazy_cube(n_time=2, ny=50, nx=40, dask_chunks=(25, 20))
    >>> dict(ds.sizes), ds["gpp"].dtype.name, ds["forest_type"].dtype.name
    ({'time': 2, 'y': 50, 'x': 40}, 'float32', 'uint8')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

__all__ = ["FOREST_TYPE_FILL", "fail_block_once", "lazy_cube", "with_flaky_block"]

FOREST_TYPE_FILL = 255
# A CRS stand-in; only that the attributes survive a round trip matters here (UTM 50N).
_CRS_WKT = 'PROJCS["WGS 84 / UTM zone 50N",GEOGCS["WGS 84"],AUTHORITY["EPSG","32650"]]'


def lazy_cube(
    *,
    n_time: int = 3,
    ny: int = 300,
    nx: int = 260,
    dask_chunks: tuple[int, int] = (64, 128),
    seed: int = 0,
) -> xr.Dataset:
    """A seeded dask-backed dataset: float32 ``gpp`` (time, y, x) and uint8 ``forest_type`` (y, x).

    ``gpp`` is NaN over the first 64 by 64 block at every time step and over one block of the second time
    step (so Zarr skips those chunks); ``forest_type`` holds ``FOREST_TYPE_FILL`` (255) over the first
    block. Both carry ``grid_mapping: spatial_ref``; the scalar ``spatial_ref`` coordinate has ``crs_wkt``.

    Args:
        n_time: Number of quarters.
        ny: Rows.
        nx: Columns.
        dask_chunks: Dask chunk sizes along y and x (time is chunked by 1).
        seed: Seed of the random values.
    """
    rng = np.random.default_rng(seed)
    gpp = rng.gamma(2.0, 50.0, (n_time, ny, nx)).astype("float32")
    gpp[:, :64, :64] = np.nan
    if n_time > 1:
        gpp[1, 128:192, 64:128] = np.nan
    forest = rng.integers(1, 5, (ny, nx), dtype="uint8")
    forest[:64, :64] = FOREST_TYPE_FILL
    cy, cx = dask_chunks
    gpp_lazy = da.from_array(gpp, chunks=(1, cy, cx))  # type: ignore[no-untyped-call,unused-ignore]
    forest_lazy = da.from_array(forest, chunks=(cy, cx))  # type: ignore[no-untyped-call,unused-ignore]
    grid = {"grid_mapping": "spatial_ref"}
    time = np.array([f"2020-{1 + 3 * q:02d}-01" for q in range(n_time)], dtype="datetime64[ns]")
    return xr.Dataset(
        {
            "gpp": (("time", "y", "x"), gpp_lazy, {"units": "gC m-2", **grid}),
            "forest_type": (("y", "x"), forest_lazy, grid),
        },
        coords={
            "time": time,
            "y": 4_650_000.0 - 30.0 * (np.arange(ny) + 0.5),
            "x": 500_000.0 + 30.0 * (np.arange(nx) + 0.5),
            "spatial_ref": ((), np.int32(0), {"crs_wkt": _CRS_WKT, "spatial_ref": _CRS_WKT}),
        },
        attrs={"title": "gppscale test cube"},
    )


def fail_block_once(
    block: np.ndarray[Any, Any],
    marker: str,
    at: tuple[int, ...],
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray[Any, Any]:
    """Return ``block``, except raise once for the block at chunk location ``at``, leaving file ``marker``.

    A fault injector for ``dask.array.map_blocks``: the first computation of that block raises
    :class:`RuntimeError`; later ones (in any process that sees ``marker``) pass.
    """
    location = None if block_info is None else tuple(block_info[0]["chunk-location"])
    if location == tuple(at) and not Path(marker).exists():
        Path(marker).touch()
        raise RuntimeError(f"injected failure in block {location}")
    return block


def with_flaky_block(ds: xr.Dataset, name: str, marker: str, at: tuple[int, ...]) -> xr.Dataset:
    """``ds`` with variable ``name`` failing once in dask block ``at`` (see :func:`fail_block_once`).

    Example:
        >>> import tempfile, os
        >>> marker = os.path.join(tempfile.mkdtemp(), "failed")
        >>> cube = lazy_cube(n_time=1, ny=20, nx=20, dask_chunks=(10, 10))
        >>> flaky = with_flaky_block(cube, "gpp", marker, (0, 1, 1))
        >>> try:
        ...     flaky.compute()
        ... except RuntimeError as e:
        ...     print(e)
        injected failure in block (0, 1, 1)
        >>> flaky.compute()["gpp"].shape  # the second time it passes
        (1, 20, 20)
    """
    var = ds[name]
    lazy = var.data.map_blocks(fail_block_once, marker, at, dtype=var.dtype)
    return ds.assign({name: var.copy(data=lazy)})
