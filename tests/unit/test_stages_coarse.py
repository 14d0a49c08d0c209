"""Coarse GPP/NPP decoding and 8-day windows prorated into quarterly sums, with hand-worked numbers."""

from __future__ import annotations

import doctest

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import gppscale.stages.coarse as coarse_mod
from gppscale.config import CoarseSpec
from gppscale.errors import NoDataError, SpecError
from gppscale.stages.coarse import decode_coarse, quarter_sum_kernel, quarterly_sums
from gppscale.stages.quarters import Quarter, overlap_days

NAN = np.nan
DAY = np.timedelta64(1, "D")
YEAR = [Quarter(2021, q) for q in (1, 2, 3, 4)]


def glass_windows(year: int = 2021) -> tuple[np.ndarray, np.ndarray]:
    """GLASS 8-day windows of a (non-leap) year: days 1, 9, ..., 361; the last one ends on 31 December."""
    new_year = np.datetime64(f"{year}-01-01", "D")
    starts = new_year + np.arange(0, 365, 8) * DAY
    ends = np.minimum(starts + 8 * DAY, np.datetime64(f"{year + 1}-01-01", "D"))
    return starts, ends


STARTS, ENDS = glass_windows()
# Index 11 is GLASS day 89: 2021-03-30..2021-04-06 (inclusive), across 31 March.
CROSS = 11
# Index 45 is GLASS day 361: 2021-12-27..2021-12-31 (inclusive), 5 days.
LAST = 45


def test_glass_windows_fixture() -> None:
    assert STARTS.size == 46
    assert str(STARTS[CROSS]) == "2021-03-30" and str(ENDS[CROSS] - DAY) == "2021-04-06"
    assert str(STARTS[LAST]) == "2021-12-27" and str(ENDS[LAST] - DAY) == "2021-12-31"
    assert int((ENDS - STARTS).sum() / DAY) == 365


def _rate(values_t: np.ndarray, chunks: dict[str, int] | None = None) -> xr.DataArray:
    """(time, y=1, x=n) rate with coordinates like a loaded coarse raster."""
    v = np.asarray(values_t, np.float32)
    v = v.reshape(v.shape[0], 1, -1)
    da = xr.DataArray(
        v,
        dims=("time", "y", "x"),
        coords={
            "time": STARTS[: v.shape[0]].astype("datetime64[ns]"),
            "y": [0.5],
            "x": np.arange(v.shape[2]) + 0.5,
            "spatial_ref": 0,
        },
        attrs={"units": "gC m-2 d-1", "grid_mapping": "spatial_ref"},
    )
    return da.chunk(chunks) if chunks else da


# --- decode -----------------------------------------------------------------------------------------


def test_decode_glass_defaults() -> None:
    raw = np.array([0, 1, 250, 3000, 3001, 65534, 65535], np.uint16)
    got = decode_coarse(raw, CoarseSpec())
    # scale 0.01: 0, 0.01, 2.5, 30 (= max_valid, kept); 30.01 > 30, GLASS fill 65534 and nodata → NaN
    np.testing.assert_allclose(got, [0.0, 0.01, 2.5, 30.0, NAN, NAN, NAN], rtol=1e-6)
    assert got.dtype == np.float32


def test_decode_offset_and_negative() -> None:
    spec = CoarseSpec(scale=0.5, offset=-1.0, nodata=0, max_valid=10.0)
    # raw 0 is nodata; 1 → -0.5 < 0 → NaN; 2 → 0; 4 → 1; 22 → 10 (kept); 23 → 10.5 > 10 → NaN
    got = decode_coarse(np.array([0, 1, 2, 4, 22, 23], np.int16), spec)
    np.testing.assert_allclose(got, [NAN, NAN, 0.0, 1.0, 10.0, NAN])


@pytest.mark.parametrize(
    ("units", "scale", "raw"),
    [
        ("gC m-2 d-1", 0.01, 250),  # 2.50 gC m-2 d-1
        ("gC m-2 8d-1", 0.01, 2000),  # 20 gC m-2 over 8 days → 2.5 per day
        ("kgC m-2 d-1", 1e-5, 250),  # 0.0025 kgC m-2 d-1 → 2.5 gC
    ],
)
def test_decode_units(units: str, scale: float, raw: int) -> None:
    spec = CoarseSpec.model_validate({"units": units, "scale": scale})
    got = decode_coarse(np.array([raw], np.uint16), spec)
    assert float(got[0]) == pytest.approx(2.5, rel=1e-6)


