"""Synthetic flux towers: truth bookkeeping, physics sanity, gaps, CSV format, errors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from gppscale.errors import WorldError
from gppscale.world.towers import (
    COLUMNS,
    MISSING,
    UMOL_M2_S_TO_GC_M2_PER_HALFHOUR,
    TowerSite,
    WindowForcing,
    simulate_tower,
    sites_geojson,
    tower_csv_name,
    write_tower_csv,
)

SITE = TowerSite("CN-Lu1", lon=117.2, lat=42.1, forest_type="DNF", utc_offset_h=8.0)


def glass_forcing(year: int) -> WindowForcing:
    """GLASS-style 8-day windows of a temperate forest year (46 windows, last one 5 or 6 days)."""
    start = np.arange(f"{year}-01-01", f"{year + 1}-01-01", 8, dtype="datetime64[D]")
    n_days = np.diff(np.append(start, np.datetime64(f"{year + 1}-01-01"))).astype(np.int64)
    x = (np.arange(start.size) + 0.5) / start.size
    season = np.sin(np.pi * x)
    return WindowForcing(
        start=start,
        n_days=n_days,
        gpp=8.0 * season**3,
        tmean=-15.0 + 35.0 * season,
        srad=80.0 + 180.0 * season,
        vpd=1.0 + 14.0 * season**3,
    )


FORCING = glass_forcing(2019)


@pytest.fixture(scope="module")
def record():
    return simulate_tower(SITE, FORCING, 2019, np.random.default_rng(42))


def window_of_step(forcing: WindowForcing) -> np.ndarray:
    return np.repeat(np.arange(forcing.n_days.size), forcing.n_days * 48)


def test_conversion_constant():
    # 1 umol CO2 m-2 s-1 = 12.011e-6 gC m-2 s-1; a half hour is 1800 s.
    assert pytest.approx(0.0216198, abs=1e-12) == UMOL_M2_S_TO_GC_M2_PER_HALFHOUR


def test_glass_windows_tile_the_year():
    assert FORCING.n_days.size == 46
    assert FORCING.n_days[-1] == 5 and FORCING.n_days.sum() == 365
    assert glass_forcing(2020).n_days[-1] == 6


def test_window_sums_of_true_gpp(record):
    sums = np.bincount(window_of_step(FORCING), weights=record.true_gpp_halfhourly)
    np.testing.assert_allclose(sums, FORCING.gpp * FORCING.n_days, rtol=1e-12, atol=1e-12)
    # Every day carries its window's rate: day 1 of window 0 sums to gpp[0].
    assert record.true_gpp_halfhourly[:48].sum() == pytest.approx(FORCING.gpp[0], rel=1e-12)


def test_quarterly_truth_prorates_a_window_straddling_a_quarter():
    # 2019: window A Jan 1 + 100 days (ends Apr 10) at 2 gC/d, window B Apr 11 + 265 days at 4 gC/d.
    # Q1 = 90 d x 2 = 180; Q2 = 10 d x 2 + 81 d x 4 = 344; Q3 = Q4 = 92 d x 4 = 368.
    forcing = WindowForcing(
        start=np.array(["2019-01-01", "2019-04-11"], dtype="datetime64[D]"),
        n_days=np.array([100, 265]),
        gpp=np.array([2.0, 4.0]),
        tmean=np.array([0.0, 15.0]),
        srad=np.array([150.0, 200.0]),
        vpd=np.array([3.0, 8.0]),
    )
    rec = simulate_tower(SITE, forcing, 2019, np.random.default_rng(0))
    expected = {1: 180.0, 2: 344.0, 3: 368.0, 4: 368.0}
    assert rec.quarterly_true_gpp.keys() == expected.keys()
    for quarter, value in expected.items():
        assert rec.quarterly_true_gpp[quarter] == pytest.approx(value, rel=1e-12)


def test_window_mean_shortwave_equals_forcing(record):
    sw = record.halfhourly["SW_IN_F"].to_numpy()
    means = np.bincount(window_of_step(FORCING), weights=sw) / (FORCING.n_days * 48)
    # Exact up to the 2-decimal rounding of the CSV (<= 0.005 W m-2).
    np.testing.assert_allclose(means, FORCING.srad, atol=0.006)
    daily = sw.reshape(-1, 48).mean(axis=1)
    per_day_forcing = np.repeat(FORCING.srad, FORCING.n_days)
    assert np.ptp(daily / per_day_forcing) > 0.1  # mild day-to-day variability
    assert (daily / per_day_forcing).max() < 2.0


def test_daily_mean_temperature_and_vpd_match_forcing(record):
    ta = record.halfhourly["TA_F"].to_numpy().reshape(-1, 48)
    vpd = record.halfhourly["VPD_F"].to_numpy().reshape(-1, 48)
    np.testing.assert_allclose(ta.mean(axis=1), np.repeat(FORCING.tmean, FORCING.n_days), atol=6e-4)
    np.testing.assert_allclose(vpd.mean(axis=1), np.repeat(FORCING.vpd, FORCING.n_days), atol=6e-4)
    range_c = ta.max(axis=1) - ta.min(axis=1)
    assert 8.0 < np.median(range_c) < 13.0  # amplitude ~5.5 degC
    assert 13.0 <= np.median(ta.argmax(axis=1)) / 2 <= 15.0  # warmest near 14:00
    assert (vpd >= 0).all()


def test_no_gpp_at_night(record):
    frame = record.halfhourly
    night = frame["SW_IN_F"].to_numpy() == 0
    assert 0.4 < night.mean() < 0.6
    assert (record.true_gpp_halfhourly[night] == 0).all()
    assert (frame["GPP_NT_VUT_REF"].to_numpy()[night] == 0).all()
    assert (record.true_gpp_halfhourly[~night] > 0).any()
    # Local solar noon at 117.2 E in UTC+8 is ~12:15: daylight at noon, darkness at midnight.
    sw = frame["SW_IN_F"].to_numpy().reshape(-1, 48)
    assert (sw[:, 24] > 0).all() and (sw[:, 0] == 0).all()


def test_nee_gap_fraction_and_qc(record):
    frame = record.halfhourly
    gap = frame["NEE_VUT_REF"].to_numpy() == MISSING
    night = frame["SW_IN_F"].to_numpy() == 0
    assert 0.25 <= gap.mean() <= 0.35
    assert gap[night].mean() > 2 * gap[~night].mean()  # the u* filter removes nights
    qc = frame["NEE_VUT_REF_QC"].to_numpy()
    assert ((qc > 0) == gap).all()
    assert set(np.unique(qc)) == {0, 1, 2, 3}
    assert (qc == 3).sum() >= 10 * 48  # the ~10-day gap
    for column in ("GPP_NT_VUT_REF", "RECO_NT_VUT_REF", "TA_F", "SW_IN_F", "VPD_F", "USTAR"):
        assert (frame[column] != MISSING).all(), column


def test_ustar_lower_at_night(record):
    ustar = record.halfhourly["USTAR"].to_numpy()
    night = record.halfhourly["SW_IN_F"].to_numpy() == 0
    assert np.median(ustar[night]) < 0.25 < 0.4 < np.median(ustar[~night])
    assert (ustar[night] < 0.2).mean() > 0.3


def test_nee_is_reco_minus_gpp_within_noise(record):
    frame = record.halfhourly
    ok = frame["NEE_VUT_REF"].to_numpy() != MISSING
    nee = frame["NEE_VUT_REF"].to_numpy()[ok]
    gpp = frame["GPP_NT_VUT_REF"].to_numpy()[ok]
    reco = frame["RECO_NT_VUT_REF"].to_numpy()[ok]
    residual = nee - (reco - gpp)
    # Noise sd is 0.3 + 0.15 |NEE| umol m-2 s-1; the partitioned columns add a few % bias and 5 % noise.
    assert abs(residual.mean()) < 0.1 * (gpp + reco).mean()
    assert np.median(np.abs(residual)) < 0.6
    assert (np.abs(residual) < 1.0 + 0.5 * (gpp + reco)).mean() > 0.97
    assert np.corrcoef(nee, reco - gpp)[0, 1] > 0.9


def test_annual_reco_is_a_fraction_of_gpp(record):
    frame = record.halfhourly
    ratio = frame["RECO_NT_VUT_REF"].sum() / frame["GPP_NT_VUT_REF"].sum()
    # Truth ratio is drawn in [0.80, 0.90]; each partitioned column carries a ~3 % site-year bias.
    assert 0.7 < ratio < 1.05
    gpp_gc = frame["GPP_NT_VUT_REF"].sum() * UMOL_M2_S_TO_GC_M2_PER_HALFHOUR
    assert gpp_gc == pytest.approx(record.true_gpp_halfhourly.sum(), rel=0.1)


def test_csv_round_trip(record, tmp_path):
    path = tmp_path / tower_csv_name(SITE)
    write_tower_csv(record, path)
    text = path.read_text()
    assert text.splitlines()[0] == ",".join(COLUMNS)
    assert ",-9999," in text
    back = pd.read_csv(path)
    assert list(back.columns) == list(COLUMNS) and len(back) == 17520
    start = pd.to_datetime(back["TIMESTAMP_START"].astype(str), format="%Y%m%d%H%M")
    end = pd.to_datetime(back["TIMESTAMP_END"].astype(str), format="%Y%m%d%H%M")
    assert start.iloc[0] == pd.Timestamp("2019-01-01 00:00")
    assert end.iloc[-1] == pd.Timestamp("2020-01-01 00:00")
    assert ((end - start) == pd.Timedelta(minutes=30)).all()
    assert (back["NEE_VUT_REF"] == MISSING).any()
    pd.testing.assert_frame_equal(back, record.halfhourly, check_exact=False, rtol=0, atol=1e-9)


def test_leap_year_has_17568_rows():
    rec = simulate_tower(SITE, glass_forcing(2020), 2020, np.random.default_rng(1))
    assert len(rec.halfhourly) == 17568
    assert rec.halfhourly["TIMESTAMP_START"].iloc[-1] == 202012312330
    assert sum(rec.quarterly_true_gpp.values()) == pytest.approx(
        float((glass_forcing(2020).gpp * glass_forcing(2020).n_days).sum()), rel=1e-12
    )


def test_same_seed_same_bytes(tmp_path):
    paths = [tmp_path / f"{i}.csv" for i in range(3)]
    for path, seed in zip(paths, (7, 7, 8), strict=True):
        write_tower_csv(simulate_tower(SITE, FORCING, 2019, np.random.default_rng(seed)), path)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_sites_geojson():
    other = TowerSite("CN-Lu2", lon=116.9, lat=42.3, forest_type="ENF", utc_offset_h=8.0)
    collection = sites_geojson([SITE, other])
    json.dumps(collection)
    assert collection["type"] == "FeatureCollection"
    first = collection["features"][0]
    assert first["geometry"] == {"type": "Point", "coordinates": [117.2, 42.1]}
    assert first["properties"] == {
        "site_id": "CN-Lu1",
        "forest_type": "DNF",
        "igbp": "DNF",
        "utc_offset_h": 8.0,
        "csv": "FLX_CN-Lu1_FLUXNET2015_FULLSET_HH.csv",
    }
    with pytest.raises(WorldError, match="unique"):
        sites_geojson([SITE, SITE])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"gpp": FORCING.gpp[:-1]}, "one value per window"),
        ({"gpp": np.where(np.arange(46) == 3, -0.5, FORCING.gpp)}, r"forcing\.gpp\[3\].*>= 0"),
        ({"srad": np.full(46, np.nan)}, "not finite"),
        ({"start": FORCING.start + np.timedelta64(1, "D")}, "window 0 starts 2019-01-02"),
        ({"n_days": np.where(np.arange(46) == 10, 9, FORCING.n_days)}, "window 11 starts"),
        ({"n_days": np.append(FORCING.n_days[:-1], 8)}, "last window ends 2020-01-04"),
        ({"n_days": FORCING.n_days.astype(float)}, "must be integers"),
    ],
)
def test_bad_forcing_raises(change, match):
    forcing = dataclasses.replace(FORCING, **change)
    with pytest.raises(WorldError, match=match):
        simulate_tower(SITE, forcing, 2019, np.random.default_rng(0))


def test_forcing_for_another_year_raises():
    with pytest.raises(WorldError, match="should start 2020-01-01"):
        simulate_tower(SITE, FORCING, 2020, np.random.default_rng(0))


def test_bad_site_raises():
    with pytest.raises(WorldError, match="forest_type 'EBF'"):
        TowerSite("CN-Lu1", lon=117.2, lat=42.1, forest_type="EBF", utc_offset_h=8.0)
    with pytest.raises(WorldError, match="site_id"):
        TowerSite("CN Lu1/..", lon=117.2, lat=42.1, forest_type="ENF", utc_offset_h=8.0)
    with pytest.raises(WorldError, match="outside"):
        TowerSite("CN-Lu1", lon=200.0, lat=42.1, forest_type="ENF", utc_offset_h=8.0)
