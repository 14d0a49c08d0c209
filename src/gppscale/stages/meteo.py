"""Quarterly meteorology and its terrain corrections at 30 m.

Coarse meteorology (about 1 km, daily or 8-day windows) becomes quarterly means on its own grid
(:func:`quarterly_meteo`, windows prorated by day). Temperature is brought to 30 m with a constant lapse
rate: reduced to sea level with the coarse elevation (:func:`temperature_to_sea_level`), interpolated,
then brought back to the 30 m elevation (:func:`temperature_at_elevation`). Shortwave is multiplied by
the slope/aspect factor of :func:`radiation_terrain_factor`.

Example:
    >>> float(temperature_at_elevation(temperature_to_sea_level(10.0, 1000.0), 1200.0))  # 10 + 6.5 - 7.8
    8.7
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
import xarray as xr

from gppscale.errors import MissingAssetError, SpecError
from gppscale.stages.quarters import Quarter, overlap_days, reduce_quarter

__all__ = [
    "DIFFUSE_FRACTION",
    "HOUR_STEPS",
    "LAPSE_RATE_K_PER_M",
    "METEO_VARS",
    "quarterly_meteo",
    "radiation_terrain_factor",
    "temperature_at_elevation",
    "temperature_to_sea_level",
]

LAPSE_RATE_K_PER_M = 0.0065
"""Environmental lapse rate, K m-1: temperature falls by 6.5 K per km of height (ICAO standard atmosphere)."""

DIFFUSE_FRACTION = 0.3
"""Share of daily shortwave taken as isotropic diffuse in :func:`radiation_terrain_factor` (the rest is
direct beam); about right for mostly clear continental skies, used when the run spec gives none."""

HOUR_STEPS = 96
"""Hour-angle steps (15 minutes) over which :func:`radiation_terrain_factor` sums the sun's path."""

METEO_VARS = ("tmean", "prcp", "srad", "vpd")
"""Variables :func:`quarterly_meteo` reads."""

_ATTRS = {
    "tmean": {"long_name": "mean air temperature", "units": "degC"},
    "prcp": {"long_name": "precipitation total", "units": "mm quarter-1"},
    "srad": {"long_name": "mean daily shortwave radiation", "units": "W m-2"},
    "vpd": {"long_name": "mean vapour pressure deficit", "units": "hPa"},
}

Arr = TypeVar("Arr", xr.DataArray, npt.NDArray[Any], float)
F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
Dates = npt.NDArray[np.datetime64]


