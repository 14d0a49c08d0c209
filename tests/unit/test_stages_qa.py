"""Landsat C2 QA_PIXEL masking and scale/offset."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

from gppscale.errors import SpecError
from gppscale.stages.qa import (
    DEFAULT_MASKED,
    QA_BITS,
    apply_scale_offset,
    clear_kernel,
    clear_mask,
    mask_bits,
)

# Real Landsat 8/9 C2 QA_PIXEL values, decoded. Bits 0-7: fill, dilated cloud, cirrus, cloud, shadow,
# snow, clear, water; bits 8-15: two-bit confidences (cloud, shadow, snow, cirrus; 1 = low, 3 = high).
GOLDEN = {
    # 21824 = 0x5540 = 0b0101_0101_0100_0000: bit 6 clear; all four confidences low (01).
    21824: True,
    # 21952 = 0x55C0: bits 6 clear + 7 water; confidences low. Clear water.
    21952: True,
    # 21890 = 0x5582: bits 1 dilated cloud + 7 water (no clear bit); confidences low. Masked.
    21890: False,
    # 22280 = 0x5708: bit 3 cloud; cloud confidence high (bits 8-9 = 11). Masked.
    22280: False,
    # 1 = bit 0 fill. Masked.
    1: False,
    # 23888 = 0x5D50: bits 4 shadow + 6 clear; shadow confidence high (bits 10-11 = 11). Masked.
    23888: False,
    # 24088 = 0x5E18: bits 3 cloud + 4 shadow; cloud confidence medium, shadow high. Masked.
    24088: False,
    # 30048 = 0x7560: bits 5 snow + 6 clear; snow confidence high (bits 12-13 = 11). Masked by default.
    30048: False,
    # 54596 = 0xD544: bits 2 cirrus + 6 clear; cirrus confidence high (bits 14-15 = 11). Masked.
    54596: False,
    # 55052 = 0xD70C: bits 2 cirrus + 3 cloud; cloud and cirrus confidence high. Masked.
    55052: False,
}


def test_bits_and_default_mask() -> None:
    assert dict(QA_BITS) == {
        "fill": 0,
        "dilated_cloud": 1,
        "cirrus": 2,
        "cloud": 3,
        "shadow": 4,
        "snow": 5,
        "clear": 6,
        "water": 7,
    }
    # bits 0..5 → 0b111111 = 63
    assert mask_bits(DEFAULT_MASKED) == 63
    assert mask_bits([]) == 0
    assert mask_bits(["water", "water"]) == 128


def test_mask_bits_unknown_flag() -> None:
    with pytest.raises(SpecError, match=r"'clouds'.*'cloud'.*cube.qa_mask"):
        mask_bits(["fill", "clouds"])


@pytest.mark.parametrize(("value", "expected"), GOLDEN.items())
def test_golden_pixels_default_mask(value: int, expected: bool) -> None:
    bits = mask_bits(DEFAULT_MASKED)
    assert clear_kernel(np.array([value], dtype=np.uint16), bits).tolist() == [expected]
    assert clear_kernel(np.array([value], dtype=np.float32), bits).tolist() == [expected]


def test_configurable_mask_keeps_snow() -> None:
    no_snow = mask_bits(f for f in DEFAULT_MASKED if f != "snow")
    qa = np.array([30048, 23888, 21824], dtype=np.uint16)  # snow+clear, shadow+clear, clear
    assert clear_kernel(qa, no_snow).tolist() == [True, False, True]
    # Masking water too drops 21952 (clear water).
    assert clear_kernel(np.array([21952], np.uint16), mask_bits([*DEFAULT_MASKED, "water"])).tolist() == [
        False
    ]


def test_float_nan_is_never_clear() -> None:
    qa = np.array([[np.nan, 21824.0], [np.inf, 0.0]])
    # NaN and inf → not clear; 0 has no masked bit set → clear.
    assert clear_kernel(qa, mask_bits(DEFAULT_MASKED)).tolist() == [[False, True], [False, True]]
    assert clear_kernel(qa, 0).tolist() == [[False, True], [False, True]]


@given(st.integers(0, 65535), st.integers(0, 255))
def test_kernel_matches_bit_arithmetic(value: int, bits: int) -> None:
    expected = (value & bits) == 0
    assert bool(clear_kernel(np.array(value, dtype=np.uint16), bits)) is expected
    assert bool(clear_kernel(np.array(float(value)), bits)) is expected


def test_clear_mask_dask_matches_kernel() -> None:
    values = np.array(list(GOLDEN) * 6, dtype=np.float32).reshape(3, 4, 5)
    values[0, 0, 0] = np.nan
    qa = xr.DataArray(values, dims=("time", "y", "x"), coords={"time": np.arange(3)}, name="qa_pixel")
    bits = mask_bits(DEFAULT_MASKED)
    lazy = clear_mask(qa.chunk({"time": 1, "y": 2, "x": 3}), bits)
    assert lazy.chunks is not None
    assert lazy.dtype == bool
    expected = clear_kernel(values, bits)
    np.testing.assert_array_equal(lazy.values, expected)
    eager = clear_mask(qa, bits)
    xr.testing.assert_identical(lazy.compute(), eager)
    assert eager.name == "qa_pixel"


def test_apply_scale_offset() -> None:
    raw = xr.DataArray(
        np.array([[7273.0, 10000.0], [np.nan, 43636.0]], dtype=np.float32),
        dims=("y", "x"),
        attrs={"nodata": np.nan, "units": "1"},
        name="red",
    )
    out = apply_scale_offset(raw, 2.75e-5, -0.2)
    # 7273 * 2.75e-5 - 0.2 = 0.2000075 - 0.2 = 7.5e-6; 10000 * 2.75e-5 - 0.2 = 0.075;
    # 43636 * 2.75e-5 - 0.2 = 1.19999 - 0.2 = 0.99999.
    np.testing.assert_allclose(out.values, [[7.5e-6, 0.075], [np.nan, 0.99999]], rtol=1e-4, atol=1e-6)
    assert out.dtype == np.float32
    assert out.name == "red"
    assert out.attrs["units"] == "1"
    lazy = apply_scale_offset(raw.chunk({"y": 1}), 2.75e-5, -0.2)
    assert lazy.chunks is not None
    xr.testing.assert_identical(lazy.compute(), out)
    # Integer input becomes float32 too.
    assert apply_scale_offset(raw.fillna(0).astype(np.uint16), 2.75e-5, -0.2).dtype == np.float32
