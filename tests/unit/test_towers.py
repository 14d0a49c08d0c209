"""Unit tests of the flux-tower readers, partitioning guards and quarterly sums (hand-made CSVs)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gppscale.errors import GppscaleError
from gppscale.io.towers import (
    TowerError,
    partition_nee,
    read_fluxnet,
    read_sites,
    tower_quarterly,
)
from gppscale.stages.quarters import Quarter

HEADER = "TIMESTAMP_START,TIMESTAMP_END,NEE_VUT_REF,NEE_VUT_REF_QC,GPP_NT_VUT_REF,TA_F,SW_IN_F,VPD_F,USTAR"


def _stamp(t: pd.Timestamp) -> str:
    return t.strftime("%Y%m%d%H%M")


def _csv(tmp_path: Path, rows: list[str], header: str = HEADER, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _rows(start: str, n: int, values: str = "-2.0,0,5.0,10.0,300.0,5.0,0.4") -> list[str]:
    times = pd.date_range(start, periods=n, freq="30min")
    return [f"{_stamp(t)},{_stamp(t + pd.Timedelta(minutes=30))},{values}" for t in times]


def test_read_fluxnet_columns_missing_and_index(tmp_path: Path) -> None:
    rows = _rows("2021-01-01", 3)
    rows[1] = rows[1].replace("-2.0,0,5.0", "-9999,1,-9999")
    df = read_fluxnet(_csv(tmp_path, rows))
    assert list(df.columns) == ["nee", "nee_qc", "gpp", "ta", "sw_in", "vpd", "ustar"]
    assert df.index[1] == pd.Timestamp("2021-01-01 00:30")
    assert math.isnan(df["nee"].iloc[1]) and math.isnan(df["gpp"].iloc[1])
    assert df["nee_qc"].iloc[1] == 1 and df["gpp"].iloc[0] == 5.0


def test_read_fluxnet_real_fluxnet_extra_columns(tmp_path: Path) -> None:
    extra = "GPP_DT_VUT_REF,GPP_DT_VUT_25,TA_F,P_F,SW_IN_F"
    header = f"TIMESTAMP_START,TIMESTAMP_END,NEE_CUT_REF,NEE_CUT_REF_QC,{extra}"
    rows = [r.rsplit(",", 2)[0] for r in _rows("2021-06-01", 2, "-3.0,3,7.5,7.0,15.0,0.0,400.0,x,y")]
    df = read_fluxnet(_csv(tmp_path, rows, header))
    assert list(df.columns) == ["nee", "nee_qc", "gpp", "ta", "sw_in"]
    assert df["gpp"].tolist() == [7.5, 7.5] and df["nee_qc"].tolist() == [3.0, 3.0]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: [*r[:1], "20210101xx00" + r[1][12:], *r[2:]], "line 3: TIMESTAMP_START '20210101xx00'"),
        (lambda r: [*r[:2], r[2][:13] + "202101010200" + r[2][25:]], "line 4: TIMESTAMP_END"),
        (lambda r: [r[0], r[0], *r[2:]], "line 3: TIMESTAMP_START '202101010000' duplicates"),
        (lambda r: [r[1], r[0], *r[2:]], "line 3: TIMESTAMP_START '202101010000' is earlier"),
    ],
)
def test_read_fluxnet_bad_times(tmp_path: Path, mutate: object, message: str) -> None:
    rows = mutate(_rows("2021-01-01", 4))  # type: ignore[operator]
    with pytest.raises(TowerError, match=r"t\.csv") as info:
        read_fluxnet(_csv(tmp_path, rows))
    assert message in str(info.value)


def test_read_fluxnet_hourly_file_says_half_hourly(tmp_path: Path) -> None:
    rows = ["202101010000,202101010100,-1,0,1,1,1,1,1"]
    with pytest.raises(TowerError, match=r"line 2: .*not 30 min after.*half-hourly"):
        read_fluxnet(_csv(tmp_path, rows))


def test_read_fluxnet_missing_nee_and_file(tmp_path: Path) -> None:
    header = "TIMESTAMP_START,TIMESTAMP_END,GPP_NT_VUT_REF"
    rows = [r.split(",", 2)[0] + "," + r.split(",", 2)[1] + ",1.0" for r in _rows("2021-01-01", 2)]
    with pytest.raises(TowerError, match=r"no NEE column.*NEE_VUT_REF"):
        read_fluxnet(_csv(tmp_path, rows, header))
    with pytest.raises(GppscaleError, match="does not exist"):
        read_fluxnet(tmp_path / "absent.csv")


def test_read_fluxnet_implausible_units(tmp_path: Path) -> None:
    rows = _rows("2021-01-01", 3, "-440.0,0,5.0,10.0,300.0,5.0,0.4")
    with pytest.raises(TowerError, match=r"median \|NEE_VUT_REF\| is 440.*umol CO2 m-2 s-1"):
        read_fluxnet(_csv(tmp_path, rows))


def _quarter_frame(q: Quarter, value: float) -> pd.DataFrame:
    idx = pd.date_range(str(q.start), str(q.end), freq="30min", inclusive="left")
    return pd.DataFrame({"gpp": np.full(idx.size, value)}, index=idx)


def test_tower_quarterly_unit_conversion_by_hand() -> None:
    q = Quarter(2021, 1)  # 90 days
    out = tower_quarterly(_quarter_frame(q, 10.0), [q])
    expected = 10.0 * 1800.0 * 12.011e-6 * 48 * 90  # 933.97...
    assert out.loc["2021Q1", "gpp_gc_m2"] == pytest.approx(expected, rel=1e-12)
    assert out.loc["2021Q1", "coverage"] == 1.0 and not out.loc["2021Q1", "dropped"]


def test_tower_quarterly_gaps_mean_rule_and_dropped() -> None:
    q2, q3 = Quarter(2021, 2), Quarter(2021, 3)
    a = _quarter_frame(q2, 4.0)
    a.iloc[: len(a) // 10, 0] = np.nan  # 10 % missing: kept, scaled by the mean
    b = _quarter_frame(q3, 4.0).iloc[: int(0.7 * 92 * 48)]  # rows absent: 70 % coverage
    out = tower_quarterly(pd.concat([a, b]), [q2, q3, Quarter(2021, 4)], min_coverage=0.8)
    n2 = 91 * 48
    assert out.loc["2021Q2", "coverage"] == pytest.approx((n2 - n2 // 10) / n2)
    assert out.loc["2021Q2", "gpp_gc_m2"] == pytest.approx(4.0 * 1800 * 12.011e-6 * n2)
    assert out.loc["2021Q3", "dropped"] and math.isnan(out.loc["2021Q3", "gpp_gc_m2"])
    assert "below min_coverage 80%" in out.loc["2021Q3", "reason"]
    assert out.loc["2021Q4", "coverage"] == 0.0 and out.loc["2021Q4", "dropped"]


def test_tower_quarterly_needs_gpp() -> None:
    with pytest.raises(TowerError, match="partition_nee"):
        tower_quarterly(pd.DataFrame({"nee": [1.0]}), [Quarter(2021, 1)])


def test_partition_nee_keeps_existing_gpp_and_needs_ta() -> None:
    df = pd.DataFrame({"nee": [1.0], "gpp": [2.0]}, index=pd.DatetimeIndex(["2021-01-01"]))
    assert partition_nee(df, 42.0, 117.0, 8.0) is df
    with pytest.raises(TowerError, match="'ta'"):
        partition_nee(df.drop(columns="gpp"), 42.0, 117.0, 8.0)


def test_partition_nee_short_series_says_full_years() -> None:
    idx = pd.date_range("2021-06-01", periods=48 * 10, freq="30min")
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "nee": rng.normal(0.0, 2.0, idx.size),
            "ta": rng.normal(15.0, 5.0, idx.size),
            "sw_in": np.tile(np.r_[np.zeros(12), np.full(24, 400.0), np.zeros(12)], 10),
            "vpd": 5.0,
            "ustar": rng.uniform(0.05, 0.6, idx.size),
        },
        index=idx,
    )
    with pytest.raises(TowerError, match=r"ustarfilter failed.*full years"):
        partition_nee(df, 42.1, 117.2, 8.0)


def _sites(tmp_path: Path, props: dict[str, object]) -> Path:
    feature = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [117.2, 42.1]},
        "properties": props,
    }
    path = tmp_path / "towers" / "sites.geojson"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    return path


def test_read_sites(tmp_path: Path) -> None:
    props = {"site_id": "CN-Lu1", "csv": "FLX.csv", "igbp": "DNF", "utc_offset_h": 8}
    (site,) = read_sites(_sites(tmp_path, props))
    assert (site.site_id, site.lon, site.lat, site.forest_type, site.utc_offset_h) == (
        "CN-Lu1",
        117.2,
        42.1,
        "DNF",
        8.0,
    )
    assert site.csv == (tmp_path / "towers" / "FLX.csv").resolve()


def test_read_sites_errors(tmp_path: Path) -> None:
    with pytest.raises(TowerError, match=r"site 'CN-Lu1'.*'properties.utc_offset_h' is missing"):
        read_sites(_sites(tmp_path, {"site_id": "CN-Lu1", "csv": "a.csv"}))
    with pytest.raises(TowerError, match="does not exist"):
        read_sites(tmp_path / "nothing.geojson")