def weighted_mean_kernel(values_tyx: npt.NDArray[np.floating[Any]], weights_t: F64) -> F32:
    """NaN-aware weighted mean over the leading (time) axis; NaN where no weight meets a finite value.

    Example:
        >>> v = np.array([[1.0, np.nan], [4.0, np.nan]])  # (time, x)
        >>> weighted_mean_kernel(v, np.array([2.0, 6.0])).tolist()  # (1*2 + 4*6) / 8 = 3.25
        [3.25, nan]
    """
    v = np.asarray(values_tyx, dtype=np.float64)
    w = np.asarray(weights_t, dtype=np.float64).reshape((-1,) + (1,) * (v.ndim - 1))
    finite = np.isfinite(v)
    num = np.sum(np.where(finite, v, 0.0) * w, axis=0)
    den = np.sum(np.where(finite, w, 0.0), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(den > 0, num / den, np.nan)
    return mean.astype(np.float32)


def _check_met(met: xr.Dataset, window_start: Dates, window_end: Dates) -> None:
    missing = [v for v in METEO_VARS if v not in met.data_vars]
    if missing:
        raise MissingAssetError(
            f"meteorology lacks variables {missing} (it has {sorted(map(str, met.data_vars))}); "
            f"load {list(METEO_VARS)} under these names (collections.meteorology.assets)"
        )
    n = met.sizes.get("time", 0)
    if window_start.shape != (n,) or window_end.shape != (n,):
        raise SpecError(
            f"meteorology has {n} time steps but window_start/window_end have shapes "
            f"{window_start.shape}/{window_end.shape}; give one [start, end) window per time step"
        )


def quarterly_meteo(
    met: xr.Dataset,
    window_start: npt.NDArray[np.datetime64],
    window_end: npt.NDArray[np.datetime64],
    quarters: Sequence[Quarter],
) -> xr.Dataset:
    """Quarterly day-weighted means of ``tmean``, ``srad``, ``vpd`` and the quarterly total of ``prcp``.

    Each time step stands for the days ``[window_start, window_end)``; its weight in a quarter is the
    number of days it shares with it (:func:`~.quarters.overlap_days`), so an 8-day window across a
    quarter edge is split by day. Means skip NaN (the weights of the others are renormalised).
    ``prcp`` (mm d-1) becomes mm per quarter as the weighted mean daily rate times the quarter's days,
    so missing windows do not bias the total low.

    Args:
        met: ``tmean`` (degC), ``prcp`` (mm d-1), ``srad`` (W m-2), ``vpd`` (hPa) on (time, y, x).
        window_start: First day of each time step's window (datetime64, one per time step).
        window_end: Day after each window (exclusive).
        quarters: Output quarters, in order.

    Returns:
        The four variables (float32) on (time, y, x), ``time`` the quarters' first days
        (``datetime64[ns]``); NaN in a quarter no window overlaps. Other coordinates are kept; dask
        inputs stay lazy with one time chunk per quarter.

    Raises:
        MissingAssetError: If a variable is missing.
        SpecError: If the windows do not match the time steps, or no quarter is given.

    Example:
        >>> s = np.array(["2021-03-26", "2021-04-03"], dtype="datetime64[D]")
        >>> one = np.ones((2, 1, 1), np.float32)
        >>> met = xr.Dataset({v: (("time", "y", "x"), one * k) for k, v in enumerate(METEO_VARS, 1)})
        >>> q = quarterly_meteo(met, s, s + np.timedelta64(8, "D"), [Quarter(2021, 2)])
        >>> float(q.prcp[0, 0, 0]), q.prcp.attrs["units"]  # 2 mm d-1 * 91 days
        (182.0, 'mm quarter-1')
    """
    if not quarters:
        raise SpecError("quarterly_meteo needs at least one quarter; give the run's quarters")
    window_start, window_end = np.asarray(window_start), np.asarray(window_end)
    _check_met(met, window_start, window_end)
    starts = xr.DataArray(np.array([q.start for q in quarters], dtype="datetime64[ns]"), dims="time")
    out = {}
    for name in METEO_VARS:
        var = met[name].transpose("time", ...).astype(np.float32)
        parts = [
            reduce_quarter(var, overlap_days(window_start, window_end, q), weighted_mean_kernel)
            for q in quarters
        ]
        if name == "prcp":
            parts = [p * np.float32(q.days) for p, q in zip(parts, quarters, strict=True)]
        stacked = xr.concat(parts, dim="time", coords="minimal", compat="override", join="override")
        dims = ("time", *(d for d in var.dims if d != "time"))
        stacked = stacked.assign_coords(time=starts).transpose(*dims)
        stacked.attrs = {**met[name].attrs, **_ATTRS[name]}
        out[name] = stacked
    return xr.Dataset(out, attrs=dict(met.attrs))


def temperature_to_sea_level(t: Arr, z: Arr, lapse: float = LAPSE_RATE_K_PER_M) -> Arr:
    """Temperature reduced to sea level, ``t + lapse * z`` (``z`` in m, ``lapse`` in K m-1).

    Example:
        >>> float(temperature_to_sea_level(5.0, 1000.0))  # 5 + 0.0065 * 1000
        11.5
    """
    out: Arr = t + lapse * z
    return _keep_attrs(out, t)


def temperature_at_elevation(t0: Arr, z: Arr, lapse: float = LAPSE_RATE_K_PER_M) -> Arr:
    """Sea-level temperature brought to elevation ``z`` (m), ``t0 - lapse * z``.

    Example:
        >>> float(temperature_at_elevation(11.5, 1000.0))  # 11.5 - 0.0065 * 1000
        5.0
    """
    out: Arr = t0 - lapse * z
    return _keep_attrs(out, t0)


def _keep_attrs(out: Arr, like: object) -> Arr:
    if isinstance(out, xr.DataArray) and isinstance(like, xr.DataArray):
        out.attrs = dict(like.attrs)
    return out


def _declination_rad(doy: float) -> float:
    """Solar declination, Cooper (1969): 23.45° sin(360° (284 + doy) / 365)."""
    return float(np.radians(23.45) * np.sin(2.0 * np.pi * (284.0 + doy) / 365.0))


def radiation_factor_kernel(
    slope_deg: npt.ArrayLike,
    northness: npt.ArrayLike,
    eastness: npt.ArrayLike,
    lat_deg: npt.ArrayLike,
    doy: float,
    diffuse_fraction: float = DIFFUSE_FRACTION,
) -> npt.NDArray[np.float32]:
    """NumPy kernel of :func:`radiation_terrain_factor` (inputs broadcast together)."""
    s = np.radians(np.asarray(slope_deg, dtype=np.float64))
    n, e = np.asarray(northness, dtype=np.float64), np.asarray(eastness, dtype=np.float64)
    phi = np.radians(np.asarray(lat_deg, dtype=np.float64))
    delta = _declination_rad(doy)
    cos_s = np.cos(s)
    sin_s_n, sin_s_e = np.sin(s) * n, np.sin(s) * e
    tilted = np.zeros(np.broadcast_shapes(s.shape, n.shape, e.shape, phi.shape))
    flat = np.zeros(phi.shape)
    for h in np.radians(-180.0 + (np.arange(HOUR_STEPS) + 0.5) * 360.0 / HOUR_STEPS):
        # Sun unit vector (east, north, up): up = cos z, north = sin z cos A, east = sin z sin A, with A
        # the sun azimuth clockwise from north (h > 0 in the afternoon, when the sun is in the west).
        up = np.sin(phi) * np.sin(delta) + np.cos(phi) * np.cos(delta) * np.cos(h)
        if np.all(up <= 0):
            continue  # night everywhere: nothing to add
        north = np.cos(phi) * np.sin(delta) - np.sin(phi) * np.cos(delta) * np.cos(h)
        east = -np.cos(delta) * np.sin(h)
        cos_i = up * cos_s + north * sin_s_n + east * sin_s_e
        tilted += np.where(up > 0, np.maximum(cos_i, 0.0), 0.0)
        flat += np.maximum(up, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        # No sun all day (polar night): no direct beam to redistribute, the direct ratio is 1.
        direct = np.where(flat > 0, tilted / flat, 1.0)
    kd = float(diffuse_fraction)
    # Written as 1 + deviations so that flat ground (direct = 1, cos s = 1) gives exactly 1.
    factor = 1.0 + (1.0 - kd) * (direct - 1.0) - kd * (1.0 - cos_s) / 2.0
    return np.asarray(factor, dtype=np.float32)


def radiation_terrain_factor(
    slope_deg: Arr,
    northness: Arr,
    eastness: Arr,
    lat_deg: float | npt.ArrayLike | xr.DataArray,
    doy: float,
    diffuse_fraction: float = DIFFUSE_FRACTION,
) -> Arr:
    """Daily shortwave on the tilted 30 m surface relative to a horizontal one (1 on flat ground).

    With ``kd`` the diffuse fraction, ``s`` the slope and ``z`` the solar zenith at hour angle ``h``::

        factor = (1 - kd) * Σ_h max(cos i, 0) [cos z > 0] / Σ_h max(cos z, 0) + kd * (1 + cos s) / 2
        cos i  = cos z cos s + sin z sin s cos(φ_sun - aspect)

    summed over :data:`HOUR_STEPS` hour angles of the day, declination from the day of year (Cooper
    1969), sun azimuth ``φ_sun`` and aspect clockwise from north (``cos aspect = northness``,
    ``sin aspect = eastness``). The direct beam follows the sun's path; diffuse light is isotropic,
    seen through the sky-view share ``(1 + cos s) / 2``. Shading by surrounding terrain and reflected
    light are ignored. Without sun all day the direct ratio is taken as 1.

    Args:
        slope_deg: Slope, degrees.
        northness: cos(aspect), aspect being the downslope direction clockwise from north.
        eastness: sin(aspect).
        lat_deg: Latitude, degrees (scalar or broadcastable array).
        doy: Day of year (e.g. :attr:`~.quarters.Quarter.mid_doy`).
        diffuse_fraction: Share of diffuse shortwave, 0 to 1.

    Returns:
        The factor (float32), shaped like the inputs; a DataArray (lazy for dask) if they are.

    Raises:
        SpecError: If ``diffuse_fraction`` is outside [0, 1].

    Example:
        >>> f = radiation_terrain_factor(np.array([0.0, 30.0, 30.0]), np.array([0.0, -1.0, 1.0]),
        ...                              np.zeros(3), 42.0, 15)  # flat, south- and north-facing
        >>> float(f[0]), bool(f[1] > 1.5), bool(f[2] < 0.5)
        (1.0, True, True)
    """
    if not 0.0 <= diffuse_fraction <= 1.0:
        raise SpecError(f"diffuse_fraction={diffuse_fraction!r} is outside [0, 1]; fix cube.diffuse_fraction")
    args = (slope_deg, northness, eastness, lat_deg)
    kwargs = {"doy": float(doy), "diffuse_fraction": float(diffuse_fraction)}
    if not any(isinstance(a, xr.DataArray) for a in args):
        return cast(Arr, radiation_factor_kernel(*args, **kwargs))
    result: Arr = xr.apply_ufunc(
        radiation_factor_kernel,
        *args,
        kwargs=kwargs,
        dask="parallelized",
        output_dtypes=[np.float32],
        keep_attrs=False,
    ).assign_attrs(long_name="shortwave terrain factor (tilted / horizontal)", units="1")
    return result
