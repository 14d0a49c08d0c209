"""Spectral indices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

from gppscale.errors import MissingAssetError
from gppscale.stages.indices import INDEX_BANDS, add_indices, evi, kndvi, ndmi, ndvi, ndwi

BLUE, GREEN, RED, NIR, SWIR16 = 0.04, 0.08, 0.05, 0.45, 0.20


def test_hand_checked_values() -> None:
    # NDVI = (0.45 - 0.05) / (0.45 + 0.05) = 0.4 / 0.5 = 0.8
    assert float(ndvi(np.float64(RED), np.float64(NIR))) == pytest.approx(0.8)
    # kNDVI = tanh(0.8²) = tanh(0.64) = 0.564900...
    assert float(kndvi(np.float64(RED), np.float64(NIR))) == pytest.approx(math.tanh(0.64))
    assert math.tanh(0.64) == pytest.approx(0.5649, abs=1e-4)
    # EVI = 2.5 * 0.4 / (0.45 + 6 * 0.05 - 7.5 * 0.04 + 1) = 1.0 / (0.45 + 0.30 - 0.30 + 1) = 1 / 1.45
    assert float(evi(np.float64(RED), np.float64(NIR), np.float64(BLUE))) == pytest.approx(0.6896552)
    # NDWI (McFeeters) = (0.08 - 0.45) / (0.08 + 0.45) = -0.37 / 0.53 = -0.698113
    assert float(ndwi(np.float64(GREEN), np.float64(NIR))) == pytest.approx(-0.698113, abs=1e-6)
    # NDMI (Gao) = (0.45 - 0.20) / (0.45 + 0.20) = 0.25 / 0.65 = 0.384615
    assert float(ndmi(np.float64(NIR), np.float64(SWIR16))) == pytest.approx(0.384615, abs=1e-6)


def test_zero_denominators_give_nan_without_warnings() -> None:
    zero = np.zeros(2)
    assert np.isnan(ndvi(zero, zero)).all()
    assert np.isnan(kndvi(zero, zero)).all()
    assert np.isnan(ndwi(zero, zero)).all()
    assert np.isnan(ndmi(np.array([0.1, 0.0]), np.array([-0.1, 0.0]))).all()  # 0.2/0 and 0/0
    # EVI denominator: nir + 6 red - 7.5 blue + 1 = 0.5 + 6 * 0.375 - 7.5 * 0.5 + 1
    # = 0.5 + 2.25 - 3.75 + 1 = 0 (all terms exact in binary).
    assert np.isnan(evi(np.array([0.375]), np.array([0.5]), np.array([0.5]))).all()
    assert not np.isinf(ndvi(np.array([0.1]), np.array([-0.1]))).any()


def test_dtypes() -> None:
    f32 = np.array([0.1, 0.2], np.float32)
    assert ndvi(f32, f32[::-1]).dtype == np.float32
    assert evi(f32, f32, f32).dtype == np.float32
    assert ndvi(np.array([1, 2], np.uint16), np.array([3, 2], np.uint16)).dtype == np.float32
    assert ndvi(np.array([0.1]), np.array([0.2])).dtype == np.float64


@given(st.floats(0, 1), st.floats(0, 1))
def test_normalised_differences_bounded(a: float, b: float) -> None:
    for value in (ndvi(np.float64(a), np.float64(b)), ndwi(np.float64(a), np.float64(b))):
        assert np.isnan(value) == (a + b == 0)
        if a + b > 0:
            assert -1.0 <= float(value) <= 1.0
    k = kndvi(np.float64(a), np.float64(b))
    if a + b > 0:
        assert 0.0 <= float(k) <= math.tanh(1.0) + 1e-12


def _dataset() -> xr.Dataset:
    rng = np.random.default_rng(0)
    shape = (2, 5, 6)
    data = {b: (("time", "y", "x"), rng.uniform(0.0, 0.6, shape).astype(np.float32)) for b in INDEX_BANDS}
    ds = xr.Dataset(data, coords={"time": [0, 1], "spatial_ref": 0}, attrs={"a": 1})
    ds["red"].values[0, 0, 0] = 0.0
    ds["nir08"].values[0, 0, 0] = 0.0
    ds["red"].attrs = {"long_name": "red reflectance", "units": "1"}
    return ds


def test_add_indices_numpy_and_dask() -> None:
    ds = _dataset()
    out = add_indices(ds)
    for name in ("ndvi", "kndvi", "evi", "ndwi", "ndmi"):
        assert set(out[name].attrs) == {"long_name", "units"}, name
        assert out[name].attrs["units"] == "1"
        assert out[name].dtype == np.float32
        assert out[name].dims == ("time", "y", "x")
    assert np.isnan(out.ndvi.values[0, 0, 0])
    np.testing.assert_array_equal(out.ndvi.values, ndvi(ds.red.values, ds.nir08.values))
    np.testing.assert_array_equal(out.evi.values, evi(ds.red.values, ds.nir08.values, ds.blue.values))
    np.testing.assert_array_equal(out.ndmi.values, ndmi(ds.nir08.values, ds.swir16.values))
    assert out.red.attrs == {"long_name": "red reflectance", "units": "1"}
    assert out.attrs == {"a": 1}
    lazy = add_indices(ds.chunk({"time": 1, "y": 2, "x": 4}))
    assert lazy.ndvi.chunks == ((1, 1), (2, 2, 1), (4, 2))
    xr.testing.assert_identical(lazy.compute(), out)


def test_index_functions_on_dataarrays_stay_lazy() -> None:
    ds = _dataset().chunk({"y": 2})
    result = kndvi(ds.red, ds.nir08)
    assert isinstance(result, xr.DataArray)
    assert result.chunks is not None
    np.testing.assert_allclose(result.values, np.tanh(ndvi(ds.red.values, ds.nir08.values) ** 2))


def test_add_indices_missing_band() -> None:
    with pytest.raises(MissingAssetError, match=r"\['swir16'\].*collections.landsat.assets"):
        add_indices(_dataset().drop_vars("swir16"))
