"""Forest-type ids from GLC_FCS30 codes."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

from gppscale.config import ForestTypesSpec
from gppscale.errors import SpecError
from gppscale.stages.forest import (
    FOREST_TYPE_FILL,
    FOREST_TYPE_IDS,
    forest_lut,
    forest_type,
    forest_type_kernel,
)

SPEC = ForestTypesSpec()
CODE_TO_TYPE = SPEC.code_to_type()
FILL = SPEC.fill


def test_ids() -> None:
    assert dict(FOREST_TYPE_IDS) == {"non-forest": 0, "ENF": 1, "DBF": 2, "MF": 3, "DNF": 4, "EBF": 5}
    assert FOREST_TYPE_FILL == 255
    assert FILL == (0, 250)


def test_kernel_default_glc_fcs30_codes() -> None:
    codes = np.array([[71, 61, 91, 81, 51], [10, 130, 0, 250, 210]], dtype=np.uint8)
    # 71 ENF=1, 61 DBF=2, 91 MF=3, 81 DNF=4, 51 EBF=5; 10 cropland, 130 grassland, 210 water → 0;
    # 0 and 250 fill → 255.
    got = forest_type_kernel(codes, CODE_TO_TYPE, FILL)
    assert got.dtype == np.uint8
    assert got.tolist() == [[1, 2, 3, 4, 5], [0, 0, 255, 255, 0]]


def test_kernel_float_and_wide_int_input() -> None:
    codes = np.array([71.0, np.nan, 61.0, 300.0, -5.0, 250.0])
    # NaN and values outside 0-255 → fill as well.
    assert forest_type_kernel(codes, CODE_TO_TYPE, FILL).tolist() == [1, 255, 2, 255, 255, 255]
    assert forest_type_kernel(np.array([81, 1000], np.int32), CODE_TO_TYPE, FILL).tolist() == [4, 255]


@given(st.integers(0, 255))
def test_kernel_matches_mapping(code: int) -> None:
    expected = 255 if code in FILL else FOREST_TYPE_IDS[CODE_TO_TYPE.get(code, "non-forest")]
    assert forest_type_kernel(np.array([code], np.uint8), CODE_TO_TYPE, FILL).tolist() == [expected]
    assert forest_type_kernel(np.array([float(code)]), CODE_TO_TYPE, FILL).tolist() == [expected]


def test_lut_errors() -> None:
    with pytest.raises(SpecError, match=r"'XYZ'.*forest_types.codes"):
        forest_lut({71: "XYZ"}, [])
    with pytest.raises(SpecError, match="outside 0-255"):
        forest_lut({256: "ENF"}, [])
    with pytest.raises(SpecError, match="outside 0-255"):
        forest_lut({}, [-1])


def test_forest_type_dataarray_numpy_and_dask() -> None:
    rng = np.random.default_rng(0)
    values = rng.choice(np.array([0, 10, 51, 61, 71, 72, 81, 91, 250], np.uint8), size=(7, 9))
    codes = xr.DataArray(
        values, dims=("y", "x"), coords={"y": np.arange(7), "spatial_ref": 0}, attrs={"units": "1"}
    )
    eager = forest_type(codes, CODE_TO_TYPE, FILL)
    assert eager.name == "forest_type"
    assert eager.dtype == np.uint8
    np.testing.assert_array_equal(eager.values, forest_type_kernel(values, CODE_TO_TYPE, FILL))
    assert eager.attrs["flag_meanings"] == "non-forest ENF DBF MF DNF EBF"
    assert eager.attrs["flag_values"].tolist() == [0, 1, 2, 3, 4, 5]
    assert eager.attrs["flag_values"].dtype == np.uint8
    assert "_FillValue" not in eager.attrs
    assert "units" not in eager.attrs
    lazy = forest_type(codes.chunk({"y": 3, "x": 4}), CODE_TO_TYPE, FILL)
    assert lazy.chunks == ((3, 3, 1), (4, 4, 1))
    xr.testing.assert_identical(lazy.compute(), eager)
