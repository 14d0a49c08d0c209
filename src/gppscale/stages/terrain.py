"""Slope and aspect (as northness and eastness) of a DEM with Horn's 3 x 3 method.

For a cell ``e`` with neighbours (rows north → south, columns west → east)::

    a b c
    d e f
    g h i

the gradient is ``dz/dx = ((c + 2f + i) - (a + 2d + g)) / (8 res)`` (towards east) and
``dz/dy = ((a + 2b + c) - (g + 2h + i)) / (8 res)`` (towards north) (Horn 1981). The slope is
``atan(|∇z|)``; the aspect is the direction the slope faces (downslope, ``-∇z``), clockwise from north,
given as ``northness = cos(aspect) = -dz/dy / |∇z|`` and ``eastness = sin(aspect) = -dz/dx / |∇z|``,
so that both are continuous and a flat cell gets 0, 0. Border cells use replicated border pixels; a NaN
anywhere in a cell's 3 x 3 window (the cell included) gives NaN.

Example:
    >>> dem = np.array([[2.0, 2.0], [1.0, 1.0]])  # rises to the north: faces south
    >>> slope, north, east = terrain_kernel(dem, 1.0)
    >>> float(north[0, 0]), float(east[0, 0])
    (-1.0, 0.0)
"""

from __future__ import annotations

from typing import Any

import dask.array as dsa
import numpy as np
import numpy.typing as npt
import xarray as xr
from dask.base import tokenize

from gppscale.errors import SpecError

__all__ = ["terrain", "terrain_kernel"]

F32 = npt.NDArray[np.float32]


def _horn_valid(padded: npt.NDArray[np.floating[Any]], res_m: float) -> F32:
    """Slope (degrees), northness, eastness of the interior of ``padded``, stacked: ``(3, y - 2, x - 2)``."""
    z = np.asarray(padded, dtype=np.float64)
    a, b, c = z[:-2, :-2], z[:-2, 1:-1], z[:-2, 2:]
    d, f = z[1:-1, :-2], z[1:-1, 2:]
    g, h, i = z[2:, :-2], z[2:, 1:-1], z[2:, 2:]
    dz_dx = ((c + 2.0 * f + i) - (a + 2.0 * d + g)) / (8.0 * res_m)
    dz_dy = ((a + 2.0 * b + c) - (g + 2.0 * h + i)) / (8.0 * res_m)
    # Horn's stencil skips the centre; a NaN centre must still give NaN.
    grad = np.where(np.isnan(z[1:-1, 1:-1]), np.nan, np.hypot(dz_dx, dz_dy))
    with np.errstate(divide="ignore", invalid="ignore"):
        north = np.where(grad > 0, 0.0 - dz_dy / grad, np.where(np.isnan(grad), np.nan, 0.0))
        east = np.where(grad > 0, 0.0 - dz_dx / grad, np.where(np.isnan(grad), np.nan, 0.0))
    slope = np.degrees(np.arctan(grad))
    return np.stack([slope, north, east]).astype(np.float32)


def _check_res(res_m: float) -> float:
    if not np.isfinite(res_m) or res_m <= 0:
        raise SpecError(f"DEM pixel size res_m={res_m!r} must be a positive number of metres")
    return float(res_m)


def terrain_kernel(dem_yx: npt.NDArray[np.floating[Any]], res_m: float) -> tuple[F32, F32, F32]:
    """Slope (degrees), northness and eastness of a DEM block, float32, Horn's method.

    Args:
        dem_yx: Elevation (m), rows north → south, columns west → east.
        res_m: Pixel size (m), the same along x and y.

    Returns:
        ``(slope_deg, northness, eastness)``, each shaped like ``dem_yx``.

    Raises:
        SpecError: If ``res_m`` is not positive.

    Example:
        >>> dem = np.array([[0.0, 30.0, 60.0]] * 3)  # rises 30 m per 30 m to the east: faces west
        >>> slope, north, east = terrain_kernel(dem, 30.0)
        >>> round(float(slope[1, 1]), 6), float(north[1, 1]), float(east[1, 1])
        (45.0, 0.0, -1.0)
    """
    out = _horn_valid(np.pad(np.asarray(dem_yx, dtype=np.float64), 1, mode="edge"), _check_res(res_m))
    return out[0], out[1], out[2]


