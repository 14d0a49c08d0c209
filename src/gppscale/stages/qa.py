"""Landsat Collection 2 QA_PIXEL masking and ``raster:bands`` scale/offset.

QA_PIXEL is a 16-bit field per pixel. Bits 0-7 are single flags (:data:`QA_BITS`); bits 8-15 hold
two-bit confidence levels (cloud, cloud shadow, snow/ice, cirrus), which are not used here: the single
flags already carry USGS's decision. An observation is *clear* when none of the chosen flags is set.

Example:
    >>> bits = mask_bits(DEFAULT_MASKED)
    >>> bits
    63
    >>> clear_kernel(np.array([21824, 22280, 1], dtype=np.uint16), bits).tolist()
    [True, False, False]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import xarray as xr

from gppscale.errors import SpecError

__all__ = ["DEFAULT_MASKED", "QA_BITS", "apply_scale_offset", "clear_kernel", "clear_mask", "mask_bits"]

QA_BITS: Mapping[str, int] = MappingProxyType(
    {
        "fill": 0,
        "dilated_cloud": 1,
        "cirrus": 2,
        "cloud": 3,
        "shadow": 4,
        "snow": 5,
        "clear": 6,
        "water": 7,
    }
)
"""Bit number of each single-bit flag of Landsat C2 QA_PIXEL."""

DEFAULT_MASKED: tuple[str, ...] = ("fill", "dilated_cloud", "cirrus", "cloud", "shadow", "snow")
"""Flags that make an observation unusable unless the run spec says otherwise (``cube.qa_mask``)."""


def mask_bits(names: Iterable[str]) -> int:
    """The bit mask (an int) of the QA_PIXEL flags ``names``.

    Raises:
        SpecError: If a name is not a flag of :data:`QA_BITS`.

    Example:
        >>> mask_bits(["fill", "cloud"])
        9
    """
    bits = 0
    for name in names:
        if name not in QA_BITS:
            raise SpecError(
                f"QA_PIXEL flag {name!r} is unknown; use some of {sorted(QA_BITS)} (cube.qa_mask)"
            )
        bits |= 1 << QA_BITS[name]
    return bits


def clear_kernel(qa: npt.NDArray[np.generic], bits: int) -> npt.NDArray[np.bool_]:
    """True where none of ``bits`` is set in ``qa``.

    ``qa`` is an unsigned-integer QA_PIXEL array, or a float one with NaN where nothing was read
    (NaN is never clear).

    Example:
        >>> clear_kernel(np.array([21952.0, np.nan, 55052.0]), mask_bits(DEFAULT_MASKED)).tolist()
        [True, False, False]
    """
    qa = np.asarray(qa)
    if np.issubdtype(qa.dtype, np.integer):
        return np.asarray((qa.astype(np.int64) & bits) == 0)
    finite = np.isfinite(qa)
    # Non-finite values become the fill flag before the cast, so the cast never sees NaN.
    as_int = np.where(finite, qa, 1).astype(np.int64)
    return np.asarray(finite & ((as_int & bits) == 0))


def clear_mask(qa: xr.DataArray, bits: int) -> xr.DataArray:
    """Boolean DataArray, True where an observation is clear (:func:`clear_kernel`); lazy for dask.

    Example:
        >>> qa = xr.DataArray(np.array([[21824, 22280]], dtype=np.uint16), dims=("y", "x"))
        >>> clear_mask(qa, mask_bits(DEFAULT_MASKED)).values.tolist()
        [[True, False]]
    """
    out: xr.DataArray = xr.apply_ufunc(
        clear_kernel,
        qa,
        kwargs={"bits": int(bits)},
        dask="parallelized",
        output_dtypes=[np.bool_],
    )
    return out.rename(qa.name).assign_attrs(long_name="clear observation (QA_PIXEL)", units="1")


def apply_scale_offset(raw: xr.DataArray, scale: float, offset: float) -> xr.DataArray:
    """``raw * scale + offset`` as float32; NaN stays NaN, attrs and coordinates are kept.

    odc-stac loads digital numbers without applying ``raster:bands`` scale/offset; this does. Load
    with ``nodata=nan`` so that nodata stays NaN.

    Example:
        >>> raw = xr.DataArray(np.array([10000.0, np.nan], dtype=np.float32), dims="x", attrs={"a": 1})
        >>> out = apply_scale_offset(raw, 2.75e-5, -0.2)
        >>> out.dtype, [round(float(v), 4) for v in out.values], out.attrs
        (dtype('float32'), [0.075, nan], {'a': 1})
    """
    scaled = raw.astype(np.float32) * np.float32(scale) + np.float32(offset)
    return scaled.astype(np.float32).assign_attrs(raw.attrs)
