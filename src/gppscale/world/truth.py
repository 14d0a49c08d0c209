"""The 30 m truth: canopy state through the year and light-use-efficiency GPP/NPP.

GPP follows the MOD17 structure, per 8-day window (rate constant within the window)::

    GPP = eps_max * fPAR * PAR * f(Tmin) * f(VPD) * efficiency     [gC m-2 d-1]
    PAR = 0.45 * shortwave * 0.0864                                 [MJ m-2 d-1 from W m-2]
    fPAR = 0.95 * (1 - exp(-0.5 * LAI))
    f(Tmin): 0 at tmin_min, linear to 1 at tmin_max; Tmin = tmean - 6 degC
    f(VPD): 1 at vpd_min, linear to 0 at vpd_max
    NPP = npp_ratio(type) * GPP * (1 + 0.05 * a smooth field)

LAI follows a double-logistic season between ``sos`` and ``eos`` for deciduous kinds; evergreen needles
keep 75 % of their peak in winter; mixed forest is half and half. ``efficiency`` is a trait no
reflectance reveals, so Landsat predictors explain the truth only partly, as in the real world.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gppscale.world.climate import Climate
from gppscale.world.landscape import CLASS_PARAMS, LAND_COVER_CODES, Landscape, Points, forest_type_name

__all__ = ["KINDS", "Canopy", "gpp_rate"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

KINDS: tuple[str, ...] = tuple(CLASS_PARAMS)  # index of each pixel's kind in Canopy.kind
_BY_KIND: dict[str, F64] = {
    name: np.array([getattr(CLASS_PARAMS[k], name) for k in KINDS])
    for name in ("eps_max", "tmin_min", "tmin_max", "vpd_min", "vpd_max", "npp_ratio", "lai_max")
}


@dataclass(frozen=True)
class Canopy:
    """Static traits of every pixel of a grid (float32 to bound memory on large worlds)."""

    code: npt.NDArray[np.uint8]
    kind: npt.NDArray[np.int8]
    z: F32
    lai_peak: F32
    sos: F32
    eos: F32
    evergreen: F32  # share of the canopy that keeps its leaves (1 ENF, 0.5 MF, 0 deciduous)
    efficiency: F32
    npp_ratio: F32

    @staticmethod
    def build(land: Landscape, p: Points, seed_field: F64) -> Canopy:
        """Evaluate the landscape's traits at ``p``; ``seed_field`` is a unit field for NPP ratios."""
        z = land.elevation(p)
        code = land.land_cover(p, z)
        lut = np.full(256, -1, dtype=np.int8)
        for c in LAND_COVER_CODES:
            lut[c] = KINDS.index(forest_type_name(c))
        kind = lut[code]
        cover = land.canopy_cover(p, code)
        evergreen = np.array([_evergreen(k) for k in KINDS])[kind]
        ratio = _BY_KIND["npp_ratio"][kind] * (1.0 + 0.05 * seed_field)
        sos, eos = land.season(p, z)
        f32 = np.float32
        return Canopy(
            code,
            kind,
            z.astype(f32),
            # lai_max is the LAI of a stand at 75 % canopy cover.
            (_BY_KIND["lai_max"][kind] * cover / 0.75 * land.vigor(p)).astype(f32),
            sos.astype(f32),
            eos.astype(f32),
            evergreen.astype(f32),
            land.efficiency(p).astype(f32),
            ratio.astype(f32),
        )

    def lai(self, doy: float) -> F32:
        """Leaf area index on day of year ``doy``."""
        rise = 1.0 / (1.0 + np.exp(-(doy - self.sos) / 8.0))
        fall = 1.0 / (1.0 + np.exp(-(doy - self.eos) / 8.0))
        season = np.clip(rise - fall, 0.0, 1.0)
        shape = self.evergreen * (0.75 + 0.25 * season) + (1.0 - self.evergreen) * (0.05 + 0.95 * season)
        lai: F32 = (self.lai_peak * shape).astype(np.float32)
        return lai


def _evergreen(kind: str) -> float:
    return {"ENF": 1.0, "EBF": 1.0, "MF": 0.5}.get(kind, 0.0)


def fpar_of_lai(lai: F32) -> F32:
    """Fraction of absorbed PAR of a canopy with leaf area index ``lai``."""
    fpar: F32 = (0.95 * (1.0 - np.exp(-0.5 * lai))).astype(np.float32)
    return fpar


def gpp_rate(canopy: Canopy, doy: float, tmean: F64, srad: F64, vpd: F64) -> F32:
    """Truth GPP, gC m-2 d-1, for one window from the canopy and 30 m weather."""
    par = 0.45 * srad * 0.0864
    tmin = tmean - 6.0
    table = _BY_KIND
    k = canopy.kind
    f_t = np.clip((tmin - table["tmin_min"][k]) / (table["tmin_max"][k] - table["tmin_min"][k]), 0.0, 1.0)
    f_vpd = np.clip((table["vpd_max"][k] - vpd) / (table["vpd_max"][k] - table["vpd_min"][k]), 0.0, 1.0)
    fpar = fpar_of_lai(canopy.lai(doy))
    gpp = table["eps_max"][k] * fpar * par * f_t * f_vpd * canopy.efficiency
    return np.asarray(gpp, dtype=np.float32)


def window_weather(
    climate: Climate, year: int, w: int, canopy: Canopy, lat_deg: F64, terrain: F64
) -> tuple[F64, F64, F64]:
    """30 m ``tmean`` (degC), ``srad`` (W m-2, with the terrain factor) and ``vpd`` (hPa) of a window."""
    tmean = climate.tmean(year, w, canopy.z.astype(np.float64))
    srad = climate.srad(year, w, lat_deg) * terrain
    return tmean, srad, climate.vpd(year, w, tmean)
