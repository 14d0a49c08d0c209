"""Hand-checked pieces of the synthetic world: calendars, grids, QA bits, encoding, aggregation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gppscale.world.climate import glass_windows, quarter_day_overlap
from gppscale.world.coarse import CoarseOperator, encode_uint16
from gppscale.world.fields import FourierField, seeded_rng
from gppscale.world.grids import (
    MODIS_PIXEL_M,
    MODIS_TILE_M,
    Grid,
    modis_cover_grid,
    modis_tile_of_lonlat,
    snapped_utm_grid,
    utm_epsg_for_lonlat,
)
from gppscale.world.landsat import QA, SceneMasks, qa_pixel, scene_schedule, simulate_scene
from gppscale.world.landscape import Landscape, Points
from gppscale.world.truth import Canopy


def test_glass_windows_tile_the_year():
    starts, n = glass_windows(2021)
    assert len(starts) == 46
    assert str(starts[1]) == "2021-01-09"
    assert str(starts[-1]) == "2021-12-27"
    assert int(n[-1]) == 5 and int(n.sum()) == 365
    assert int(glass_windows(2020)[1][-1]) == 6  # leap year


def test_quarter_overlap_splits_straddling_window_by_days():
    starts, n = glass_windows(2021)
    ov = quarter_day_overlap(starts, n, 2021)
    assert ov.sum(axis=1).tolist() == [90, 91, 92, 92]
    # Window 12 starts on day 89 (30 March): 2 days in Q1, 6 in Q2.
    assert str(starts[11]) == "2021-03-30"
    assert ov[:, 11].tolist() == [2, 6, 0, 0]


def test_utm_zone_and_modis_tile_of_study_area():
    assert utm_epsg_for_lonlat(117.2, 42.1) == 32650
    assert utm_epsg_for_lonlat(-70.5, -33.4) == 32719
    assert modis_tile_of_lonlat(117.2, 42.1) == (26, 4)
    assert MODIS_TILE_M == pytest.approx(1111950.5197, abs=1e-3)


def test_modis_cover_grid_sits_on_the_global_grid():
    fine = snapped_utm_grid((117.15, 42.06, 117.24, 42.13), 30.0, 32650)
    coarse = modis_cover_grid(fine)
    assert coarse.res_x == MODIS_PIXEL_M == 463.312716525
    k = (coarse.x0 + 20015109.354) / MODIS_PIXEL_M
    assert k == pytest.approx(round(k), abs=1e-6)
    j = (10007554.677 - coarse.y0) / MODIS_PIXEL_M
    assert j == pytest.approx(round(j), abs=1e-6)
    # Column index inside tile h26 (x from the tile's west edge).
    assert 0 <= round(k) - 26 * 2400 < 2400


def test_snapped_grid_edges_are_multiples_of_resolution():
    g = snapped_utm_grid((117.15, 42.06, 117.24, 42.13), 30.0, 32650)
    assert g.x0 % 30 == 0 and g.y0 % 30 == 0
    w, s, e, n = g.bounds_lonlat()
    assert w <= 117.15 and s <= 42.06 and e >= 117.24 and n >= 42.13


def test_fourier_field_grid_equals_points_and_has_unit_variance():
    f = FourierField.make(seeded_rng(3, "t"), 300.0)
    xs, ys = np.arange(40) * 30.0, 4.6e6 - np.arange(30) * 30.0
    xx, yy = np.meshgrid(xs, ys)
    np.testing.assert_allclose(f.on_grid(xs, ys), f.at(xx, yy), atol=1e-9)
    big = f.on_grid(np.arange(600) * 30.0, np.arange(600) * 30.0)
    assert 0.7 < big.std() < 1.3


def test_seeded_rng_streams_differ_by_full_name():
    a = seeded_rng(0, "LC08_L2SP_124031_20210107").uniform()
    b = seeded_rng(0, "LC08_L2SP_124031_20210123").uniform()
    assert a != b
    assert seeded_rng(0, "x", 1).uniform() == seeded_rng(0, "x", 1).uniform()


def test_encode_uint16_scale_and_nodata():
    v = np.array([0.0, 1.234, 655.34, np.nan, 1000.0], dtype=np.float32)
    out = encode_uint16(v, 0.01, 65535)
    assert out.tolist() == [0, 123, 65534, 65535, 65534]


def test_qa_pixel_bits_follow_usgs_layout():
    f = np.array([False, True, False, False])
    t = np.array([False, False, True, False])
    m = SceneMasks(
        fill=f,
        cloud=t,
        dilated=np.zeros(4, bool),
        cirrus=np.zeros(4, bool),
        shadow=np.array([False, False, False, True]),
        snow=np.zeros(4, bool),
        water=np.zeros(4, bool),
    )
    qa = qa_pixel(m)
    # Clear land: clear bit + low confidences = 0b0101_0101_0100_0000 = 21824, as in real products.
    assert int(qa[0]) == 21824
    assert int(qa[1]) == 1  # fill
    assert (int(qa[2]) >> QA.CLOUD) & 1 == 1 and (int(qa[2]) >> QA.CLEAR) & 1 == 0
    assert (int(qa[2]) >> QA.CLOUD_CONF) & 3 == 3
    assert (int(qa[3]) >> QA.SHADOW) & 1 == 1 and (int(qa[3]) >> QA.CLEAR) & 1 == 1


@pytest.fixture(scope="module")
def tiny_canopy() -> tuple[Grid, Canopy]:
    grid = Grid("EPSG:32650", 512370.0, 4664250.0, 30.0, 30.0, 96, 80)
    land = Landscape(5)
    pts = Points(grid.xs, grid.ys, grid=True)
    return grid, Canopy.build(land, pts, np.zeros(grid.shape))


def _decode(qa: np.ndarray, bit: int) -> np.ndarray:
    return ((qa >> bit) & 1).astype(bool)


@pytest.mark.parametrize("date", ["2021-01-07", "2021-07-18"])
def test_scene_qa_agrees_with_generated_masks(tiny_canopy, date):
    grid, canopy = tiny_canopy
    scene = next(s for s in scene_schedule((2021,)) if str(s.date) == date)
    winter = date.startswith("2021-01")
    tmean = np.full(grid.shape, -12.0 if winter else 18.0, np.float32)
    dn, qa, m, cover = simulate_scene(canopy, grid, scene, tmean, snow_event=True, seed=11)
    assert (_decode(qa, QA.FILL) == m.fill).all()
    inside = ~m.fill
    for bit, mask in (
        (QA.CLOUD, m.cloud),
        (QA.DILATED_CLOUD, m.dilated),
        (QA.SHADOW, m.shadow),
        (QA.SNOW, m.snow),
        (QA.CIRRUS, m.cirrus),
    ):
        assert (_decode(qa, bit)[inside] == mask[inside]).all()
    assert (_decode(qa, QA.CLEAR)[inside] == ~(m.cloud | m.dilated)[inside]).all()
    assert (dn[:, m.fill] == 0).all() and (qa[m.fill] == 1).all()
    assert (dn[:, inside] > 0).all()
    assert not (m.cloud & m.dilated).any()
    assert 0.0 <= cover <= 100.0
    rho = dn * 2.75e-5 - 0.2
    if m.cloud.any() and (inside & ~m.cloud & ~m.snow).any():
        assert rho[1][m.cloud].mean() > rho[1][inside & ~m.cloud & ~m.snow].mean() + 0.1
    if winter:
        # A cold scene after snowfall: snow, bright in the visible and dark in SWIR.
        assert m.snow.any()
        assert rho[2][m.snow].mean() > 0.3 and rho[5][m.snow].mean() < 0.2
    else:
        assert not m.snow.any()


def test_shadows_fall_north_west_of_clouds(tiny_canopy):
    grid, canopy = tiny_canopy
    scenes = [s for s in scene_schedule((2021,)) if s.path == 124]
    tmean = np.full(grid.shape, 15.0, np.float32)
    dr = dc = 0.0
    for sc in scenes[8:16]:
        _, _, m, _ = simulate_scene(canopy, grid, sc, tmean, snow_event=False, seed=2)
        if m.shadow.sum() > 20 and m.cloud.sum() > 20:
            rc, cc = np.argwhere(m.cloud).mean(axis=0)
            rs, cs = np.argwhere(m.shadow).mean(axis=0)
            dr += rs - rc
            dc += cs - cc
    assert dr < 0 and dc < 0  # up (north) and left (west)


def test_coarse_operator_is_an_area_mean():
    fine = Grid("EPSG:32650", 512370.0, 4664250.0, 30.0, 30.0, 90, 90)
    coarse = modis_cover_grid(fine)
    op = CoarseOperator.build(fine, coarse, sub=3)
    assert op.complete.any()
    ones = op.apply(np.ones(fine.shape, np.float32))
    np.testing.assert_allclose(ones[op.complete], 1.0, rtol=1e-6)
    assert np.isnan(ones[~op.complete]).all()
    # A pixel in a complete cell contributes about 900/214659 of it (one 30 m pixel of a 463 m cell).
    row = op.weights.getrow(int(np.flatnonzero(op.complete.ravel())[0]))
    assert row.sum() == pytest.approx(1.0)
    assert 220 < row.nnz < 300


@given(st.floats(-179.9, 179.9), st.floats(-80, 84))
def test_utm_zone_contains_point(lon, lat):
    epsg = utm_epsg_for_lonlat(lon, lat)
    zone = epsg % 100
    assert -180 + 6 * (zone - 1) - 1e-9 <= lon < -180 + 6 * zone + 1e-9
    assert (epsg // 100 == 326) == (lat >= 0)
