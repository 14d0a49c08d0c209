"""Synthetic FLUXNET2015-style flux towers derived from the synthetic world's truth GPP.

The world orchestrator gives each tower its 8-day forcing (truth GPP as the 3 x 3-pixel mean around the
tower, air temperature, shortwave, VPD); :func:`simulate_tower` turns it into one calendar year of
half-hourly eddy-covariance data with realistic error, and :func:`write_tower_csv` /
:func:`sites_geojson` write the files the validation stage reads. Everything here is pure NumPy and
deterministic for a given ``numpy.random.Generator`` seed: the same seed gives the same CSV bytes.

Conventions:
    * Time: half-hourly steps covering the whole calendar year in **local standard time** (no daylight
      saving), 17520 rows (17568 in a leap year). ``TIMESTAMP_START``/``TIMESTAMP_END`` are
      ``YYYYMMDDHHMM`` integers; the last step ends at ``{year + 1}01010000``.
    * Columns and units (as FLUXNET2015): ``NEE_VUT_REF``, ``GPP_NT_VUT_REF``, ``RECO_NT_VUT_REF`` in
      umol CO2 m-2 s-1; ``NEE_VUT_REF_QC`` 0 measured, 1-3 gap-filled (good, medium, poor); ``TA_F`` degC;
      ``SW_IN_F`` W m-2; ``VPD_F`` hPa; ``USTAR`` m s-1. Missing values are ``-9999``.
    * Units of the truth: ``TowerRecord.true_gpp_halfhourly`` is gC m-2 per half hour and
      ``quarterly_true_gpp`` gC m-2 per calendar quarter (1-4). One umol CO2 m-2 s-1 held for a half hour
      is ``12.011e-6 * 1800 = 0.0216198`` gC m-2 (:data:`UMOL_M2_S_TO_GC_M2_PER_HALFHOUR`).
    * The returned DataFrame holds exactly what the CSV holds: floats are rounded to the fixed decimals
      of :data:`COLUMN_DECIMALS` (fluxes 4, TA/VPD/USTAR 3, SW 2), and the physics downstream of the
      meteorology (light response, night mask, respiration) uses those rounded values, so ``SW_IN_F == 0``
      is exactly "night".

Physics:
    * Shortwave: potential clear-sky radiation from solar geometry (Spencer 1971 declination, equation of
      time and orbital eccentricity; hour angle from local standard time corrected for longitude against
      the time-zone meridian ``15 * utc_offset_h``), evaluated at the middle of each half hour. Each day is
      scaled so its mean equals the window's ``srad`` times a mild day-to-day "cloudiness" factor
      (log-normal, 20 %), and the factors are rescaled so that each window's mean is exactly ``srad``
      (up to the 0.005 W m-2 rounding of the CSV).
    * Air temperature: an asymmetric diurnal cosine around the day's ``tmean``, minimum at sunrise,
      maximum at 14:00 solar time, amplitude 5.5 degC scaled by the day's sunniness (0.8-1.2x); the daily
      mean is exactly ``tmean``. VPD follows temperature in proportion to the saturation vapour pressure
      (Tetens) and its daily mean is exactly ``vpd``.
    * True GPP: each day's GPP (the window's daily rate, gC m-2 d-1) is spread over the day's half hours
      in proportion to a rectangular-hyperbola light response ``SW / (SW + 250 W m-2)`` times a mild VPD
      limitation, so every day sums to the window's rate and every window to ``gpp * n_days`` exactly.
      Because days carry the window rate, a quarter's truth is the day-prorated sum of the windows, the
      same convention the pipeline uses for the coarse product.
    * Ecosystem respiration: ``Reco = Rref * Q10 ** ((TA - 15) / 10)`` with ``Q10 = 2``; ``Rref`` is set
      so that annual Reco is a fraction drawn uniformly in [0.80, 0.90] of annual GPP.
    * Measured NEE = Reco - GPP + noise; the noise is Laplace distributed (Richardson et al. 2006) with
      standard deviation ``0.3 + 0.15 * |NEE|`` umol m-2 s-1.
    * ``GPP_NT_VUT_REF`` and ``RECO_NT_VUT_REF`` are partitioned estimates: the truth times a site-year
      bias (log-normal, 3 %) and a per-step log-normal error (5 %). Both are gap-free, as in FLUXNET2015.
    * USTAR: log-normal, median 0.23 m s-1 at night and 0.45 m s-1 by day (log sd 0.5).
    * Gaps in ``NEE_VUT_REF`` (``-9999``): night steps with USTAR below 0.2 m s-1 (the u* filter), random
      instrument/QA gaps (12 % of steps) and one contiguous gap of 10 days, about 30 % of the year in all
      and more at night. ``NEE_VUT_REF_QC`` marks them by the length of the gap run they sit in:
      1 for runs up to 3 h, 2 up to 7 days, 3 beyond (a stand-in for the MDS quality classes).
      Meteorology (``*_F``) is gap-free.

Deviation from FLUXNET2015: its ``NEE_VUT_REF`` is itself gap-filled, here the gaps are left as ``-9999``
so that the pipeline's own partitioning is tested on real gaps; the QC flag still says which steps the
gap-free GPP/RECO columns had to fill.

Example:
    >>> round(UMOL_M2_S_TO_GC_M2_PER_HALFHOUR, 7)
    0.0216198
    >>> tower_csv_name(TowerSite("CN-Lu1", lon=117.2, lat=42.1, forest_type="DNF", utc_offset_h=8.0))
    'FLX_CN-Lu1_FLUXNET2015_FULLSET_HH.csv'
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped,unused-ignore]  # no pandas-stubs in the dev extra

from gppscale.errors import WorldError

__all__ = [
    "COLUMNS",
    "COLUMN_DECIMALS",
    "FOREST_TYPES",
    "MISSING",
    "STEPS_PER_DAY",
    "UMOL_M2_S_TO_GC_M2_PER_HALFHOUR",
    "TowerRecord",
    "TowerSite",
    "WindowForcing",
    "simulate_tower",
    "sites_geojson",
    "solar_cos_zenith",
    "tower_csv_name",
    "tower_csv_text",
    "write_tower_csv",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# --- units and layout -------------------------------------------------------------------------------
CARBON_MOLAR_MASS_G_PER_MOL = 12.011
HALFHOUR_S = 1800.0
#: gC m-2 in one half hour of a flux of 1 umol CO2 m-2 s-1 (= 0.0216198).
UMOL_M2_S_TO_GC_M2_PER_HALFHOUR = CARBON_MOLAR_MASS_G_PER_MOL * 1e-6 * HALFHOUR_S
STEPS_PER_DAY = 48
MISSING = -9999.0
FOREST_TYPES = ("ENF", "DBF", "MF", "DNF")
COLUMNS = (
    "TIMESTAMP_START",
    "TIMESTAMP_END",
    "NEE_VUT_REF",
    "NEE_VUT_REF_QC",
    "GPP_NT_VUT_REF",
    "RECO_NT_VUT_REF",
    "TA_F",
    "SW_IN_F",
    "VPD_F",
    "USTAR",
)
#: Fixed decimals of each float column in the CSV (integer columns are absent).
COLUMN_DECIMALS = {
    "NEE_VUT_REF": 4,
    "GPP_NT_VUT_REF": 4,
    "RECO_NT_VUT_REF": 4,
    "TA_F": 3,
    "SW_IN_F": 2,
    "VPD_F": 3,
    "USTAR": 3,
}

# --- physics parameters -----------------------------------------------------------------------------
SOLAR_CONSTANT_W_M2 = 1361.0
CLEAR_SKY_TRANSMITTANCE = 0.75
SUN_FACTOR_LOG_SD = 0.2  # day-to-day cloudiness of shortwave
SUN_FACTOR_BOUNDS = (0.5, 1.5)
TA_AMPLITUDE_C = 5.5
TA_MAX_SOLAR_HOUR = 14.0
LIGHT_HALF_SATURATION_W_M2 = 250.0
VPD_LIMIT_START_HPA = 10.0
VPD_LIMIT_SLOPE_PER_HPA = 0.01
VPD_LIMIT_FLOOR = 0.4
Q10 = 2.0
RECO_TREF_C = 15.0
RECO_TO_GPP_RANGE = (0.80, 0.90)
NEE_NOISE_FLOOR_UMOL = 0.3
NEE_NOISE_RELATIVE = 0.15
PARTITION_BIAS_LOG_SD = 0.03
PARTITION_NOISE_LOG_SD = 0.05
USTAR_MEDIAN_NIGHT_M_S = 0.23
USTAR_MEDIAN_DAY_M_S = 0.45
USTAR_LOG_SD = 0.5
USTAR_THRESHOLD_M_S = 0.2
RANDOM_GAP_PROBABILITY = 0.12
LONG_GAP_DAYS = 10
QC_GOOD_MAX_STEPS = 6  # gap runs up to 3 h
QC_MEDIUM_MAX_STEPS = 7 * STEPS_PER_DAY  # gap runs up to 7 days

_SITE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_FORCING_FIELDS = ("start", "n_days", "gpp", "tmean", "srad", "vpd")


@dataclass(frozen=True)
class TowerSite:
    """A flux tower of the synthetic world.

    Attributes:
        site_id: FLUXNET-style identifier such as ``"CN-Lu1"`` (letters, digits, ``-``, ``_``).
        lon: Longitude, degrees east.
        lat: Latitude, degrees north.
        forest_type: ``"ENF"``, ``"DBF"``, ``"MF"`` or ``"DNF"`` (also the IGBP class).
        utc_offset_h: Offset of local standard time from UTC in hours, e.g. ``8.0``.
    """

    site_id: str
    lon: float
    lat: float
    forest_type: str
    utc_offset_h: float

    def __post_init__(self) -> None:
        if not _SITE_ID_RE.match(self.site_id):
            raise WorldError(
                f"TowerSite.site_id {self.site_id!r} is not a valid site id; "
                "use letters, digits, '-' and '_' such as 'CN-Lu1'"
            )
        if self.forest_type not in FOREST_TYPES:
            raise WorldError(
                f"tower {self.site_id}: forest_type {self.forest_type!r} is unknown; "
                f"use one of {FOREST_TYPES}"
            )
        if not -180.0 <= self.lon <= 180.0 or not -90.0 <= self.lat <= 90.0:
            raise WorldError(
                f"tower {self.site_id}: lon/lat ({self.lon!r}, {self.lat!r}) is outside "
                "[-180, 180] x [-90, 90]; give geographic degrees"
            )
        if not -12.0 <= self.utc_offset_h <= 14.0:
            raise WorldError(
                f"tower {self.site_id}: utc_offset_h {self.utc_offset_h!r} is outside [-12, 14] hours"
            )


@dataclass(frozen=True)
class WindowForcing:
    """One year of 8-day-window forcing at a tower; all arrays have one value per window.

    Attributes:
        start: ``datetime64[D]`` window start dates; the windows must tile the calendar year.
        n_days: Days in each window (8; the last window of a year 5 or 6 for GLASS-style windows).
        gpp: True mean GPP rate over the window, gC m-2 d-1 (>= 0).
        tmean: Daily mean air temperature, degC.
        srad: Daily mean shortwave down, W m-2 (>= 0).
        vpd: Daily mean vapour pressure deficit, hPa (>= 0).
    """

    start: np.ndarray
    n_days: np.ndarray
    gpp: np.ndarray
    tmean: np.ndarray
    srad: np.ndarray
    vpd: np.ndarray


@dataclass(frozen=True)
class TowerRecord:
    """One simulated tower-year.

    Attributes:
        halfhourly: The CSV content: :data:`COLUMNS`, gaps as ``-9999``, floats already rounded.
        true_gpp_halfhourly: Truth GPP, gC m-2 per half hour, no gaps, no noise, not rounded.
        quarterly_true_gpp: Calendar quarter (1-4) -> gC m-2 per quarter, the sum of the truth.
    """

    halfhourly: pd.DataFrame
    true_gpp_halfhourly: np.ndarray
    quarterly_true_gpp: dict[int, float]


@dataclass(frozen=True)
class _Daily:
    """Forcing expanded to days: one value per day of the year, plus each day's window index."""

    window: IntArray
    gpp: FloatArray
    tmean: FloatArray
    srad: FloatArray
    vpd: FloatArray
    start: np.ndarray  # window start dates, datetime64[D]


