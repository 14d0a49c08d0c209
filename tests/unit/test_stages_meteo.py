"""Quarterly meteorology, lapse-rate temperature and the terrain radiation factor."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gppscale.errors import MissingAssetError, SpecError
from gppscale.stages.meteo import (
    DIFFUSE_FRACTION,
    LAPSE_RATE_K_PER_M,
    METEO_VARS,
    quarterly_meteo,
    radiation_terrain_factor,
    temperature_at_elevation,
    temperature_to_sea_level,
    weighted_mean_kernel,
)
from gppscale.stages.quarters import Quarter

NAN = np.nan
# Three 8-day windows: w0 [26 Mar, 3 Apr) → 6 days in Q1 (26-31 Mar), 2 in Q2 (1-2 Apr);
# w1 [3 Apr, 11 Apr) → 8 days in Q2; w2 [28 Jun, 6 Jul) → 3 days in Q2 (28-30 Jun), 5 in Q3 (1-5 Jul).
STARTS = np.array(["2021-03-26", "2021-04-03", "2021-06-28"], dtype="datetime64[D]")
ENDS = STARTS + np.timedelta64(8, "D")
QUARTERS = [Quarter(2021, 1), Quarter(2021, 2), Quarter(2021, 3), Quarter(2021, 4)]


def test_constants() -> None:
    assert LAPSE_RATE_K_PER_M == 0.0065
    assert DIFFUSE_FRACTION == 0.3


def test_weighted_mean_kernel() -> None:
    v = np.array([[10.0, 10.0, NAN], [20.0, NAN, NAN], [30.0, 30.0, NAN]])  # (time, x)
    got = weighted_mean_kernel(v, np.array([2.0, 8.0, 3.0]))
    # x0: (10*2 + 20*8 + 30*3) / 13 = 270 / 13 = 20.7692; x1: (10*2 + 30*3) / 5 = 22; x2: all NaN → NaN
    np.testing.assert_allclose(got, [270 / 13, 22.0, NAN], rtol=1e-6)
    assert got.dtype == np.float32


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 4)), elements=st.floats(-50, 50)),
    st.data(),
)
def test_weighted_mean_kernel_matches_masked_average(values: np.ndarray, data: st.DataObject) -> None:
    missing = data.draw(hnp.arrays(np.bool_, values.shape))
    weights = data.draw(hnp.arrays(np.float64, values.shape[:1], elements=st.floats(0.5, 8)))
    v = np.where(missing, NAN, values)
    got = weighted_mean_kernel(v, weights)
    for j in range(v.shape[1]):
        keep = ~missing[:, j]
        if keep.any():
            expected = np.average(values[keep, j], weights=weights[keep])
            assert got[j] == pytest.approx(expected, rel=1e-5, abs=1e-4)
        else:
            assert np.isnan(got[j])


def _met() -> xr.Dataset:
    # pixel (0, 0): tmean 10, 20, 30; pixel (0, 1): tmean 10, NaN, 30. prcp rates 1, 2, 4 mm d-1.
    tmean = np.array([[[10.0, 10.0]], [[20.0, NAN]], [[30.0, 30.0]]], np.float32)
    prcp = np.array([[[1.0, 1.0]], [[2.0, NAN]], [[4.0, 4.0]]], np.float32)
    dims = ("time", "y", "x")
    coords = {"time": STARTS.astype("datetime64[ns]"), "y": [0.5], "x": [0.5, 1.5], "spatial_ref": 0}
    return xr.Dataset(
        {
            "tmean": (dims, tmean, {"units": "degC", "grid_mapping": "spatial_ref"}),
            "prcp": (dims, prcp, {"units": "mm d-1"}),
            "srad": (dims, tmean * 10.0),
            "vpd": (dims, tmean / 10.0),
        },
        coords=coords,
        attrs={"source": "era5-land"},
    )


def test_quarterly_meteo_hand_checked() -> None:
    out = quarterly_meteo(_met(), STARTS, ENDS, QUARTERS)
    assert out.time.values.tolist() == np.array([q.start for q in QUARTERS], "datetime64[ns]").tolist()
    assert list(out.data_vars) == list(METEO_VARS)
    for name in METEO_VARS:
        assert out[name].dims == ("time", "y", "x")
        assert out[name].dtype == np.float32
    # tmean Q1 = w0 only = 10; Q2 = (10*2 + 20*8 + 30*3) / 13 = 270/13; Q3 = w2 only = 30; Q4 = no window.
    # pixel 1 (w1 missing) in Q2: (10*2 + 30*3) / (2 + 3) = 22.
    np.testing.assert_allclose(out.tmean.values[:, 0, 0], [10.0, 270 / 13, 30.0, NAN], rtol=1e-6)
    np.testing.assert_allclose(out.tmean.values[:, 0, 1], [10.0, 22.0, 30.0, NAN], rtol=1e-6)
    # prcp Q1 = 1 mm/d * 90 d = 90; Q2 = (1*2 + 2*8 + 4*3)/13 mm/d * 91 d = 30/13 * 91 = 210;
    # Q3 = 4 * 92 = 368. Pixel 1, Q2: (1*2 + 4*3)/5 = 2.8 mm/d * 91 d = 254.8 (not biased low).
    np.testing.assert_allclose(out.prcp.values[:, 0, 0], [90.0, 210.0, 368.0, NAN], rtol=1e-6)
    np.testing.assert_allclose(out.prcp.values[:, 0, 1], [90.0, 254.8, 368.0, NAN], rtol=1e-6)
    np.testing.assert_allclose(out.srad.values[:, 0, 0], [100.0, 2700 / 13, 300.0, NAN], rtol=1e-6)
    np.testing.assert_allclose(out.vpd.values[:, 0, 0], [1.0, 27 / 13, 3.0, NAN], rtol=1e-6)
    units = {name: out[name].attrs["units"] for name in METEO_VARS}
    assert units == {"tmean": "degC", "prcp": "mm quarter-1", "srad": "W m-2", "vpd": "hPa"}
    assert out.tmean.attrs["grid_mapping"] == "spatial_ref"
    assert "spatial_ref" in out.coords
    assert out.attrs == {"source": "era5-land"}


def test_quarterly_meteo_daily_windows() -> None:
    # 365 daily windows of 2021 with tmean = day of year: Q1 mean = mean(1..90) = 45.5.
    days = np.arange("2021-01-01", "2022-01-01", dtype="datetime64[D]")
    v = np.arange(1, 366, dtype=np.float32).reshape(-1, 1, 1)
    met = xr.Dataset(dict.fromkeys(METEO_VARS, (("time", "y", "x"), v)), coords={"time": days})
    out = quarterly_meteo(met, days, days + np.timedelta64(1, "D"), [Quarter(2021, 1)])
    assert float(out.tmean[0, 0, 0]) == pytest.approx(45.5)
    # prcp: sum of 1..90 = 90 * 91 / 2 = 4095 mm
    assert float(out.prcp[0, 0, 0]) == pytest.approx(4095.0)


def test_quarterly_meteo_dask_matches_in_memory() -> None:
    met = _met()
    eager = quarterly_meteo(met, STARTS, ENDS, QUARTERS)
    lazy = quarterly_meteo(met.chunk({"time": 1, "x": 1}), STARTS, ENDS, QUARTERS)
    assert lazy.tmean.chunks == ((1, 1, 1, 1), (1,), (1, 1))
    computed = lazy.compute()
    xr.testing.assert_allclose(computed, eager, rtol=1e-6)
    for name in METEO_VARS:
        assert computed[name].attrs == eager[name].attrs
        assert computed[name].dtype == np.float32


def test_quarterly_meteo_errors() -> None:
    met = _met()
    with pytest.raises(MissingAssetError, match=r"\['vpd'\]"):
        quarterly_meteo(met.drop_vars("vpd"), STARTS, ENDS, QUARTERS)
    with pytest.raises(SpecError, match="one \\[start, end\\) window per time step"):
        quarterly_meteo(met, STARTS[:2], ENDS[:2], QUARTERS)
    with pytest.raises(SpecError, match="at least one quarter"):
        quarterly_meteo(met, STARTS, ENDS, [])


def test_lapse_rate() -> None:
    # 5 °C at 1000 m → 5 + 0.0065 * 1000 = 11.5 °C at sea level → at 1200 m: 11.5 - 7.8 = 3.7 °C.
    t0 = temperature_to_sea_level(5.0, 1000.0)
    assert t0 == pytest.approx(11.5)
    assert temperature_at_elevation(t0, 1200.0) == pytest.approx(3.7)
    assert temperature_at_elevation(11.5, 1000.0, lapse=0.005) == pytest.approx(6.5)
    t = xr.DataArray(np.array([5.0, NAN]), dims="x", attrs={"units": "degC"}).chunk()
    z = xr.DataArray(np.array([1000.0, 0.0]), dims="x")
    out = temperature_to_sea_level(t, z)
    assert out.chunks is not None
    np.testing.assert_allclose(out.values, [11.5, NAN])
    assert out.attrs == {"units": "degC"}
    np.testing.assert_allclose(temperature_at_elevation(np.array([11.5]), np.array([1000.0])), [5.0])


def test_radiation_flat_is_exactly_one() -> None:
    for lat in (-60.0, 0.0, 42.0, 80.0):
        for doy in (1, 81, 172, 355):
            f = radiation_terrain_factor(np.zeros(2), np.zeros(2), np.zeros(2), lat, doy)
            assert f.tolist() == [1.0, 1.0], (lat, doy)
    # polar night at 80°N in December: no sun, the flat factor is still 1
    assert radiation_terrain_factor(np.array([0.0]), np.array([0.0]), np.array([0.0]), 80.0, 355)[0] == 1.0


def _slopes(lat: float, doy: int, kd: float = DIFFUSE_FRACTION) -> np.ndarray:
    # 30° slopes facing south, north, east, west
    return radiation_terrain_factor(
        np.full(4, 30.0), np.array([-1.0, 1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0, -1.0]), lat, doy, kd
    )


def test_radiation_winter_and_summer_at_42n() -> None:
    south, north, east, west = _slopes(42.0, 15)
    # Noon zenith in mid-January ≈ 42 + 21.3 = 63.3°; a 30° south slope sees the sun at 33.3°:
    # cos 33.3 / cos 63.3 ≈ 1.86 for the direct part → factor ≈ 0.7 * 1.8 + 0.3 * (1 + cos 30°) / 2 ≈ 1.8.
    assert south > 1.5
    # the north slope never sees the winter sun: only diffuse, 0.3 * (1 + cos 30°) / 2 = 0.2799.
    assert north == pytest.approx(0.3 * (1 + math.cos(math.radians(30))) / 2, rel=1e-6)
    assert north < 0.5
    assert east == pytest.approx(west, rel=1e-5)  # the sun's path is symmetric about noon
    s_summer, n_summer, _, _ = _slopes(42.0, 196)
    assert abs(s_summer - 1) < abs(south - 1)
    assert abs(n_summer - 1) < abs(north - 1)
    assert 0.8 < n_summer < s_summer < 1.0
    # southern hemisphere mirrors: at 42°S in July the north-facing slope gains
    assert _slopes(-42.0, 196)[1] > 1.5


def test_radiation_equinox_tilt_equals_latitude() -> None:
    # Cooper: declination = 23.45° sin(360° (284 + 81) / 365) = 0 on day 81. A south slope tilted by the
    # latitude is then parallel to the horizontal at the equator: cos i = cos h, cos z = cos φ cos h, over
    # the same daylight hours, so the direct ratio is 1 / cos φ; with kd = 0 the factor is 1 / cos 42°.
    f = radiation_terrain_factor(np.array([42.0]), np.array([-1.0]), np.array([0.0]), 42.0, 81, 0.0)
    assert f[0] == pytest.approx(1 / math.cos(math.radians(42.0)), rel=1e-5)
    # all diffuse: the sky-view share (1 + cos s) / 2
    g = radiation_terrain_factor(np.array([42.0]), np.array([-1.0]), np.array([0.0]), 42.0, 81, 1.0)
    assert g[0] == pytest.approx((1 + math.cos(math.radians(42.0))) / 2, rel=1e-6)


def test_radiation_on_dask_dataarrays() -> None:
    rng = np.random.default_rng(0)
    aspect = rng.uniform(0, 2 * np.pi, (5, 6))
    slope = rng.uniform(0, 40, (5, 6))
    slope[0, 0] = NAN
    dims = ("y", "x")
    coords = {"y": np.arange(5.0), "spatial_ref": 0}
    s = xr.DataArray(slope, dims=dims, coords=coords).chunk({"y": 2})
    n = xr.DataArray(np.cos(aspect), dims=dims, coords=coords).chunk({"y": 2})
    e = xr.DataArray(np.sin(aspect), dims=dims, coords=coords).chunk({"y": 2})
    lazy = radiation_terrain_factor(s, n, e, 42.0, 136)
    assert isinstance(lazy, xr.DataArray)
    assert lazy.chunks == ((2, 2, 1), (6,))
    assert lazy.attrs["units"] == "1"
    expected = radiation_terrain_factor(slope, np.cos(aspect), np.sin(aspect), 42.0, 136)
    np.testing.assert_array_equal(lazy.values, expected)
    assert np.isnan(lazy.values[0, 0])
    assert expected.dtype == np.float32
    # stacking quarters like the cube does
    stacked = xr.concat([radiation_terrain_factor(s, n, e, 42.0, q.mid_doy) for q in QUARTERS], dim="time")
    assert stacked.sizes == {"time": 4, "y": 5, "x": 6}


def test_radiation_rejects_bad_diffuse_fraction() -> None:
    with pytest.raises(SpecError, match=r"cube\.diffuse_fraction"):
        radiation_terrain_factor(np.zeros(1), np.zeros(1), np.zeros(1), 42.0, 15, 1.5)
