"""Slope, northness and eastness with Horn's method."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from gppscale.errors import SpecError
from gppscale.stages.terrain import terrain, terrain_kernel

NY, NX, RES = 6, 7, 30.0
ROWS, COLS = np.mgrid[0:NY, 0:NX].astype(np.float64)  # row 0 is the northern edge, column 0 the western
INNER = (slice(1, -1), slice(1, -1))


def _dem(z: np.ndarray, *, y_up: bool = False) -> xr.DataArray:
    y = 1000.0 - RES * np.arange(z.shape[0])
    if y_up:  # rows south → north, y increasing: the same surface stored the other way round
        z, y = z[::-1], y[::-1]
    return xr.DataArray(z, dims=("y", "x"), coords={"y": y, "x": RES * np.arange(z.shape[1])})


@pytest.mark.parametrize(
    ("z", "north", "east", "tan_slope"),
    [
        # rises 1 m per 30 m to the north (row 0 highest): faces south, slope atan(1/30) = 1.909°.
        ((NY - 1 - ROWS) * 1.0, -1.0, 0.0, 1 / 30),
        # rises 1 m per 30 m to the south: faces north.
        (ROWS * 1.0, 1.0, 0.0, 1 / 30),
        # rises 1 m per 30 m to the east: faces west.
        (COLS * 1.0, 0.0, -1.0, 1 / 30),
        # rises 3 m per 30 m to the west: faces east, slope atan(0.1) = 5.711°.
        ((NX - 1 - COLS) * 3.0, 0.0, 1.0, 0.1),
        # rises 1 m per 30 m to the south and to the west: faces north-east,
        # |grad| = sqrt(2)/30, northness = eastness = 1/sqrt(2).
        (ROWS + (NX - 1 - COLS), math.sqrt(0.5), math.sqrt(0.5), math.sqrt(2) / 30),
    ],
)
def test_planes(z: np.ndarray, north: float, east: float, tan_slope: float) -> None:
    slope_deg, northness, eastness = terrain_kernel(z, RES)
    assert slope_deg.dtype == northness.dtype == eastness.dtype == np.float32
    assert slope_deg.shape == z.shape
    np.testing.assert_allclose(slope_deg[INNER], math.degrees(math.atan(tan_slope)), rtol=1e-6)
    np.testing.assert_allclose(northness[INNER], north, atol=1e-6)
    np.testing.assert_allclose(eastness[INNER], east, atol=1e-6)
    # The same planes through the xarray wrapper, stored south → north, give the same physical answer.
    flipped = terrain(_dem(z, y_up=True), RES).isel(y=slice(None, None, -1))
    np.testing.assert_allclose(flipped.northness.values[INNER], north, atol=1e-6)
    np.testing.assert_allclose(flipped.eastness.values[INNER], east, atol=1e-6)


def test_north_plane_exact_degrees() -> None:
    slope_deg, _, _ = terrain_kernel((NY - 1 - ROWS) * 1.0, RES)
    assert float(slope_deg[2, 3]) == pytest.approx(1.9091, abs=1e-4)  # atan(1/30) in degrees


def test_hand_checked_3x3() -> None:
    z = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    slope_deg, northness, eastness = terrain_kernel(z, 1.0)
    # centre: dz/dx = ((3 + 2*6 + 9) - (1 + 2*4 + 7)) / 8 = (24 - 16) / 8 = 1 (rises east)
    #         dz/dy = ((1 + 2*2 + 3) - (7 + 2*8 + 9)) / 8 = (8 - 32) / 8 = -3 (rises south)
    # |grad| = sqrt(10): slope = atan(sqrt(10)) = 72.452°; faces north-west:
    # northness = 3 / sqrt(10) = 0.94868, eastness = -1 / sqrt(10) = -0.31623.
    assert float(slope_deg[1, 1]) == pytest.approx(72.4516, abs=1e-4)
    assert float(northness[1, 1]) == pytest.approx(0.948683, abs=1e-6)
    assert float(eastness[1, 1]) == pytest.approx(-0.316228, abs=1e-6)
    # top-left corner with replicated borders: rows/cols -1 copy 0, so the window is
    # [[1,1,2],[1,1,2],[4,4,5]]: dz/dx = ((2+4+5) - (1+2+4)) / 8 = 0.5,
    # dz/dy = ((1+2+2) - (4+8+5)) / 8 = -1.5.
    assert float(northness[0, 0]) == pytest.approx(1.5 / math.hypot(0.5, 1.5), abs=1e-6)
    assert float(eastness[0, 0]) == pytest.approx(-0.5 / math.hypot(0.5, 1.5), abs=1e-6)


def test_flat_gives_zeros_not_negative_zeros() -> None:
    slope_deg, northness, eastness = terrain_kernel(np.full((4, 5), 123.0), RES)
    for a in (slope_deg, northness, eastness):
        assert not a.any()
        assert not np.signbit(a).any()
    ds = terrain(_dem(np.full((4, 5), 123.0), y_up=True), RES)
    assert not np.signbit(ds.northness.values).any()


def test_nan_spreads_to_its_3x3_window() -> None:
    z = ROWS * 2.0 + COLS
    z[3, 3] = np.nan
    outputs = terrain_kernel(z, RES)
    expected = np.zeros(z.shape, bool)
    expected[2:5, 2:5] = True
    for a in outputs:
        np.testing.assert_array_equal(np.isnan(a), expected)


def test_terrain_dataset_and_attrs() -> None:
    dem = _dem(np.random.default_rng(0).uniform(800, 1200, (NY, NX)).astype(np.float32))
    dem = dem.assign_coords(spatial_ref=0).assign_attrs(source="cop-dem")
    ds = terrain(dem, RES)
    assert list(ds.data_vars) == ["elevation", "slope", "northness", "eastness"]
    assert ds.slope.attrs["units"] == "degree"
    assert ds.northness.attrs["units"] == ds.eastness.attrs["units"] == "1"
    assert ds.elevation.attrs["units"] == "m"
    assert ds.elevation.attrs["source"] == "cop-dem"
    np.testing.assert_array_equal(ds.elevation.values, dem.values)
    assert "spatial_ref" in ds.coords
    slope, north, east = terrain_kernel(dem.values, RES)
    np.testing.assert_array_equal(ds.slope.values, slope)
    np.testing.assert_array_equal(ds.northness.values, north)
    np.testing.assert_array_equal(ds.eastness.values, east)
    # (x, y) order is accepted and transposed
    xr.testing.assert_identical(terrain(dem.transpose("x", "y"), RES), ds)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 8), st.integers(1, 8), st.booleans())
def test_chunked_equals_unchunked_exactly(cy: int, cx: int, y_up: bool) -> None:
    rng = np.random.default_rng(cy * 10 + cx)
    z = rng.uniform(0, 500, (11, 13)).astype(np.float32)
    z[4, 6] = np.nan
    dem = _dem(z, y_up=y_up)
    eager = terrain(dem, RES)
    lazy = terrain(dem.chunk({"y": cy, "x": cx}), RES)
    assert lazy.slope.chunks == dem.chunk({"y": cy, "x": cx}).chunks
    assert any(name.startswith("terrain-") for name in lazy.__dask_graph__().layers)
    xr.testing.assert_identical(lazy.compute(), eager)


def test_errors() -> None:
    with pytest.raises(SpecError, match="res_m"):
        terrain_kernel(np.zeros((3, 3)), 0.0)
    with pytest.raises(SpecError, match=r"dims \('time', 'y', 'x'\)"):
        terrain(_dem(np.zeros((3, 3))).expand_dims(time=1), RES)