def test_decode_max_valid_is_in_product_units() -> None:
    spec = CoarseSpec.model_validate({"units": "gC m-2 8d-1"})  # default ceiling 240 gC per 8 days
    assert spec.max_valid == pytest.approx(240.0)
    got = decode_coarse(np.array([24000, 24001], np.uint16), spec)
    np.testing.assert_allclose(got, [30.0, NAN])


def test_decode_nan_input_stays_nan() -> None:
    got = decode_coarse(np.array([NAN, 100.0], np.float32), CoarseSpec())
    np.testing.assert_allclose(got, [NAN, 1.0])


def test_decode_dataarray_lazy_attrs() -> None:
    raw = xr.DataArray(
        dsa.from_array(np.array([[100, 65535], [200, 300]], np.uint16), chunks=1),
        dims=("y", "x"),
        coords={"y": [0, 1], "x": [0, 1]},
        attrs={"nodata": 65535, "scale_factor": 0.01, "grid_mapping": "spatial_ref", "units": "1"},
    )
    got = decode_coarse(raw, CoarseSpec())
    assert isinstance(got.data, dsa.Array) and got.chunks == ((1, 1), (1, 1))
    assert got.attrs == {"grid_mapping": "spatial_ref", "units": "gC m-2 d-1"}
    np.testing.assert_allclose(got.values, [[1.0, NAN], [2.0, 3.0]])
    assert got.dtype == np.float32


# --- quarterly sums ---------------------------------------------------------------------------------


def test_window_across_31_march_is_split_by_day() -> None:
    rates = np.full(STARTS.size, 1.0)
    rates[CROSS] = 2.0
    q = quarterly_sums(_rate(rates), STARTS, ENDS, YEAR)
    # Q1: 88 days at 1.0 + 2 days (30, 31 March) at 2.0 = 92; Q2: 6 days (1-6 April) at 2.0 + 85 at 1.0 = 97
    # Q3: 92 days at 1.0; Q4: 87 days at 1.0 + the 5-day window (27-31 December) at 1.0 = 92
    np.testing.assert_allclose(q.values[:, 0, 0], [92.0, 97.0, 92.0, 92.0], rtol=1e-6)


def test_year_end_window_counts_five_days() -> None:
    rates = np.full(STARTS.size, 1.0)
    rates[LAST] = 3.0  # 27-31 December at 3.0 → 5 * 3 = 15, plus 87 days at 1.0
    q = quarterly_sums(_rate(rates), STARTS, ENDS, YEAR)
    assert float(q[3, 0, 0]) == pytest.approx(87.0 + 15.0)
    assert float(q[0, 0, 0]) == pytest.approx(90.0)


def test_single_crossing_window_weights() -> None:
    # 2021-03-30..2021-04-06 at 2.0 gC m-2 d-1: 2 days * 2.0 to Q1, 6 days * 2.0 to Q2 (before filling).
    s = np.array(["2021-03-30"], dtype="datetime64[D]")
    e = s + 8 * DAY
    w1 = overlap_days(s, e, YEAR[0])
    w2 = overlap_days(s, e, YEAR[1])
    assert (w1.tolist(), w2.tolist()) == ([2.0], [6.0])
    # Quarter length 2 + 6 days: the kernel's sum equals 2 * 2.0 and 6 * 2.0 with nothing to fill.
    assert quarter_sum_kernel(np.array([[2.0]]), w1, 2, 1.0).tolist() == [4.0]
    assert quarter_sum_kernel(np.array([[2.0]]), w2, 6, 1.0).tolist() == [12.0]


def test_missing_windows_filled_with_quarter_mean() -> None:
    rates = np.full((STARTS.size, 2), 1.0)
    rates[:, 1] = 2.0
    rates[CROSS, 1] = NAN  # pixel 1 loses 30 Mar-6 Apr: Q1 has 88 valid days, Q2 85
    rates[CROSS + 1, 1] = 4.0  # 7-14 April at 4.0
    q = quarterly_sums(_rate(rates), STARTS, ENDS, YEAR)
    assert float(q[0, 0, 1]) == pytest.approx(2.0 * 90)  # mean 2.0 over the valid 88 days, times 90
    # Q2 valid: 77 days at 2.0 + 8 at 4.0 = 186 over 85 days; filled to 91 days: 186 / 85 * 91
    assert float(q[1, 0, 1]) == pytest.approx(186.0 / 85.0 * 91.0, rel=1e-6)
    np.testing.assert_allclose(q.values[:, 0, 0], [90.0, 91.0, 92.0, 92.0])