def _terrain_dask(dem: Any, res_m: float) -> Any:  # noqa: ANN401 (dask arrays are untyped)
    """``(3, y, x)`` dask array of :func:`_horn_valid` over 1-pixel halos (replicated at the edges)."""
    return dsa.map_overlap(  # type: ignore[no-untyped-call,unused-ignore]
        _horn_valid,
        dem,
        depth={0: 1, 1: 1},
        boundary="nearest",
        # The kernel drops the halo itself (valid-mode stencil) and adds the leading 3-variable axis,
        # so no trim afterwards; the three outputs share one task per block.
        trim=False,
        new_axis=0,
        chunks=((3,), *dem.chunks),
        dtype=np.float32,
        meta=np.empty((0, 0, 0), dtype=np.float32),
        name=f"terrain-{tokenize(dem, res_m)}",
        res_m=res_m,
    )


def terrain(dem: xr.DataArray, res_m: float) -> xr.Dataset:
    """Elevation, slope, northness and eastness of a DEM on ``(y, x)``; lazy for dask.

    The orientation of the ``y``/``x`` coordinates is honoured: rows may run south → north (``y``
    increasing) or columns east → west, aspect is still clockwise from geographic north of the grid.
    Chunked and unchunked inputs give identical results.

    Args:
        dem: Elevation (m) on dims ``(y, x)`` (any order), numpy- or dask-backed.
        res_m: Pixel size (m).

    Returns:
        Dataset with ``elevation`` (m), ``slope`` (degree), ``northness`` and ``eastness`` ("1"), float32.

    Raises:
        SpecError: If ``dem`` is not on exactly (y, x) or ``res_m`` is not positive.

    Example:
        >>> dem = xr.DataArray(np.array([[2.0, 2.0], [1.0, 1.0]]), dims=("y", "x"),
        ...                    coords={"y": [1.0, 0.0], "x": [0.0, 1.0]})
        >>> float(terrain(dem, 1.0).northness[0, 0])  # rises to the north: faces south
        -1.0
    """
    res_m = _check_res(res_m)
    if set(dem.dims) != {"y", "x"}:
        raise SpecError(f"DEM has dims {dem.dims}; terrain needs exactly (y, x) (select one time step)")
    dem = dem.transpose("y", "x").astype(np.float32)
    if dem.chunks is not None:
        stacked: Any = _terrain_dask(dem.data, res_m)
    else:
        stacked = _horn_valid(np.pad(dem.values.astype(np.float64), 1, mode="edge"), res_m)
    slope, north, east = stacked[0], stacked[1], stacked[2]
    if _flipped(dem, "y", descending=True):
        north = 0.0 - north  # 0.0 - x, not -x: no negative zeros
    if _flipped(dem, "x", descending=False):
        east = 0.0 - east
    coords = dem.coords

    def var(data: npt.ArrayLike, long_name: str, units: str) -> xr.DataArray:
        return xr.DataArray(
            data, dims=("y", "x"), coords=coords, attrs={"long_name": long_name, "units": units}
        )

    return xr.Dataset(
        {
            "elevation": dem.copy(data=dem.data).assign_attrs(
                {**dem.attrs, "long_name": "elevation", "units": "m"}
            ),
            "slope": var(slope, "terrain slope (Horn 1981)", "degree"),
            "northness": var(north, "cosine of the aspect (downslope direction, clockwise from north)", "1"),
            "eastness": var(east, "sine of the aspect (downslope direction, clockwise from north)", "1"),
        }
    )


def _flipped(dem: xr.DataArray, dim: str, *, descending: bool) -> bool:
    """True when ``dim`` runs against the kernel's assumption (y north → south, x west → east)."""
    if dim not in dem.coords or dem.sizes[dim] < 2:
        return False
    values = np.asarray(dem[dim].values)
    return bool(values[0] > values[-1]) != descending
