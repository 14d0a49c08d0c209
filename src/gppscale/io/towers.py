"""Flux towers: FLUXNET2015-style half-hourly CSVs and a sites GeoJSON, read for validation.

:func:`read_sites` reads the towers' GeoJSON, :func:`read_fluxnet` one half-hourly CSV into a table with
short column names, :func:`partition_nee` derives GPP and RECO from NEE when a tower gives only NEE
(night-time method of Reichstein et al. 2005, with u* filtering and gap filling), and
:func:`tower_quarterly` sums GPP over calendar quarters with a coverage rule.

Conventions:
    * Fluxes are umol CO2 m-2 s-1 (NEE negative = uptake); ``ta`` degC, ``sw_in`` W m-2, ``vpd`` hPa,
      ``ustar`` m s-1. ``-9999`` in a file is missing and becomes NaN.
    * The index holds the starts of the half hours (``TIMESTAMP_START``), in the file's local standard time.
    * One umol CO2 m-2 s-1 held for a half hour is ``1800 * 12.011e-6 = 0.0216198`` gC m-2.

The reader does not depend on the synthetic world: real FLUXNET2015 FULLSET files (more columns,
``GPP_DT_*``, ``NEE_CUT_REF``, QC 0-3) are read the same way.

Example:
    >>> round(UMOL_M2_S_TO_GC_M2_PER_HALFHOUR, 7)
    0.0216198
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from gppscale.errors import GppscaleError, MissingDependencyError
from gppscale.stages.quarters import Quarter

__all__ = [
    "UMOL_M2_S_TO_GC_M2_PER_HALFHOUR",
    "TowerError",
    "TowerSite",
    "partition_nee",
    "read_fluxnet",
    "read_sites",
    "tower_quarterly",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

HALFHOUR_S = 1800.0
CARBON_G_PER_MOL = 12.011
#: gC m-2 in one half hour of a flux of 1 umol CO2 m-2 s-1 (= 0.0216198).
UMOL_M2_S_TO_GC_M2_PER_HALFHOUR = HALFHOUR_S * CARBON_G_PER_MOL * 1e-6
STEPS_PER_DAY = 48
MISSING = -9999.0
#: Median |NEE| above this (umol m-2 s-1) means the file is in other units (mg CO2, gC ...).
NEE_MEDIAN_MAX_UMOL = 100.0
#: Shortwave above this (W m-2) is day (REddyProc's 10; Papale et al. 2006 use 20).
DAY_SW_THRESHOLD_W_M2 = 10.0
_HALF_HOUR = pd.Timedelta(minutes=30)

# Output column -> FLUXNET2015 columns in order of preference.
_SOURCES: dict[str, tuple[str, ...]] = {
    "nee": ("NEE_VUT_REF", "NEE_CUT_REF"),
    "gpp": ("GPP_NT_VUT_REF", "GPP_DT_VUT_REF"),
    "reco": ("RECO_NT_VUT_REF", "RECO_DT_VUT_REF"),
    "ta": ("TA_F", "TA"),
    "sw_in": ("SW_IN_F", "SW_IN"),
    "vpd": ("VPD_F", "VPD"),
    "ustar": ("USTAR",),
}


class TowerError(GppscaleError, ValueError):
    """A tower file (sites GeoJSON or half-hourly CSV) is missing, malformed or in the wrong units."""


@dataclass(frozen=True)
class TowerSite:
    """One flux tower of a sites GeoJSON.

    Attributes:
        site_id: FLUXNET identifier such as ``"CN-Lu1"``.
        lon: Longitude, degrees east.
        lat: Latitude, degrees north.
        csv: The tower's half-hourly CSV, resolved against the GeoJSON's folder.
        forest_type: ``"ENF"``, ``"DBF"``, ``"MF"``, ``"DNF"`` ... or ``None`` when the file gives none.
        utc_offset_h: Offset of the CSV's local standard time from UTC, hours (``8.0`` for China).
    """

    site_id: str
    lon: float
    lat: float
    csv: Path
    forest_type: str | None
    utc_offset_h: float


# --- sites ------------------------------------------------------------------------------------------


def read_sites(path: str | Path) -> list[TowerSite]:
    """Read a GeoJSON FeatureCollection of tower points.

    Each feature needs a Point geometry and properties ``site_id`` (else the feature ``id``), ``csv``
    and ``utc_offset_h``; ``forest_type`` (else ``igbp``) is optional.

    Raises:
        TowerError: The file is missing or not JSON, or a feature lacks a key; the message names the site
            and the key.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [117.2, 42.1]},
        ...            "properties": {"site_id": "CN-Lu1", "csv": "a.csv", "utc_offset_h": 8}}
        >>> _ = (folder / "sites.geojson").write_text(json.dumps({"features": [feature]}))
        >>> read_sites(folder / "sites.geojson")[0].csv.name
        'a.csv'
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise TowerError(f"tower sites file {str(path)!r} does not exist; check the towers path") from e
    except (OSError, ValueError) as e:
        raise TowerError(f"cannot read tower sites file {str(path)!r}: {e}; give a GeoJSON file") from e
    features = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(features, list):
        raise TowerError(f"tower sites file {str(path)!r} has no 'features' list; give a FeatureCollection")
    return [_site_of(feature, i, path) for i, feature in enumerate(features)]


