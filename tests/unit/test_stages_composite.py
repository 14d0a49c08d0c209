"""Quarterly median composites of clear observations."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gppscale.errors import SpecError
from gppscale.stages.composite import median_composite_kernel, quarterly_composite
from gppscale.stages.quarters import Quarter

NAN = np.nan


def test_kernel_hand_checked() -> None:
    # Two bands, five time steps, three pixels (y=1, x=3).
    b0 = [
        [0.10, 0.50, 0.90],
        [0.30, 0.20, 0.80],
        [0.20, NAN, 0.70],
        [0.90, 0.40, 0.60],
        [0.40, 0.60, 0.50],
    ]
    b1 = [
        [1.0, 5.0, 9.0],
        [3.0, 2.0, 8.0],
        [2.0, 3.0, 7.0],
        [NAN, 4.0, 6.0],
        [4.0, 6.0, 5.0],
    ]
    values = np.array([b0, b1], dtype=np.float32)[:, :, None, :]  # (band, time, y, x)
    clear = np.array(
        [
            [True, True, False],
            [True, False, False],
            [True, True, False],
            [True, True, False],
            [False, True, False],
        ]
    )[:, None, :]
    med, n = median_composite_kernel(values, clear)
    # pixel 0: t4 not clear, t3 has NaN in band 1 → t0..t2 count: b0 {0.1, 0.3, 0.2} → 0.2,
    #          b1 {1, 3, 2} → 2; n = 3.
    # pixel 1: t1 not clear, t2 NaN in band 0 → t0, t3, t4: b0 {0.5, 0.4, 0.6} → 0.5,
    #          b1 {5, 4, 6} → 5; n = 3.
    # pixel 2: nothing clear → NaN, n = 0.
    assert med.shape == (2, 1, 3)
    assert med.dtype == np.float32
    assert n.dtype == np.uint16
    np.testing.assert_array_equal(med[:, 0], np.array([[0.2, 0.5, NAN], [2.0, 5.0, NAN]], np.float32))
    assert n[0].tolist() == [3, 3, 0]


def test_kernel_even_count_is_mean_of_middle_values() -> None:
    values = np.array([4.0, 1.0, 3.0, 10.0], np.float32).reshape(1, 4, 1, 1)
    med, n = median_composite_kernel(values, np.ones((4, 1, 1), bool))
    # sorted 1, 3, 4, 10 → (3 + 4) / 2 = 3.5
    assert float(med[0, 0, 0]) == 3.5
    assert int(n[0, 0]) == 4


def test_kernel_empty_time_axis() -> None:
    med, n = median_composite_kernel(np.zeros((2, 0, 3, 4), np.float32), np.zeros((0, 3, 4), bool))
    assert med.shape == (2, 3, 4)
    assert np.isnan(med).all()
    assert n.shape == (3, 4)
    assert not n.any()


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 3), st.integers(1, 7), st.integers(1, 3), st.integers(1, 3)),
        elements=st.one_of(st.just(np.float32(np.nan)), st.floats(-1, 1, width=32)),
    ),
    st.data(),
)
def test_kernel_matches_nanmedian(values: np.ndarray, data: st.DataObject) -> None:
    clear = data.draw(hnp.arrays(np.bool_, values.shape[1:]))
    med, n = median_composite_kernel(values, clear)
    ok = clear & np.isfinite(values).all(axis=0)
    masked = np.where(ok[None], values, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the reference warns on All-NaN pixels
        expected = np.nanmedian(masked, axis=1)
    np.testing.assert_allclose(med, expected.astype(np.float32), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(n, ok.sum(axis=0))


TIMES = np.array(
    ["2021-01-05", "2021-02-10T10:30", "2021-03-31T23:00", "2021-04-01", "2021-05-02", "2021-06-20"],
    dtype="datetime64[ns]",
)


def _inputs(seed: int = 0) -> tuple[xr.Dataset, xr.DataArray]:
    rng = np.random.default_rng(seed)
    shape = (len(TIMES), 6, 8)
    coords = {"time": TIMES, "y": 3000.0 - 30.0 * np.arange(6), "x": 30.0 * np.arange(8), "spatial_ref": 0}
    data = {b: (("time", "y", "x"), rng.random(shape).astype(np.float32)) for b in ("red", "nir08")}
    bands = xr.Dataset(data, coords=coords, attrs={"title": "t"})
    bands["red"].values[1, 2, 3] = np.nan
    bands["red"].attrs = {"units": "1", "long_name": "red"}
    clear = xr.DataArray(rng.random(shape) > 0.3, dims=("time", "y", "x"), coords=coords)
    return bands, clear


QUARTERS = [Quarter(2021, 2), Quarter(2021, 1), Quarter(2021, 3)]  # order of the output, Q3 empty


def test_quarterly_composite_in_memory() -> None:
    bands, clear = _inputs()
    out = quarterly_composite(bands, clear, QUARTERS)
    assert list(out.data_vars) == ["red", "nir08", "n_clear"]
    assert (
        out.time.values.tolist()
        == np.array(["2021-04-01", "2021-01-01", "2021-07-01"], dtype="datetime64[ns]").tolist()
    )
    assert out.time.dtype == np.dtype("datetime64[ns]")
    assert out.red.dims == ("time", "y", "x")
    assert out.n_clear.dtype == np.uint16
    assert out.red.dtype == np.float32
    # Q2 = time steps 3..5, Q1 = 0..2 (31 March 23:00 is still Q1); compare with the kernel per quarter.
    for k, idx in enumerate([slice(3, 6), slice(0, 3)]):
        values = np.stack([bands.red.values[idx], bands.nir08.values[idx]])
        med, n = median_composite_kernel(values, clear.values[idx])
        np.testing.assert_array_equal(out.red.values[k], med[0])
        np.testing.assert_array_equal(out.nir08.values[k], med[1])
        np.testing.assert_array_equal(out.n_clear.values[k], n)
    assert np.isnan(out.red.values[2]).all()
    assert not out.n_clear.values[2].any()
    assert out.red.attrs == {"units": "1", "long_name": "red"}
    assert out.n_clear.attrs == {"long_name": "number of clear observations in the quarter", "units": "1"}
    assert out.attrs == {"title": "t"}
    assert "spatial_ref" in out.coords


def test_quarterly_composite_hand_checked_pixel() -> None:
    t = np.array(["2021-07-02", "2021-08-01", "2021-09-30"], dtype="datetime64[ns]")
    red = xr.DataArray(
        np.array([0.04, 0.08, 0.05], np.float32).reshape(3, 1, 1), dims=("time", "y", "x"), coords={"time": t}
    )
    clear = xr.DataArray(np.array([True, True, False]).reshape(3, 1, 1), dims=("time", "y", "x"))
    out = quarterly_composite(xr.Dataset({"red": red}), clear.assign_coords(time=t), [Quarter(2021, 3)])
    # clear: 0.04, 0.08 → median (0.04 + 0.08) / 2 = 0.06, n = 2
    assert float(out.red[0, 0, 0]) == pytest.approx(0.06)
    assert int(out.n_clear[0, 0, 0]) == 2


def test_quarterly_composite_dask_matches_in_memory() -> None:
    bands, clear = _inputs(1)
    eager = quarterly_composite(bands, clear, QUARTERS)
    chunks = {"time": 1, "y": 4, "x": 3}
    lazy = quarterly_composite(bands.chunk(chunks), clear.chunk(chunks), QUARTERS)
    for name in lazy.data_vars:
        assert lazy[name].chunks == ((1, 1, 1), (4, 2), (3, 3, 2)), name
    xr.testing.assert_identical(lazy.compute(), eager)


def test_quarterly_composite_graph_linear_in_chunks() -> None:
    bands, clear = _inputs(2)
    sizes = []
    for n_x in (1, 2, 4, 8):
        chunks = {"time": 1, "y": 6, "x": 8 // n_x}
        lazy = quarterly_composite(bands.chunk(chunks), clear.chunk(chunks), QUARTERS)
        sizes.append(len(dict(lazy.__dask_graph__())))
    steps = np.diff(sizes) / np.diff([1, 2, 4, 8])
    assert np.all(steps == steps[0]), sizes  # tasks = a + b * (number of y/x chunks)


def test_quarterly_composite_rejects_bad_inputs() -> None:
    bands, clear = _inputs()
    with pytest.raises(SpecError, match="at least one quarter"):
        quarterly_composite(bands, clear, [])
    with pytest.raises(SpecError, match=r"clear mask has dims"):
        quarterly_composite(bands, clear.isel(time=0), QUARTERS)
    with pytest.raises(SpecError, match=r"band 'red' has dims"):
        quarterly_composite(bands.assign(red=bands.red.isel(x=0)), clear, QUARTERS)
    with pytest.raises(SpecError, match="datetime64"):
        quarterly_composite(
            bands.assign_coords(time=np.arange(6)), clear.assign_coords(time=np.arange(6)), QUARTERS
        )