# --- forcing validation -----------------------------------------------------------------------------


def _check_lengths(forcing: WindowForcing, where: str) -> None:
    shapes = {name: np.shape(getattr(forcing, name)) for name in _FORCING_FIELDS}
    if any(len(s) != 1 for s in shapes.values()) or len(set(shapes.values())) != 1:
        raise WorldError(
            f"{where}: WindowForcing arrays must be 1-D with one value per window, got shapes {shapes}"
        )
    if shapes["start"][0] == 0:
        raise WorldError(f"{where}: WindowForcing has no windows; give one year of 8-day windows")


def _check_values(forcing: WindowForcing, start: np.ndarray, where: str) -> None:
    for name in ("gpp", "tmean", "srad", "vpd"):
        values = np.asarray(getattr(forcing, name), dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            i = int(bad[0])
            raise WorldError(f"{where}: forcing.{name}[{i}] (window {start[i]}) is {values[i]!r}, not finite")
        if name != "tmean" and (values < 0).any():
            i = int(np.flatnonzero(values < 0)[0])
            raise WorldError(
                f"{where}: forcing.{name}[{i}] (window {start[i]}) is {values[i]!r}; {name} must be >= 0"
            )


def _norm_start(forcing: WindowForcing, where: str) -> np.ndarray:
    start = np.asarray(forcing.start)
    if start.dtype.kind != "M":
        raise WorldError(f"{where}: forcing.start must be datetime64 dates, got dtype {start.dtype}")
    return start.astype("datetime64[D]")


def _norm_n_days(forcing: WindowForcing, where: str) -> IntArray:
    n_days = np.asarray(forcing.n_days)
    if n_days.dtype.kind not in "iu":
        raise WorldError(f"{where}: forcing.n_days must be integers, got dtype {n_days.dtype}")
    if (n_days <= 0).any():
        i = int(np.flatnonzero(n_days <= 0)[0])
        raise WorldError(f"{where}: forcing.n_days[{i}] is {int(n_days[i])}; a window needs >= 1 day")
    return n_days.astype(np.int64)


def _check_tiling(start: np.ndarray, n_days: IntArray, year: int, where: str) -> None:
    jan1 = np.datetime64(f"{year:04d}-01-01", "D")
    ends = start + n_days.astype("timedelta64[D]")
    expected = np.concatenate([[jan1], ends[:-1]])
    wrong = np.flatnonzero(start != expected)
    if wrong.size:
        i = int(wrong[0])
        raise WorldError(
            f"{where}: window {i} starts {start[i]} but should start {expected[i]}; the windows must tile "
            f"{year} from {jan1} without gaps or overlaps"
        )
    year_end = np.datetime64(f"{year + 1:04d}-01-01", "D")
    if ends[-1] != year_end:
        raise WorldError(
            f"{where}: the last window ends {ends[-1]} (exclusive) but the windows must tile {year} "
            f"up to {year_end}; fix n_days[-1] = {int(n_days[-1])}"
        )


def _resolve_forcing(forcing: WindowForcing, year: int, where: str) -> _Daily:
    """Validate ``forcing`` for ``year`` and expand it to one value per day."""
    if not 1 <= year <= 9998:
        raise WorldError(f"{where}: year {year!r} is outside 1-9998")
    _check_lengths(forcing, where)
    start = _norm_start(forcing, where)
    _check_values(forcing, start, where)
    n_days = _norm_n_days(forcing, where)
    _check_tiling(start, n_days, year, where)
    window = np.repeat(np.arange(n_days.size, dtype=np.int64), n_days)

    def per_day(name: str) -> FloatArray:
        return np.asarray(getattr(forcing, name), dtype=np.float64)[window]

    return _Daily(window, per_day("gpp"), per_day("tmean"), per_day("srad"), per_day("vpd"), start)


# --- solar geometry and meteorology -----------------------------------------------------------------


def _day_angle(n_days_year: int) -> FloatArray:
    """Spencer's day angle (rad) of each day of the year, shape ``(days, 1)``."""
    return (2.0 * np.pi * np.arange(n_days_year, dtype=np.float64) / n_days_year)[:, None]


def _declination_rad(gamma: FloatArray) -> FloatArray:
    return (
        0.006918
        - 0.399912 * np.cos(gamma)
        + 0.070257 * np.sin(gamma)
        - 0.006758 * np.cos(2 * gamma)
        + 0.000907 * np.sin(2 * gamma)
        - 0.002697 * np.cos(3 * gamma)
        + 0.00148 * np.sin(3 * gamma)
    )


def _equation_of_time_min(gamma: FloatArray) -> FloatArray:
    return 229.18 * (
        0.000075
        + 0.001868 * np.cos(gamma)
        - 0.032077 * np.sin(gamma)
        - 0.014615 * np.cos(2 * gamma)
        - 0.040849 * np.sin(2 * gamma)
    )


def _eccentricity(gamma: FloatArray) -> FloatArray:
    return (
        1.000110
        + 0.034221 * np.cos(gamma)
        + 0.001280 * np.sin(gamma)
        + 0.000719 * np.cos(2 * gamma)
        + 0.000077 * np.sin(2 * gamma)
    )


def _solar_hours(site: TowerSite, n_days_year: int) -> FloatArray:
    """Local apparent solar time (h) at the middle of each half hour, shape ``(days, 48)``."""
    clock = (np.arange(STEPS_PER_DAY, dtype=np.float64) + 0.5) * 24.0 / STEPS_PER_DAY
    correction_min = 4.0 * (site.lon - 15.0 * site.utc_offset_h) + _equation_of_time_min(
        _day_angle(n_days_year)
    )
    return clock[None, :] + correction_min / 60.0


def solar_cos_zenith(site: TowerSite, n_days_year: int) -> FloatArray:
    """Cosine of the solar zenith angle at the middle of each half hour of the year.

    Args:
        site: The tower (latitude, longitude and UTC offset are used).
        n_days_year: 365 or 366.

    Returns:
        Array of shape ``(n_days_year, 48)``; negative values mean the sun is below the horizon.

    Example:
        >>> site = TowerSite("XX-Eq", lon=0.0, lat=0.0, forest_type="DBF", utc_offset_h=0.0)
        >>> cosz = solar_cos_zenith(site, 365)
        >>> bool(cosz[79, 24] > 0.99), bool(cosz[79, 0] < -0.99)  # noon and midnight near the equinox
        (True, True)
    """
    gamma = _day_angle(n_days_year)
    decl = _declination_rad(gamma)
    hour_angle = np.radians(15.0 * (_solar_hours(site, n_days_year) - 12.0))
    lat = math.radians(site.lat)
    cosz: FloatArray = math.sin(lat) * np.sin(decl) + math.cos(lat) * np.cos(decl) * np.cos(hour_angle)
    return cosz


def _sunrise_solar_hour(site: TowerSite, n_days_year: int) -> FloatArray:
    """Sunrise in solar hours, shape ``(days, 1)``; 12 in polar night, 0 in polar day."""
    decl = _declination_rad(_day_angle(n_days_year))
    cos_h0 = np.clip(-math.tan(math.radians(site.lat)) * np.tan(decl), -1.0, 1.0)
    sunrise: FloatArray = 12.0 - np.degrees(np.arccos(cos_h0)) / 15.0
    return sunrise


def _round(values: FloatArray, column: str) -> FloatArray:
    """Round to the CSV decimals of ``column``; ``+ 0.0`` turns ``-0.0`` into ``0.0``."""
    rounded: FloatArray = np.round(values, COLUMN_DECIMALS[column]) + 0.0
    return rounded


def _sun_factor(daily: _Daily, rng: np.random.Generator) -> FloatArray:
    """Day-to-day cloudiness factor of shortwave, with mean exactly 1 in every window."""
    raw = np.clip(np.exp(rng.normal(0.0, SUN_FACTOR_LOG_SD, daily.window.size)), *SUN_FACTOR_BOUNDS)
    window_mean = np.bincount(daily.window, raw) / np.bincount(daily.window)
    factor: FloatArray = raw / window_mean[daily.window]
    return factor


def _shortwave(site: TowerSite, daily: _Daily, sun: FloatArray) -> FloatArray:
    """Half-hourly shortwave (W m-2, rounded), each day's mean = ``srad * sun``, shape ``(days, 48)``."""
    n = daily.window.size
    potential = (
        SOLAR_CONSTANT_W_M2
        * CLEAR_SKY_TRANSMITTANCE
        * _eccentricity(_day_angle(n))
        * np.maximum(solar_cos_zenith(site, n), 0.0)
    )
    potential_mean = potential.mean(axis=1)
    target = daily.srad * sun
    dark = np.flatnonzero((potential_mean == 0) & (target > 0))
    if dark.size:
        raise WorldError(
            f"tower {site.site_id}: day {dark[0] + 1} is polar night at lat {site.lat} but the forcing "
            f"gives srad {daily.srad[dark[0]]!r} W m-2; give srad 0 for windows without daylight"
        )
    scale = np.divide(target, potential_mean, out=np.zeros(n), where=potential_mean > 0)
    return _round(potential * scale[:, None], "SW_IN_F")


def _air_temperature(site: TowerSite, daily: _Daily, sun: FloatArray) -> FloatArray:
    """Half-hourly air temperature (degC, rounded), daily mean ``tmean``, shape ``(days, 48)``."""
    n = daily.window.size
    t = np.mod(_solar_hours(site, n), 24.0)
    rise = _sunrise_solar_hour(site, n)
    warming = -np.cos(np.pi * (t - rise) / (TA_MAX_SOLAR_HOUR - rise))
    after = np.where(t < rise, t + 24.0, t)
    cooling = np.cos(np.pi * (after - TA_MAX_SOLAR_HOUR) / (rise + 24.0 - TA_MAX_SOLAR_HOUR))
    shape = np.where((t >= rise) & (t <= TA_MAX_SOLAR_HOUR), warming, cooling)
    amplitude = TA_AMPLITUDE_C * (0.6 + 0.4 * np.clip(sun, *SUN_FACTOR_BOUNDS))
    anomaly = amplitude[:, None] * (shape - shape.mean(axis=1, keepdims=True))
    return _round(daily.tmean[:, None] + anomaly, "TA_F")


def _saturation_vapour_pressure_hpa(ta_c: FloatArray) -> FloatArray:
    """Tetens' formula over water, hPa."""
    es: FloatArray = 6.1078 * np.exp(17.27 * ta_c / (ta_c + 237.3))
    return es


def _vapour_pressure_deficit(daily: _Daily, ta: FloatArray) -> FloatArray:
    """Half-hourly VPD (hPa, rounded) proportional to the saturation vapour pressure, daily mean ``vpd``."""
    es = _saturation_vapour_pressure_hpa(ta)
    return _round(daily.vpd[:, None] * es / es.mean(axis=1, keepdims=True), "VPD_F")


# --- fluxes -----------------------------------------------------------------------------------------


def _true_gpp(site: TowerSite, daily: _Daily, sw: FloatArray, vpd: FloatArray) -> FloatArray:
    """Truth GPP, gC m-2 per half hour, shape ``(days, 48)``; each day sums to its window's rate."""
    light = sw / (sw + LIGHT_HALF_SATURATION_W_M2)
    dryness = 1.0 - VPD_LIMIT_SLOPE_PER_HPA * np.maximum(vpd - VPD_LIMIT_START_HPA, 0.0)
    weight = light * np.clip(dryness, VPD_LIMIT_FLOOR, 1.0)
    day_weight = weight.sum(axis=1)
    dark = np.flatnonzero((day_weight == 0) & (daily.gpp > 0))
    if dark.size:
        i = int(dark[0])
        raise WorldError(
            f"tower {site.site_id}: day {i + 1} has GPP {daily.gpp[i]!r} gC m-2 d-1 but no daylight "
            f"(window {daily.start[daily.window[i]]}); give gpp 0 or srad > 0 for that window"
        )
    share = np.divide(weight, day_weight[:, None], out=np.zeros_like(weight), where=day_weight[:, None] > 0)
    gpp: FloatArray = daily.gpp[:, None] * share
    return gpp


def _true_reco(gpp: FloatArray, ta: FloatArray, reco_to_gpp: float) -> FloatArray:
    """Q10 respiration, gC m-2 per half hour, scaled so its sum is ``reco_to_gpp`` times the GPP sum."""
    shape = Q10 ** ((ta - RECO_TREF_C) / 10.0)
    reco: FloatArray = reco_to_gpp * float(gpp.sum()) * shape / float(shape.sum())
    return reco


def _partitioned(truth: FloatArray, rng: np.random.Generator) -> FloatArray:
    """A partitioned estimate: truth x site-year bias x per-step error (both log-normal)."""
    bias = math.exp(rng.normal(0.0, PARTITION_BIAS_LOG_SD))
    estimate: FloatArray = truth * bias * np.exp(rng.normal(0.0, PARTITION_NOISE_LOG_SD, truth.shape))
    return estimate


def _measured_nee(nee_true: FloatArray, rng: np.random.Generator) -> FloatArray:
    """NEE plus Laplace random error of sd ``floor + relative * |NEE|`` (umol m-2 s-1)."""
    sd = NEE_NOISE_FLOOR_UMOL + NEE_NOISE_RELATIVE * np.abs(nee_true)
    measured: FloatArray = nee_true + rng.laplace(0.0, sd / math.sqrt(2.0))
    return measured


def _friction_velocity(night: BoolArray, rng: np.random.Generator) -> FloatArray:
    """USTAR (m s-1, rounded): log-normal, lower at night."""
    median = np.where(night, USTAR_MEDIAN_NIGHT_M_S, USTAR_MEDIAN_DAY_M_S)
    return _round(median * np.exp(rng.normal(0.0, USTAR_LOG_SD, night.shape)), "USTAR")


def _nee_gaps(night: BoolArray, ustar: FloatArray, rng: np.random.Generator) -> BoolArray:
    """Steps without valid NEE: u* filter at night, random gaps, one long gap."""
    gap = (night & (ustar < USTAR_THRESHOLD_M_S)) | (rng.random(night.shape) < RANDOM_GAP_PROBABILITY)
    length = LONG_GAP_DAYS * STEPS_PER_DAY
    first = int(rng.integers(0, night.size - length + 1))
    gap[first : first + length] = True
    return gap


def _gap_run_lengths(gap: BoolArray) -> IntArray:
    """Length of the run of ``True`` each step sits in (0 outside runs)."""
    edges = np.diff(np.concatenate([[0], gap.astype(np.int64), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    lengths = np.zeros(gap.size, dtype=np.int64)
    lengths[gap] = np.repeat(ends - starts, ends - starts)
    return lengths


def _nee_qc(gap: BoolArray) -> IntArray:
    """FLUXNET-style QC: 0 measured, 1/2/3 gap-filled from short/medium/long gaps."""
    runs = _gap_run_lengths(gap)
    qc = np.where(runs > QC_MEDIUM_MAX_STEPS, 3, np.where(runs > QC_GOOD_MAX_STEPS, 2, 1))
    return np.where(gap, qc, 0).astype(np.int64)


# --- time and table ---------------------------------------------------------------------------------


def _step_starts(year: int, n_steps: int) -> pd.DatetimeIndex:
    first = np.datetime64(f"{year:04d}-01-01T00:00", "m")
    return pd.DatetimeIndex(first + np.arange(n_steps) * np.timedelta64(30, "m"))


def _to_yyyymmddhhmm(times: pd.DatetimeIndex) -> IntArray:
    stamp = np.zeros(len(times), dtype=np.int64)
    for part, scale in zip(
        (times.year, times.month, times.day, times.hour, times.minute),
        (10**8, 10**6, 10**4, 100, 1),
        strict=True,
    ):
        stamp += np.asarray(part, dtype=np.int64) * scale
    return stamp


def _quarterly_sums(values: FloatArray, times: pd.DatetimeIndex) -> dict[int, float]:
    quarter = (np.asarray(times.month, dtype=np.int64) - 1) // 3
    sums = np.bincount(quarter, weights=values, minlength=4)
    return {q + 1: float(sums[q]) for q in range(4)}


def _tower_frame(
    times: pd.DatetimeIndex, fluxes: dict[str, FloatArray], met: dict[str, FloatArray], qc: IntArray
) -> pd.DataFrame:
    stamps = {
        "TIMESTAMP_START": _to_yyyymmddhhmm(times),
        "TIMESTAMP_END": _to_yyyymmddhhmm(times + pd.Timedelta(minutes=30)),
        "NEE_VUT_REF_QC": qc,
    }
    rounded = {name: _round(values, name) for name, values in fluxes.items()}
    rounded["NEE_VUT_REF"] = np.where(qc > 0, MISSING, rounded["NEE_VUT_REF"])
    columns: dict[str, np.ndarray] = {**stamps, **rounded, **met}
    return pd.DataFrame({name: columns[name] for name in COLUMNS})


# --- public API -------------------------------------------------------------------------------------


def simulate_tower(
    site: TowerSite, forcing: WindowForcing, year: int, rng: np.random.Generator
) -> TowerRecord:
    """Simulate one calendar year of half-hourly FLUXNET2015-style data at ``site``.

    The physics and the conventions are described in the module docstring.

    Args:
        site: The tower.
        forcing: 8-day windows that tile ``year`` exactly, with the truth GPP at the tower.
        year: Calendar year (local standard time).
        rng: Source of all randomness; the same seed gives identical output.

    Returns:
        The half-hourly table (the CSV content), the half-hourly truth GPP and its quarterly sums.

    Raises:
        WorldError: The forcing arrays differ in length, hold negative or non-finite values, or do not
            tile the year; or a window has GPP or shortwave but no daylight (polar night).

    Example:
        >>> d = np.arange("2019-01-01", "2020-01-01", 8, dtype="datetime64[D]")
        >>> n = np.diff(np.append(d, np.datetime64("2020-01-01"))).astype(int)
        >>> f = WindowForcing(d, n, np.full(46, 3.0), np.full(46, 5.0), np.full(46, 180.0), np.full(46, 6.0))
        >>> site = TowerSite("CN-Lu1", lon=117.2, lat=42.1, forest_type="DNF", utc_offset_h=8.0)
        >>> rec = simulate_tower(site, f, 2019, np.random.default_rng(0))
        >>> len(rec.halfhourly), round(sum(rec.quarterly_true_gpp.values()), 6)
        (17520, 1095.0)
    """
    where = f"tower {site.site_id} ({year})"
    daily = _resolve_forcing(forcing, year, where)
    sun = _sun_factor(daily, rng)
    sw = _shortwave(site, daily, sun)
    ta = _air_temperature(site, daily, sun)
    vpd = _vapour_pressure_deficit(daily, ta)
    gpp = _true_gpp(site, daily, sw, vpd).ravel()
    reco = _true_reco(gpp, ta.ravel(), float(rng.uniform(*RECO_TO_GPP_RANGE)))
    gpp_umol = gpp / UMOL_M2_S_TO_GC_M2_PER_HALFHOUR
    reco_umol = reco / UMOL_M2_S_TO_GC_M2_PER_HALFHOUR
    fluxes = {
        "NEE_VUT_REF": _measured_nee(reco_umol - gpp_umol, rng),
        "GPP_NT_VUT_REF": _partitioned(gpp_umol, rng),
        "RECO_NT_VUT_REF": _partitioned(reco_umol, rng),
    }
    night = sw.ravel() == 0
    ustar = _friction_velocity(night, rng)
    qc = _nee_qc(_nee_gaps(night, ustar, rng))
    times = _step_starts(year, gpp.size)
    met = {"TA_F": ta.ravel(), "SW_IN_F": sw.ravel(), "VPD_F": vpd.ravel(), "USTAR": ustar}
    return TowerRecord(_tower_frame(times, fluxes, met, qc), gpp, _quarterly_sums(gpp, times))


def tower_csv_name(site: TowerSite) -> str:
    """File name of a tower's CSV, the one :func:`sites_geojson` refers to.

    Example:
        >>> tower_csv_name(TowerSite("US-Ha1", lon=-72.17, lat=42.54, forest_type="DBF", utc_offset_h=-5.0))
        'FLX_US-Ha1_FLUXNET2015_FULLSET_HH.csv'
    """
    return f"FLX_{site.site_id}_FLUXNET2015_FULLSET_HH.csv"


def _format_column(values: np.ndarray, decimals: int | None) -> np.ndarray:
    if decimals is None:
        return np.asarray(values, dtype=np.int64).astype(str)
    floats = np.asarray(values, dtype=np.float64)
    text = np.char.mod(f"%.{decimals}f", floats)
    return np.where(floats == MISSING, "-9999", text)


def tower_csv_text(frame: pd.DataFrame) -> str:
    """FLUXNET2015-style CSV text of a tower table: header, comma separated, ``-9999`` missing, LF ends.

    Floats get the fixed decimals of :data:`COLUMN_DECIMALS`, so equal tables give equal bytes.

    Raises:
        WorldError: A column of :data:`COLUMNS` is missing from ``frame``.
    """
    missing = [name for name in COLUMNS if name not in frame.columns]
    if missing:
        raise WorldError(f"tower table lacks columns {missing}; build it with simulate_tower")
    cells = [_format_column(frame[name].to_numpy(), COLUMN_DECIMALS.get(name)) for name in COLUMNS]
    rows = (",".join(row) for row in zip(*(c.tolist() for c in cells), strict=True))
    return "\n".join([",".join(COLUMNS), *rows]) + "\n"


def write_tower_csv(record: TowerRecord, path: Path) -> None:
    """Write ``record.halfhourly`` as a FLUXNET2015-style CSV (see :func:`tower_csv_text`).

    Raises:
        WorldError: The file cannot be written.
    """
    try:
        Path(path).write_bytes(tower_csv_text(record.halfhourly).encode("ascii"))
    except OSError as e:
        raise WorldError(f"cannot write tower CSV {str(path)!r}: {e}; check the output folder") from e


def sites_geojson(sites: Sequence[TowerSite]) -> dict[str, Any]:
    """GeoJSON FeatureCollection of the towers (EPSG:4326 points).

    Each feature has properties ``site_id``, ``forest_type``, ``igbp`` (the same class: ENF, DBF, MF and
    DNF are IGBP codes), ``utc_offset_h`` and ``csv`` (:func:`tower_csv_name`).

    Raises:
        WorldError: Two sites share a ``site_id``.

    Example:
        >>> site = TowerSite("CN-Lu1", lon=117.2, lat=42.1, forest_type="DNF", utc_offset_h=8.0)
        >>> sites_geojson([site])["features"][0]["geometry"]
        {'type': 'Point', 'coordinates': [117.2, 42.1]}
    """
    ids = [s.site_id for s in sites]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise WorldError(f"tower site ids must be unique, {duplicated} occur more than once")
    return {"type": "FeatureCollection", "features": [_site_feature(s) for s in sites]}


def _site_feature(site: TowerSite) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": site.site_id,
        "geometry": {"type": "Point", "coordinates": [float(site.lon), float(site.lat)]},
        "properties": {
            "site_id": site.site_id,
            "forest_type": site.forest_type,
            "igbp": site.forest_type,
            "utc_offset_h": float(site.utc_offset_h),
            "csv": tower_csv_name(site),
        },
    }