def _site_of(feature: object, i: int, path: Path) -> TowerSite:
    if not isinstance(feature, dict):
        raise TowerError(f"{str(path)!r}, feature {i}: {feature!r} is not a GeoJSON Feature object")
    props = feature.get("properties") or {}
    site_id = props.get("site_id", feature.get("id"))
    where = f"{str(path)!r}, feature {i} (site {site_id!r})"
    if not isinstance(site_id, str) or not site_id:
        raise TowerError(f"{where}: key 'site_id' is missing; give each feature a properties.site_id")
    try:
        lon, lat = (float(v) for v in feature["geometry"]["coordinates"][:2])
    except (KeyError, TypeError, ValueError) as e:
        raise TowerError(f"{where}: key 'geometry.coordinates' is missing or not [lon, lat]") from e
    for key in ("csv", "utc_offset_h"):
        if props.get(key) is None:
            raise TowerError(f"{where}: key 'properties.{key}' is missing; add it to the feature")
    try:
        offset = float(props["utc_offset_h"])
    except (TypeError, ValueError) as e:
        raise TowerError(f"{where}: 'utc_offset_h' {props['utc_offset_h']!r} is not a number of hours") from e
    forest_type = props.get("forest_type", props.get("igbp"))
    csv = (path.parent / str(props["csv"])).resolve()
    return TowerSite(site_id, lon, lat, csv, None if forest_type is None else str(forest_type), offset)


# --- half-hourly CSV --------------------------------------------------------------------------------


def read_fluxnet(path: str | Path) -> pd.DataFrame:
    """Read a FLUXNET2015-style half-hourly CSV.

    Returns a table indexed by the half hours' starts (``DatetimeIndex``, local standard time) with the
    columns that exist among ``nee`` (``NEE_VUT_REF``, else ``NEE_CUT_REF``), ``nee_qc`` (its ``_QC``),
    ``gpp`` (``GPP_NT_VUT_REF``, else ``GPP_DT_VUT_REF``), ``reco``, ``ta``, ``sw_in``, ``vpd`` and
    ``ustar``; ``-9999`` becomes NaN. Other columns are ignored.

    Raises:
        TowerError: The file is missing or unreadable, lacks ``TIMESTAMP_START`` or an NEE column, has a
            timestamp that is not ``YYYYMMDDHHMM``, a ``TIMESTAMP_END`` that is not 30 min after its
            start, duplicated or decreasing times, or NEE that is not in umol m-2 s-1. The message names
            the file and the line.
    """
    path = Path(path)
    raw = _read_csv(path)
    for needed in ("TIMESTAMP_START",):
        if needed not in raw.columns:
            raise TowerError(
                f"{str(path)!r}: column {needed!r} is missing; give a FLUXNET2015 half-hourly CSV"
            )
    nee_col = _first(raw, _SOURCES["nee"])
    if nee_col is None:
        raise TowerError(
            f"{str(path)!r}: no NEE column (looked for {list(_SOURCES['nee'])}); "
            "add NEE_VUT_REF in umol CO2 m-2 s-1"
        )
    start = _parse_times(raw["TIMESTAMP_START"], path, "TIMESTAMP_START")
    _check_times(raw, start, path)
    out = pd.DataFrame(index=pd.DatetimeIndex(start, name="time"))
    for name, sources in _SOURCES.items():
        col = _first(raw, sources)
        if col is not None:
            out[name] = _values(raw[col], path, col)
        if name == "nee" and f"{nee_col}_QC" in raw.columns:
            out["nee_qc"] = _values(raw[f"{nee_col}_QC"], path, f"{nee_col}_QC")
    _check_units(out["nee"], path, nee_col)
    return out


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype={"TIMESTAMP_START": str, "TIMESTAMP_END": str}, low_memory=False)
    except FileNotFoundError as e:
        raise TowerError(f"tower CSV {str(path)!r} does not exist; check the sites file's 'csv'") from e
    except (OSError, ValueError) as e:
        raise TowerError(f"cannot read tower CSV {str(path)!r}: {e}; give a comma-separated file") from e


