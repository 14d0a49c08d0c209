"""The CF ``spatial_ref`` coordinate of a grid, so the CRS survives a Zarr round trip.

Example:
    >>> from affine import Affine
    >>> from odc.geo.geobox import GeoBox
    >>> ref = spatial_ref(GeoBox((2, 2), Affine(30, 0, 0, 0, -30, 60), "EPSG:32650"))
    >>> int(ref), ref.attrs["GeoTransform"]
    (32650, '0.0 30.0 0.0 60.0 0.0 -30.0')
"""

from __future__ import annotations

import numpy as np
import pyproj
import xarray as xr
from odc.geo.geobox import GeoBox

from gppscale.errors import SpecError

__all__ = ["spatial_ref"]


def spatial_ref(geobox: GeoBox) -> xr.DataArray:
    """A scalar ``spatial_ref`` coordinate (EPSG code or 0) with CF grid-mapping attributes and the WKT.

    Raises:
        SpecError: If the grid has no CRS.
    """
    crs = geobox.crs
    if crs is None:
        raise SpecError("the grid has no CRS; give every grid a CRS")
    t = geobox.transform
    wkt = crs.to_wkt()
    attrs = {
        **pyproj.CRS.from_wkt(wkt).to_cf(),
        "crs_wkt": wkt,
        "spatial_ref": wkt,
        "GeoTransform": f"{t.c} {t.a} {t.b} {t.f} {t.d} {t.e}",
    }
    return xr.DataArray(np.int32(crs.epsg or 0), attrs=attrs)