def test_coverage_rule() -> None:
    rates = np.full((STARTS.size, 1), 1.5)
    rates[:4, 0] = NAN  # Q1 loses 1 Jan-1 Feb: 32 days; valid 58 of 90 = 0.644
    strict = quarterly_sums(_rate(rates), STARTS, ENDS, YEAR)  # default 0.75 → NaN
    assert np.isnan(float(strict[0, 0, 0]))
    assert float(strict[1, 0, 0]) == pytest.approx(1.5 * 91)
    lax = quarterly_sums(_rate(rates), STARTS, ENDS, YEAR, min_coverage=0.6)
    assert float(lax[0, 0, 0]) == pytest.approx(1.5 * 90)
    exact = quarterly_sums(_rate(rates), STARTS, ENDS, YEAR, min_coverage=58 / 90)  # the boundary is kept
    assert float(exact[0, 0, 0]) == pytest.approx(1.5 * 90)


def test_all_nan_pixel_and_uncovered_quarter() -> None:
    rates = np.full((STARTS.size, 2), 1.0)
    rates[:, 1] = NAN
    q = quarterly_sums(_rate(rates), STARTS, ENDS, [Quarter(2021, 4), Quarter(2022, 1)], min_coverage=0.0)
    assert float(q[0, 0, 0]) == pytest.approx(92.0)
    assert np.isnan(q.values[0, 0, 1])
    assert np.isnan(q.values[1]).all()  # no window reaches 2022Q1


def test_output_coords_attrs_dtype() -> None:
    q = quarterly_sums(_rate(np.ones(STARTS.size)), STARTS, ENDS, YEAR)
    assert q.dims == ("time", "y", "x")
    assert q.dtype == np.float32
    assert q.time.dtype == np.dtype("datetime64[ns]")
    assert [str(t)[:10] for t in q.time.values] == ["2021-01-01", "2021-04-01", "2021-07-01", "2021-10-01"]
    assert q.attrs == {"units": "gC m-2 quarter-1", "grid_mapping": "spatial_ref"}
    assert "spatial_ref" in q.coords and q.x.values.tolist() == [0.5]


def test_dims_order_kept_when_time_not_first() -> None:
    rate = _rate(np.ones((STARTS.size, 3))).transpose("y", "x", "time")
    q = quarterly_sums(rate, STARTS, ENDS, YEAR)
    assert q.dims == ("time", "y", "x")


def test_lazy_for_dask_and_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 8, (STARTS.size, 1, 6)).astype(np.float32)
    values[rng.random(values.shape) < 0.2] = NAN
    eager = quarterly_sums(_rate(values), STARTS, ENDS, YEAR, min_coverage=0.5)
    lazy = quarterly_sums(_rate(values, {"time": 1, "x": 2}), STARTS, ENDS, YEAR, min_coverage=0.5)
    assert isinstance(lazy.data, dsa.Array)
    assert lazy.chunks == ((1, 1, 1, 1), (1,), (2, 2, 2))
    xr.testing.assert_allclose(lazy.compute(), eager)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 25), min_size=46, max_size=46))
def test_full_year_total_is_conserved(rates: list[float]) -> None:
    q = quarterly_sums(_rate(np.array(rates)), STARTS, ENDS, YEAR)
    lengths = (ENDS - STARTS) / DAY
    assert float(q.sum()) == pytest.approx(float(np.dot(rates, lengths)), rel=1e-5, abs=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window_start": STARTS[:-1]}, "46 time steps"),
        ({"quarters": []}, "at least one quarter"),
        ({"min_coverage": 1.5}, "min_coverage"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "rate": _rate(np.ones(STARTS.size)),
        "window_start": STARTS,
        "window_end": ENDS,
        "quarters": YEAR,
    }
    with pytest.raises(SpecError, match=match):
        quarterly_sums(**{**args, **kwargs})  # type: ignore[arg-type]


def test_no_time_dim_or_steps() -> None:
    with pytest.raises(SpecError, match="no 'time'"):
        quarterly_sums(_rate(np.ones(STARTS.size)).isel(time=0), STARTS, ENDS, YEAR)
    with pytest.raises(NoDataError, match="no time steps"):
        quarterly_sums(_rate(np.ones(STARTS.size)).isel(time=slice(0, 0)), STARTS[:0], ENDS[:0], YEAR)


def test_doctests() -> None:
    result = doctest.testmod(coarse_mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