def _first(raw: pd.DataFrame, names: Sequence[str]) -> str | None:
    return next((n for n in names if n in raw.columns), None)


def _line(row: int) -> int:
    """File line (1-based, header is line 1) of data row ``row`` (0-based)."""
    return row + 2


def _parse_times(text: pd.Series, path: Path, col: str) -> pd.DatetimeIndex:
    times = pd.to_datetime(text.astype(str).str.strip(), format="%Y%m%d%H%M", errors="coerce")
    bad = np.flatnonzero(times.isna().to_numpy())
    if bad.size:
        row = int(bad[0])
        raise TowerError(
            f"{str(path)!r} line {_line(row)}: {col} {text.iloc[row]!r} is not a YYYYMMDDHHMM time; "
            "fix the timestamp (no -9999 or empty times)"
        )
    return pd.DatetimeIndex(times)


def _check_times(raw: pd.DataFrame, start: pd.DatetimeIndex, path: Path) -> None:
    if "TIMESTAMP_END" in raw.columns:
        end = _parse_times(raw["TIMESTAMP_END"], path, "TIMESTAMP_END")
        wrong = np.flatnonzero((end - start) != _HALF_HOUR)
        if wrong.size:
            row = int(wrong[0])
            raise TowerError(
                f"{str(path)!r} line {_line(row)}: TIMESTAMP_END {raw['TIMESTAMP_END'].iloc[row]!r} is not "
                f"30 min after TIMESTAMP_START {raw['TIMESTAMP_START'].iloc[row]!r}; give a half-hourly "
                "(_HH) file, not hourly (_HR) or daily"
            )
    step = np.diff(start.to_numpy())
    wrong = np.flatnonzero(step <= np.timedelta64(0, "s"))
    if wrong.size:
        row = int(wrong[0]) + 1
        what = "duplicates" if step[row - 1] == np.timedelta64(0, "s") else "is earlier than"
        raise TowerError(
            f"{str(path)!r} line {_line(row)}: TIMESTAMP_START {raw['TIMESTAMP_START'].iloc[row]!r} {what} "
            f"the previous line's; sort the rows by time and drop duplicates"
        )


def _values(column: pd.Series, path: Path, col: str) -> FloatArray:
    try:
        values = pd.to_numeric(column, errors="raise").to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TowerError(
            f"{str(path)!r}: column {col!r} holds non-numbers ({e}); use -9999 for missing"
        ) from e
    return np.where(values <= MISSING + 0.5, np.nan, values)


def _check_units(nee: pd.Series, path: Path, col: str) -> None:
    median = float(np.nanmedian(np.abs(nee.to_numpy()))) if nee.notna().any() else 0.0
    if median > NEE_MEDIAN_MAX_UMOL:
        raise TowerError(
            f"{str(path)!r}: the median |{col}| is {median:.4g}, implausible for umol CO2 m-2 s-1 "
            f"(expected below {NEE_MEDIAN_MAX_UMOL:g}); convert the fluxes to umol CO2 m-2 s-1"
        )


# --- partitioning -----------------------------------------------------------------------------------


