"""The world's 30 m truth as Zarr: quarterly GPP/NPP and clean composites, written quarter by quarter."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr
from pyproj import CRS

from gppscale.world.climate import quarter_edges
from gppscale.world.grids import Grid
from gppscale.world.landsat import BANDS
from gppscale.world.truth import Canopy

__all__ = ["TruthStore"]

F32 = npt.NDArray[np.float32]
CHUNK = 512


def quarter_starts(years: tuple[int, ...]) -> pd.DatetimeIndex:
    """First day of every quarter of ``years``."""
    return pd.DatetimeIndex(np.concatenate([quarter_edges(y)[:4] for y in years]))


def spatial_ref(grid: Grid) -> xr.DataArray:
    """CF grid-mapping variable of a grid (``crs_wkt`` plus the GDAL ``GeoTransform``)."""
    crs = CRS.from_user_input(grid.crs)
    attrs = crs.to_cf()
    attrs["spatial_ref"] = crs.to_wkt()
    attrs["GeoTransform"] = " ".join(str(v) for v in grid.transform.to_gdal())
    return xr.DataArray(np.int32(0), attrs=attrs)


class TruthStore:
    """A Zarr v3 store of the truth; create once, then ``write_quarter`` each quarter."""

    def __init__(self, path: Path, times: pd.DatetimeIndex) -> None:
        self.path = path
        self.times = times

    @staticmethod
    def create(path: Path, grid: Grid, years: tuple[int, ...], canopy: Canopy) -> TruthStore:
        """Write the template: coordinates, static layers and empty quarterly variables."""
        times = quarter_starts(years)
        shape = (len(times), *grid.shape)
        chunks = (1, min(CHUNK, grid.height), min(CHUNK, grid.width))
        dims = ("time", "y", "x")

        def empty(units: str, long_name: str) -> xr.DataArray:
            data = da.full(shape, np.nan, dtype=np.float32, chunks=chunks)  # type: ignore[no-untyped-call]
            attrs = {"units": units, "long_name": long_name, "grid_mapping": "spatial_ref"}
            return xr.DataArray(data, dims=dims, attrs=attrs)

        data_vars = {
            "gpp": empty("gC m-2 quarter-1", "true gross primary production, quarterly sum"),
            "npp": empty("gC m-2 quarter-1", "true net primary production, quarterly sum"),
        }
        for b in (*BANDS, "ndvi"):
            data_vars[f"clean_{b}"] = empty("1", f"cloud-free, noise-free quarterly mean {b}")
        data_vars["land_cover"] = xr.DataArray(
            canopy.code, dims=("y", "x"), attrs={"long_name": "GLC_FCS30 code", "grid_mapping": "spatial_ref"}
        )
        data_vars["elevation"] = xr.DataArray(
            canopy.z,
            dims=("y", "x"),
            attrs={"units": "m", "long_name": "elevation", "grid_mapping": "spatial_ref"},
        )
        ds = xr.Dataset(
            data_vars,
            coords={
                "time": ("time", times, {"long_name": "quarter start"}),
                "x": ("x", grid.xs, {"units": "m", "standard_name": "projection_x_coordinate"}),
                "y": ("y", grid.ys, {"units": "m", "standard_name": "projection_y_coordinate"}),
                "spatial_ref": spatial_ref(grid),
            },
            attrs={"title": "gppscale synthetic world truth (for scoring only)"},
        )
        encoding = {
            name: {"chunks": chunks, "fill_value": np.float32(np.nan)}
            for name in data_vars
            if name.startswith(("gpp", "npp", "clean"))
        }
        encoding["land_cover"] = {"chunks": chunks[1:], "fill_value": np.uint8(0)}
        encoding["elevation"] = {"chunks": chunks[1:], "fill_value": np.float32(np.nan)}
        encoding["time"] = {
            "units": "days since 1970-01-01",
            "calendar": "proleptic_gregorian",
            "dtype": "int64",
        }
        ds.to_zarr(path, mode="w", compute=False, zarr_format=3, consolidated=False, encoding=encoding)
        return TruthStore(path, times)

    def write_quarter(self, year: int, quarter: int, gpp: F32, npp: F32, clean: F32) -> None:
        """Write one quarter (sums in gC m-2 quarter-1; clean reflectance (7, H, W))."""
        i = int(np.flatnonzero(self.times == pd.Timestamp(quarter_edges(year)[quarter - 1]))[0])
        red, nir = clean[BANDS.index("red")], clean[BANDS.index("nir08")]
        with np.errstate(invalid="ignore", divide="ignore"):
            ndvi = (nir - red) / (nir + red)
        layers = {"gpp": gpp, "npp": npp, "clean_ndvi": ndvi}
        layers |= {f"clean_{b}": clean[k] for k, b in enumerate(BANDS)}
        ds = xr.Dataset({k: (("time", "y", "x"), v[None].astype(np.float32)) for k, v in layers.items()})
        ds.to_zarr(self.path, region={"time": slice(i, i + 1)}, consolidated=False)
