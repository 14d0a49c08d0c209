"""Forest-type ids from land-cover codes (GLC_FCS30), via a 256-entry lookup table.

Ids: 0 non-forest, 1 ENF, 2 DBF, 3 MF, 4 DNF, 5 EBF (:data:`FOREST_TYPE_IDS`), and 255
(:data:`FOREST_TYPE_FILL`) where the map has no data. The result carries CF ``flag_values`` and
``flag_meanings``; no ``_FillValue`` attribute is set here: the Zarr writer declares 255 as the fill value.

Example:
    >>> forest_type_kernel(np.array([71, 61, 10, 250], np.uint8), {71: "ENF", 61: "DBF"}, [0, 250]).tolist()
    [1, 2, 0, 255]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import xarray as xr

from gppscale.errors import SpecError

__all__ = ["FOREST_TYPE_FILL", "FOREST_TYPE_IDS", "forest_lut", "forest_type", "forest_type_kernel"]

FOREST_TYPE_IDS: Mapping[str, int] = MappingProxyType(
    {"non-forest": 0, "ENF": 1, "DBF": 2, "MF": 3, "DNF": 4, "EBF": 5}
)
"""Forest type → id in the ``forest_type`` layer of the predictor cube."""

FOREST_TYPE_FILL = 255
"""``forest_type`` id where the land-cover map has no data (its fill codes, NaN, codes outside 0-255)."""

U8 = npt.NDArray[np.uint8]


def forest_lut(code_to_type: Mapping[int, str], fill_codes: Iterable[int]) -> U8:
    """The 256-entry table code → forest-type id; unlisted codes are non-forest (0).

    Raises:
        SpecError: If a code is outside 0-255 or a type is not in :data:`FOREST_TYPE_IDS`.

    Example:
        >>> lut = forest_lut({81: "DNF"}, [0])
        >>> int(lut[81]), int(lut[0]), int(lut[10])
        (4, 255, 0)
    """
    lut = np.zeros(256, dtype=np.uint8)
    for code, name in code_to_type.items():
        if name not in FOREST_TYPE_IDS:
            raise SpecError(
                f"forest type {name!r} (code {code}) is unknown; use one of {list(FOREST_TYPE_IDS)} "
                "(forest_types.codes)"
            )
        lut[_check_code(code)] = FOREST_TYPE_IDS[name]
    for code in fill_codes:
        lut[_check_code(code)] = FOREST_TYPE_FILL
    return lut


def _check_code(code: int) -> int:
    if not 0 <= int(code) <= 255:
        raise SpecError(f"land-cover code {code!r} is outside 0-255; fix forest_types.codes/fill")
    return int(code)


def _lookup(codes: npt.NDArray[np.generic], lut: U8) -> U8:
    """``lut[codes]``; NaN and codes outside 0-255 give the fill id, float codes are rounded."""
    codes = np.asarray(codes)
    if codes.dtype == np.uint8:
        return np.asarray(lut[codes], dtype=np.uint8)
    values = np.asarray(codes, dtype=np.float64)
    valid = np.isfinite(values) & (values >= -0.5) & (values < 255.5)
    # Invalid values become index 0 before the cast so the cast never sees NaN; they are overwritten.
    index = np.where(valid, np.rint(values), 0).astype(np.intp)
    return np.where(valid, lut[index], np.uint8(FOREST_TYPE_FILL)).astype(np.uint8)


def forest_type_kernel(
    codes: npt.NDArray[np.generic], code_to_type: Mapping[int, str], fill_codes: Iterable[int]
) -> U8:
    """Forest-type ids (uint8) of land-cover ``codes``.

    Args:
        codes: Land-cover codes, integer or float (NaN for no data).
        code_to_type: Code → forest type, e.g. ``ForestTypesSpec().code_to_type()`` (71 → "ENF").
        fill_codes: Codes that mean no data (GLC_FCS30: 0 and 250).

    Returns:
        Ids of :data:`FOREST_TYPE_IDS`; 0 for codes not listed; :data:`FOREST_TYPE_FILL` (255) for fill
        codes, NaN and values outside 0-255.

    Raises:
        SpecError: If the mapping names an unknown type or a code outside 0-255.

    Example:
        >>> forest_type_kernel(np.array([91.0, np.nan, 51.0]), {91: "MF", 51: "EBF"}, [0, 250]).tolist()
        [3, 255, 5]
    """
    return _lookup(codes, forest_lut(code_to_type, fill_codes))


def forest_type(
    codes: xr.DataArray, code_to_type: Mapping[int, str], fill_codes: Iterable[int]
) -> xr.DataArray:
    """Forest-type ids of a land-cover DataArray (:func:`forest_type_kernel`), lazy for dask.

    The result is uint8 named ``forest_type`` with attrs ``long_name``, ``flag_values`` and
    ``flag_meanings`` (CF); 255 marks no data and is declared as the fill value by the writer.

    Example:
        >>> codes = xr.DataArray(np.array([[71, 250]], np.uint8), dims=("y", "x"))
        >>> out = forest_type(codes, {71: "ENF"}, [0, 250])
        >>> out.values.tolist(), out.attrs["flag_meanings"]
        ([[1, 255]], 'non-forest ENF DBF MF DNF EBF')
    """
    lut = forest_lut(code_to_type, fill_codes)
    out: xr.DataArray = xr.apply_ufunc(
        _lookup, codes, kwargs={"lut": lut}, dask="parallelized", output_dtypes=[np.uint8], keep_attrs=False
    )
    out.attrs = {
        "long_name": "forest type",
        "flag_values": np.array(sorted(FOREST_TYPE_IDS.values()), dtype=np.uint8),
        "flag_meanings": " ".join(sorted(FOREST_TYPE_IDS, key=FOREST_TYPE_IDS.__getitem__)),
    }
    return out.rename("forest_type")