def partition_nee(
    df: pd.DataFrame,
    lat: float,
    lon: float,
    utc_offset_h: float,
    *,
    ustar_min_m_s: float = 0.1,
) -> pd.DataFrame:
    """Add ``gpp`` and ``reco`` (umol m-2 s-1) partitioned from ``nee``, unless ``gpp`` is present.

    Steps (as in REddyProc / Papale et al. 2006, Reichstein et al. 2005):

    1. Measured NEE only: NaN and, when ``nee_qc`` exists, steps with QC > 0 (gap-filled) are gaps.
    2. Day/night: ``sw_in > 10 W m-2`` where ``sw_in`` exists, else the sun above the horizon from
       ``lat``, ``lon`` and ``utc_offset_h``.
    3. u* filter: :func:`hesseflux.ustarfilter` (seasonal, temperature-class moving-point threshold, at
       least ``ustar_min_m_s``) removes night NEE at low turbulence (skipped without ``ustar``).
    4. RECO: :func:`hesseflux.nee2gpp` ``method="reichstein"``: Lloyd-Taylor fits to night NEE in
       15-day windows, E0 from the best three, Rref every 4 days; its air temperature is in **Kelvin**.
    5. NEE gaps filled by marginal distribution sampling (Reichstein et al. 2005, appendix; see
       :func:`_mds_fill`): ``hesseflux.gapfill`` writes into ``DataFrame.to_numpy()`` views, which are
       read-only under pandas 3 copy-on-write, so the same algorithm is implemented here.
    6. ``gpp = reco - nee_filled`` by day and 0 at night (no light, no photosynthesis); day values are not
       clipped at 0, so the noise of NEE does not bias sums upwards.

    Raises:
        TowerError: ``nee`` or ``ta`` is missing, or no night-time respiration could be fitted.
        MissingDependencyError: hesseflux is not installed.
    """
    if "gpp" in df.columns:
        return df
    for needed in ("nee", "ta"):
        if needed not in df.columns:
            raise TowerError(f"partition_nee needs column {needed!r}; read the CSV with read_fluxnet")
    try:
        import hesseflux
    except ImportError as e:
        raise MissingDependencyError("partition_nee needs hesseflux; pip install 'gppscale[towers]'") from e
    times = pd.DatetimeIndex(df.index)
    isday = _isday(df, times, lat, lon, utc_offset_h)
    nee = df["nee"].to_numpy(dtype=np.float64)
    ta = df["ta"].to_numpy(dtype=np.float64)
    gap = ~np.isfinite(nee)
    if "nee_qc" in df.columns:
        gap |= df["nee_qc"].to_numpy(dtype=np.float64) > 0
    with _numpy_aliases(), warnings.catch_warnings():
        # hesseflux takes means of empty classes on short or gappy series; its results handle the NaN.
        warnings.simplefilter("ignore", RuntimeWarning)
        if "ustar" in df.columns:
            gap |= _ustar_flags(hesseflux, times, nee, ta, df["ustar"].to_numpy(), gap, isday, ustar_min_m_s)
        reco = _reco(hesseflux, times, nee, ta, gap, isday)
    filled = _mds_fill(nee, gap, _met(df, "sw_in"), ta, _met(df, "vpd"))
    out = df.copy()
    out["reco"] = reco
    out["gpp"] = np.where(isday, reco - filled, 0.0)
    return out


@contextmanager
def _numpy_aliases() -> Iterator[None]:
    """Restore ``np.int``/``np.float`` while hesseflux runs.

    hesseflux 5.0 still calls ``np.int``/``np.float`` (``nee2gpp._nee2gpp_reichstein``,
    ``ustarfilter``), aliases NumPy removed in 1.24; without them both raise ``AttributeError``.
    """
    added = [name for name in ("int", "float") if name not in np.__dict__]
    for name in added:
        setattr(np, name, {"int": int, "float": float}[name])
    try:
        yield
    finally:
        for name in added:
            delattr(np, name)


def _met(df: pd.DataFrame, name: str) -> FloatArray:
    if name not in df.columns:
        return np.full(len(df), np.nan)
    return df[name].to_numpy(dtype=np.float64)


def _isday(df: pd.DataFrame, times: pd.DatetimeIndex, lat: float, lon: float, offset_h: float) -> BoolArray:
    sun_up = _cos_zenith(times, lat, lon, offset_h) > 0.0
    if "sw_in" not in df.columns:
        return sun_up
    sw = df["sw_in"].to_numpy(dtype=np.float64)
    return np.where(np.isfinite(sw), sw > DAY_SW_THRESHOLD_W_M2, sun_up)


def _cos_zenith(times: pd.DatetimeIndex, lat: float, lon: float, offset_h: float) -> FloatArray:
    """Cosine of the solar zenith angle at the middle of each half hour (Cooper declination)."""
    mid = times + pd.Timedelta(minutes=15)
    doy = mid.day_of_year.to_numpy().astype(np.float64)
    hour = mid.hour.to_numpy() + mid.minute.to_numpy() / 60.0
    decl = np.radians(23.45) * np.sin(2.0 * np.pi * (284.0 + doy) / 365.0)
    solar_hour = hour + (lon - 15.0 * offset_h) / 15.0
    hour_angle = np.radians(15.0 * (solar_hour - 12.0))
    phi = math.radians(lat)
    return np.asarray(
        math.sin(phi) * np.sin(decl) + math.cos(phi) * np.cos(decl) * np.cos(hour_angle), dtype=np.float64
    )


