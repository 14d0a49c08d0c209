"""Weather of the synthetic world: 8-day windows, coarse meteorology and its 30 m truth.

The climate is continental monsoon, as in the upper Luanhe basin: cold dry winters, warm wet summers.
Each 8-day window gets a regional anomaly (temperature, cloudiness, humidity, rain); within the window
the weather is constant. Quantities:

- ``tmean`` daily mean air temperature, degC: ``12.0 - 0.0065 z + 16.5 cos(2 pi (doy - 200) / 365.25)``
  plus the window anomaly (z = elevation, m; the lapse rate is 6.5 K km-1).
- ``srad`` daily mean shortwave down on a horizontal surface, W m-2: a cloudiness factor times 0.75 of the
  top-of-atmosphere daily mean (FAO-56 equations).
- ``vpd`` hPa, from the Tetens saturation pressure and a seasonal relative humidity.
- ``prcp`` mm d-1.

The coarse product (about 1 km, EPSG:4326) sees only smooth orography; the 30 m truth sees the full
terrain: lapse-rate temperature and a slope/aspect radiation factor (direct beam at solar noon on the
slope relative to the horizontal, applied to the direct fraction; diffuse light scaled by the sky view
``(1 + cos slope) / 2``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gppscale.world.fields import seeded_rng

__all__ = [
    "Climate",
    "Weather",
    "day_of_year",
    "glass_windows",
    "quarter_day_overlap",
    "quarter_edges",
    "quarter_of",
    "sun_elevation_deg",
    "terrain_radiation_factor",
]

F64 = npt.NDArray[np.float64]
LAPSE_K_PER_M = -0.0065


def day_of_year(day: np.datetime64) -> int:
    """Day of year, 1 on 1 January.

    Example:
        >>> day_of_year(np.datetime64("2021-03-30"))
        89
    """
    d = day.astype("datetime64[D]")
    return int((d - d.astype("datetime64[Y]").astype("datetime64[D]")).astype(int)) + 1


def quarter_edges(year: int) -> npt.NDArray[np.datetime64]:
    """First days of the four quarters of ``year`` and of the next year (5 dates)."""
    return np.array([f"{year}-{m:02d}-01" for m in (1, 4, 7, 10)] + [f"{year + 1}-01-01"], "datetime64[D]")


def quarter_of(day: np.datetime64) -> int:
    """Quarter (1-4) holding ``day``."""
    return (int(day.astype("datetime64[M]").astype(int)) % 12) // 3 + 1


def glass_windows(year: int) -> tuple[npt.NDArray[np.datetime64], npt.NDArray[np.int64]]:
    """GLASS/MODIS 8-day windows of a year: starts on day 1, 9, ..., 361; the last one is 5 or 6 days.

    Example:
        >>> starts, n = glass_windows(2020)
        >>> len(starts), int(n[-1]), int(n.sum())
        (46, 6, 366)
    """
    first = np.datetime64(f"{year}-01-01", "D")
    n_year = int((np.datetime64(f"{year + 1}-01-01", "D") - first).astype(int))
    offsets = np.arange(0, n_year, 8)
    starts = first + offsets.astype("timedelta64[D]")
    n_days = np.minimum(8, n_year - offsets).astype(np.int64)
    return starts, n_days


def quarter_day_overlap(
    starts: npt.NDArray[np.datetime64], n_days: npt.NDArray[np.int64], year: int
) -> npt.NDArray[np.int64]:
    """Days each window shares with each quarter of ``year``: shape ``(4, n_windows)``.

    Example:
        >>> s = np.array(["2021-03-30"], dtype="datetime64[D]")
        >>> quarter_day_overlap(s, np.array([8]), 2021)[:, 0].tolist()
        [2, 6, 0, 0]
    """
    q_edges = quarter_edges(year)
    w0 = starts.astype("datetime64[D]")
    w1 = w0 + n_days.astype("timedelta64[D]")
    lo = np.maximum(w0[None, :], q_edges[:-1, None])
    hi = np.minimum(w1[None, :], q_edges[1:, None])
    days: npt.NDArray[np.int64] = np.maximum((hi - lo).astype(np.int64), 0)
    return days


def _solar_declination(doy: float) -> float:
    return float(0.409 * np.sin(2.0 * np.pi * doy / 365.0 - 1.39))


def sun_elevation_deg(doy: float, lat_deg: float, hour_angle_deg: float) -> float:
    """Solar elevation (degrees) at a local solar hour angle (0 at noon, -15 per hour before)."""
    phi, d, h = np.radians(lat_deg), _solar_declination(doy), np.radians(hour_angle_deg)
    return float(np.degrees(np.arcsin(np.sin(phi) * np.sin(d) + np.cos(phi) * np.cos(d) * np.cos(h))))


def toa_daily_mean_wm2(doy: float, lat_deg: F64 | float) -> F64:
    """Top-of-atmosphere daily mean irradiance on a horizontal surface, W m-2 (FAO-56 eq. 21)."""
    phi = np.radians(lat_deg)
    delta = _solar_declination(doy)
    dr = 1.0 + 0.033 * np.cos(2.0 * np.pi * doy / 365.0)
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(delta), -1.0, 1.0))
    return np.asarray(
        1367.0 / np.pi * dr * (ws * np.sin(phi) * np.sin(delta) + np.cos(phi) * np.cos(delta) * np.sin(ws))
    )


def terrain_radiation_factor(doy: float, lat_deg: float, slope: F64, aspect: F64, direct: float) -> F64:
    """Shortwave on a slope relative to a horizontal surface (see module docstring)."""
    phi = np.radians(lat_deg)
    delta = _solar_declination(doy)
    cos_z = max(np.sin(phi) * np.sin(delta) + np.cos(phi) * np.cos(delta), 0.05)
    sin_z = np.sqrt(1.0 - cos_z**2)
    sun_az = np.pi  # solar noon, northern hemisphere
    cos_i = cos_z * np.cos(slope) + sin_z * np.sin(slope) * np.cos(sun_az - aspect)
    factor: F64 = (1.0 - direct) * (1.0 + np.cos(slope)) / 2.0 + direct * np.maximum(cos_i, 0.0) / cos_z
    return factor


@dataclass(frozen=True)
class Weather:
    """Window anomalies of one year (arrays over the year's 8-day windows)."""

    year: int
    starts: npt.NDArray[np.datetime64]
    n_days: npt.NDArray[np.int64]
    dtemp: F64  # degC
    cloud: F64  # fraction of clear-sky shortwave reaching the ground
    rh: F64  # relative humidity, 0-1
    prcp: F64  # mm d-1

    @property
    def mid_doy(self) -> F64:
        """Day of year of each window's middle."""
        first = quarter_edges(self.year)[0]
        return np.asarray((self.starts - first).astype(np.float64) + 1.0 + (self.n_days - 1) / 2.0)


class Climate:
    """Seeded weather of a world; pure functions of window, elevation and latitude."""

    def __init__(self, seed: int, years: tuple[int, ...]) -> None:
        self.weather: dict[int, Weather] = {y: self._draw(seed, y) for y in years}

    @staticmethod
    def _draw(seed: int, year: int) -> Weather:
        rng = seeded_rng(seed, "climate", year)
        starts, n_days = glass_windows(year)
        n = len(starts)
        doy = (starts - np.datetime64(f"{year}-01-01", "D")).astype(np.float64) + 4.0
        summer = 0.5 + 0.5 * np.cos(2.0 * np.pi * (doy - 200.0) / 365.25)
        dtemp = np.convolve(rng.normal(0.0, 2.2, n + 2), [0.25, 0.5, 0.25], mode="valid")
        cloud = np.clip(0.88 - 0.22 * summer + rng.normal(0.0, 0.08, n), 0.40, 1.0)
        rh = np.clip(0.42 + 0.30 * summer + rng.normal(0.0, 0.06, n), 0.2, 0.95)
        prcp = rng.gamma(1.2, (0.3 + 4.2 * summer**2) / 1.2)
        return Weather(year, starts, n_days, dtemp, cloud, rh, prcp)

    def tmean(self, year: int, w: int, z: F64) -> F64:
        """Daily mean temperature (degC) at elevation ``z`` (m)."""
        wx = self.weather[year]
        seasonal = 16.5 * np.cos(2.0 * np.pi * (wx.mid_doy[w] - 200.0) / 365.25)
        t: F64 = 12.0 + LAPSE_K_PER_M * z + seasonal + wx.dtemp[w]
        return t

    def srad(self, year: int, w: int, lat_deg: F64 | float) -> F64:
        """Daily mean shortwave down on a horizontal surface, W m-2."""
        wx = self.weather[year]
        return np.asarray(wx.cloud[w] * 0.75 * toa_daily_mean_wm2(float(wx.mid_doy[w]), lat_deg))

    def vpd(self, year: int, w: int, tmean: F64) -> F64:
        """Vapour pressure deficit, hPa, from temperature (Tetens) and the window's humidity."""
        es = 6.108 * np.exp(17.27 * tmean / (tmean + 237.3))
        return np.asarray(es * (1.0 - self.weather[year].rh[w]))

    def direct_fraction(self, year: int, w: int) -> float:
        """Fraction of shortwave arriving as direct beam (more on clear windows)."""
        return float(np.clip(1.1 * self.weather[year].cloud[w] - 0.25, 0.1, 0.8))
