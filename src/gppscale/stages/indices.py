"""Spectral indices of surface reflectance: NDVI, kNDVI, EVI, NDWI (McFeeters) and NDMI (Gao).

Each index takes NumPy arrays or xarray DataArrays (numpy- or dask-backed; dask stays lazy) named after
the Landsat bands, so keyword calls read as the formula. A zero denominator gives NaN, never inf, and no
RuntimeWarning. Inputs are computed in their common float type (at least float32).

Example:
    >>> float(ndvi(np.float32(0.25), np.float32(0.75)))  # 0.5 / 1.0
    0.5
    >>> ndvi(np.array([0.0]), np.array([0.0])).tolist()
    [nan]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import xarray as xr

from gppscale.errors import MissingAssetError

__all__ = ["INDEX_BANDS", "add_indices", "evi", "kndvi", "ndmi", "ndvi", "ndwi"]

Arr = TypeVar("Arr", xr.DataArray, npt.NDArray[Any], np.floating[Any])
F = npt.NDArray[np.floating[Any]]

INDEX_BANDS = ("blue", "green", "red", "nir08", "swir16")
"""Variables :func:`add_indices` reads."""

_LONG_NAMES = {
    "ndvi": "normalized difference vegetation index",
    "kndvi": "kernel normalized difference vegetation index, tanh(NDVI^2)",
    "evi": "enhanced vegetation index",
    "ndwi": "normalized difference water index (McFeeters 1996), (green - nir) / (green + nir)",
    "ndmi": "normalized difference moisture index (Gao 1996), (nir - swir16) / (nir + swir16)",
}


def _float_args(*args: npt.ArrayLike) -> list[F]:
    arrays = [np.asarray(a) for a in args]
    dtype = np.result_type(*(a.dtype for a in arrays), np.float32)
    return [a.astype(dtype, copy=False) for a in arrays]


def _ratio(num: F, den: F) -> F:
    """``num / den``, NaN where ``den`` is 0, without warnings."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    return np.asarray(np.where(den == 0, np.nan, out), dtype=out.dtype)


def _ndvi_kernel(red: F, nir: F) -> F:
    red, nir = _float_args(red, nir)
    return _ratio(nir - red, nir + red)


def _kndvi_kernel(red: F, nir: F) -> F:
    return np.tanh(_ndvi_kernel(red, nir) ** 2)


def _evi_kernel(red: F, nir: F, blue: F) -> F:
    red, nir, blue = _float_args(red, nir, blue)
    return _ratio(2.5 * (nir - red), nir + 6.0 * red - 7.5 * blue + 1.0)


def _ndwi_kernel(green: F, nir: F) -> F:
    green, nir = _float_args(green, nir)
    return _ratio(green - nir, green + nir)


def _ndmi_kernel(nir: F, swir16: F) -> F:
    nir, swir16 = _float_args(nir, swir16)
    return _ratio(nir - swir16, nir + swir16)


def _apply(kernel: Callable[..., F], *args: Any) -> Any:  # noqa: ANN401 (array or DataArray)
    """Run ``kernel`` on NumPy inputs directly, on DataArrays block by block (lazy for dask)."""
    if not any(isinstance(a, xr.DataArray) for a in args):
        out = kernel(*args)
        return out[()] if out.ndim == 0 else out
    dtype = np.result_type(
        *(a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype for a in args), np.float32
    )
    return xr.apply_ufunc(kernel, *args, dask="parallelized", output_dtypes=[dtype], keep_attrs=False)


def ndvi(red: Arr, nir: Arr) -> Arr:
    """NDVI = (nir - red) / (nir + red).

    Example:
        >>> ndvi(np.array([0.05, 0.2]), np.array([0.45, 0.2])).tolist()  # 0.4/0.5; 0/0.4
        [0.8, 0.0]
    """
    out: Arr = _apply(_ndvi_kernel, red, nir)
    return out


def kndvi(red: Arr, nir: Arr) -> Arr:
    """Kernel NDVI, kNDVI = tanh(NDVI²) (Camps-Valls et al. 2021, kernel width sigma = (nir + red) / 2).

    Example:
        >>> round(float(kndvi(np.float64(0.25), np.float64(0.75))), 6)  # tanh(0.5 ** 2) = tanh(0.25)
        0.244919
    """
    out: Arr = _apply(_kndvi_kernel, red, nir)
    return out


def evi(red: Arr, nir: Arr, blue: Arr) -> Arr:
    """EVI = 2.5 (nir - red) / (nir + 6 red - 7.5 blue + 1).

    Example:
        >>> float(evi(np.float64(0.1), np.float64(0.5), np.float64(0.04)))  # 1.0 / (0.5+0.6-0.3+1)
        0.5555555555555556
    """
    out: Arr = _apply(_evi_kernel, red, nir, blue)
    return out


def ndwi(green: Arr, nir: Arr) -> Arr:
    """NDWI (McFeeters 1996) = (green - nir) / (green + nir); open water is positive.

    Example:
        >>> float(ndwi(np.float64(0.375), np.float64(0.125)))  # 0.25 / 0.5
        0.5
    """
    out: Arr = _apply(_ndwi_kernel, green, nir)
    return out


def ndmi(nir: Arr, swir16: Arr) -> Arr:
    """NDMI (Gao 1996 NDWI) = (nir - swir16) / (nir + swir16); wetter canopies are higher.

    Example:
        >>> float(ndmi(np.float64(0.375), np.float64(0.125)))  # 0.25 / 0.5
        0.5
    """
    out: Arr = _apply(_ndmi_kernel, nir, swir16)
    return out


def add_indices(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with ``ndvi``, ``kndvi``, ``evi``, ``ndwi``, ``ndmi`` added (attrs long_name, units "1").

    Reads the variables ``blue, green, red, nir08, swir16`` (:data:`INDEX_BANDS`); lazy for dask.

    Raises:
        MissingAssetError: If one of those variables is missing.

    Example:
        >>> ds = xr.Dataset({b: ("x", [v]) for b, v in
        ...                  zip(INDEX_BANDS, [0.04, 0.08, 0.1, 0.5, 0.3], strict=True)})
        >>> round(float(add_indices(ds).ndvi[0]), 6)  # 0.4 / 0.6
        0.666667
    """
    missing = [b for b in INDEX_BANDS if b not in ds.data_vars]
    if missing:
        raise MissingAssetError(
            f"add_indices: bands {missing} are missing (the dataset has {sorted(map(str, ds.data_vars))}); "
            f"load {list(INDEX_BANDS)} under these names (collections.landsat.assets)"
        )
    blue, green, red, nir, swir16 = (ds[b] for b in INDEX_BANDS)
    new = {
        "ndvi": ndvi(red, nir),
        "kndvi": kndvi(red, nir),
        "evi": evi(red, nir, blue),
        "ndwi": ndwi(green, nir),
        "ndmi": ndmi(nir, swir16),
    }
    for name, var in new.items():
        var.attrs = {"long_name": _LONG_NAMES[name], "units": "1"}
    return ds.assign(new)