def _ustar_flags(
    hf: ModuleType,
    times: pd.DatetimeIndex,
    nee: FloatArray,
    ta: FloatArray,
    ustar: npt.NDArray[Any],
    gap: BoolArray,
    isday: BoolArray,
    ustar_min: float,
) -> BoolArray:
    """Steps removed by hesseflux's u* filter (flag 2 where u* is below the seasonal threshold)."""
    data = pd.DataFrame({"NEE": nee, "USTAR": ustar, "TA": ta}, index=times).fillna(MISSING)
    flag = pd.DataFrame({"NEE": gap.astype(int), "USTAR": 0, "TA": 0}, index=times)
    flag[data == MISSING] = 1
    try:
        _, flags = hf.ustarfilter(data, flag=flag, isday=isday.copy(), undef=MISSING, ustarmin=ustar_min)
    except (AssertionError, ValueError, IndexError) as e:
        raise TowerError(
            f"partition_nee: hesseflux.ustarfilter failed ({e}); it needs whole calendar years of "
            f"half-hourly NEE, USTAR and TA from {times[0]} to {times[-1]}: give full years"
        ) from e
    return np.asarray(flags, dtype=np.float64) > 0


def _reco(
    hf: ModuleType, times: pd.DatetimeIndex, nee: FloatArray, ta: FloatArray, gap: BoolArray, isday: BoolArray
) -> FloatArray:
    """Night-time (Reichstein 2005) respiration at every step with a temperature, NaN elsewhere."""
    ta_k = ta + 273.15  # hesseflux's Lloyd-Taylor (pyjams.functions.lloyd_fix) takes Kelvin
    data = pd.DataFrame({"NEE": nee, "TA": ta_k}, index=times).fillna(MISSING)
    flag = pd.DataFrame({"NEE": gap.astype(int), "TA": (~np.isfinite(ta_k)).astype(int)}, index=times)
    try:
        out = hf.nee2gpp(data, flag=flag, isday=isday.copy(), undef=MISSING, method="reichstein")
    except (AssertionError, ValueError, IndexError) as e:
        raise TowerError(
            f"partition_nee: hesseflux.nee2gpp failed ({e}); give a year of half-hourly NEE and TA"
        ) from e
    reco = out["RECO"].to_numpy(dtype=np.float64)
    if not (reco != MISSING).any():
        raise TowerError(
            "partition_nee: no night-time respiration could be fitted (too few valid night NEE with "
            "temperature); give a full year of half-hourly NEE, TA and USTAR"
        )
    return np.where(reco == MISSING, np.nan, reco)


#: MDS similarity limits (Reichstein et al. 2005): shortwave W m-2, air temperature degC, VPD hPa.
_MDS_SW, _MDS_TA, _MDS_VPD = 50.0, 2.5, 5.0


def _mds_fill(nee: FloatArray, gap: BoolArray, sw: FloatArray, ta: FloatArray, vpd: FloatArray) -> FloatArray:
    """Fill NEE gaps by marginal distribution sampling (Reichstein et al. 2005, appendix A).

    For each gap, in order: mean of valid NEE under similar SW, TA and VPD within +-7 then +-14 days;
    similar SW only within +-7 days; same time of day (+-1 h) within +-0 to +-2 days (mean diurnal
    course); then the windows widen (similar met within +-21 ... +-70 days, same time of day within
    +-3 ... +-70 days). A gap with no match stays NaN.

    Example:
        >>> nee = np.array([1.0, np.nan, 3.0]); sw = np.zeros(3)
        >>> _mds_fill(nee, np.isnan(nee), sw, sw, sw).tolist()
        [1.0, 2.0, 3.0]
    """
    valid = ~gap & np.isfinite(nee)
    out = np.where(valid, nee, np.nan)
    n = nee.size
    for j in np.flatnonzero(~valid):
        out[j] = _mds_one(int(j), n, nee, valid, sw, ta, vpd)
    return out


def _mds_one(
    j: int, n: int, nee: FloatArray, valid: BoolArray, sw: FloatArray, ta: FloatArray, vpd: FloatArray
) -> float:
    def similar(days: int, full: bool) -> float:
        lo, hi = max(0, j - days * STEPS_PER_DAY), min(n, j + days * STEPS_PER_DAY + 1)
        ok = valid[lo:hi] & (np.abs(sw[lo:hi] - sw[j]) < _MDS_SW)
        if full:
            ok &= (np.abs(ta[lo:hi] - ta[j]) < _MDS_TA) & (np.abs(vpd[lo:hi] - vpd[j]) < _MDS_VPD)
        return float(nee[lo:hi][ok].mean()) if ok.any() else math.nan

    def diurnal(days: int) -> float:
        offsets = (np.arange(-days, days + 1)[:, None] * STEPS_PER_DAY + np.arange(-2, 3)[None, :]).ravel()
        idx = j + offsets
        idx = idx[(idx >= 0) & (idx < n)]
        idx = idx[valid[idx]]
        return float(nee[idx].mean()) if idx.size else math.nan

    full_met = bool(np.isfinite(sw[j]) and np.isfinite(ta[j]) and np.isfinite(vpd[j]))
    steps: list[tuple[str, int]] = []
    if full_met:
        steps += [("full", 7), ("full", 14)]
    if np.isfinite(sw[j]):
        steps += [("sw", 7)]
    steps += [("diurnal", d) for d in (0, 1, 2)]
    for days in range(21, 71, 7):
        steps += [("full", days)] if full_met else []
        steps += [("diurnal", days)]
    for kind, days in steps:
        value = diurnal(days) if kind == "diurnal" else similar(days, kind == "full")
        if math.isfinite(value):
            return value
    return math.nan


# --- quarterly sums ---------------------------------------------------------------------------------


def tower_quarterly(
    df: pd.DataFrame, quarters: Sequence[Quarter], *, min_coverage: float = 0.8
) -> pd.DataFrame:
    """Quarterly GPP sums (gC m-2 quarter-1) of a tower table with a ``gpp`` column (umol m-2 s-1).

    Rule: a quarter has ``48 * days`` half hours; ``coverage`` is the share of them with a finite
    ``gpp`` (rows absent from the file count as missing). ``gpp_gc_m2`` is the mean of the valid half
    hours times the number of half hours in the quarter times ``1800 s * 12.011e-6 gC/umol``, i.e. the
    plain sum when nothing is missing. A quarter with ``coverage < min_coverage`` is kept with
    ``gpp_gc_m2`` NaN, ``dropped`` True and a ``reason``.

    Returns:
        One row per quarter, indexed by its label (``"2021Q2"``), with columns ``gpp_gc_m2``,
        ``coverage``, ``n_valid``, ``n_halfhours``, ``dropped`` and ``reason`` (``""`` when kept).

    Raises:
        TowerError: ``df`` has no ``gpp`` column or ``min_coverage`` is outside [0, 1].

    Example:
        >>> idx = pd.date_range("2021-04-01", periods=48 * 91, freq="30min")
        >>> t = tower_quarterly(pd.DataFrame({"gpp": 1.0}, index=idx), [Quarter(2021, 2)])
        >>> round(float(t.loc["2021Q2", "gpp_gc_m2"]), 4), bool(t.loc["2021Q2", "dropped"])
        (94.4353, False)
    """
    if "gpp" not in df.columns:
        raise TowerError("tower_quarterly needs a 'gpp' column; run partition_nee on NEE-only towers")
    if not 0.0 <= min_coverage <= 1.0:
        raise TowerError(f"min_coverage {min_coverage!r} is outside [0, 1]; give a share such as 0.8")
    times = pd.DatetimeIndex(df.index).to_numpy()
    gpp = df["gpp"].to_numpy(dtype=np.float64)
    rows = [_quarter_row(times, gpp, q, min_coverage) for q in quarters]
    columns = ["gpp_gc_m2", "coverage", "n_valid", "n_halfhours", "dropped", "reason"]
    index = pd.Index([q.label for q in quarters], name="quarter")
    return pd.DataFrame(rows, index=index, columns=columns)


def _quarter_row(times: npt.NDArray[Any], gpp: FloatArray, q: Quarter, min_coverage: float) -> list[Any]:
    inside = (times >= q.start) & (times < q.end)
    values = gpp[inside]
    n_valid = int(np.isfinite(values).sum())
    n_total = q.days * STEPS_PER_DAY
    coverage = n_valid / n_total
    if coverage < min_coverage or n_valid == 0:
        reason = f"coverage {coverage:.1%} of {n_total} half hours is below min_coverage {min_coverage:.0%}"
        return [math.nan, coverage, n_valid, n_total, True, reason]
    total = float(np.nanmean(values)) * n_total * UMOL_M2_S_TO_GC_M2_PER_HALFHOUR
    return [total, coverage, n_valid, n_total, False, ""]
