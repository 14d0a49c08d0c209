"""Writers of the synthetic world's files: Cloud-Optimized GeoTIFFs and deterministic JSON.

Same inputs give the same bytes: GeoTIFFs carry no timestamps, JSON keys are sorted, floats rounded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.crs import CRS

from gppscale.world.grids import Grid

__all__ = ["write_cog", "write_json", "write_ndjson"]


def write_cog(
    path: Path,
    data: npt.NDArray[Any],
    grid: Grid,
    nodata: float | None,
    *,
    descriptions: tuple[str, ...] | None = None,
    blocksize: int = 256,
) -> None:
    """Write a (bands, H, W) or (H, W) array as a deflate-compressed COG on ``grid``."""
    arr = data[None] if data.ndim == 2 else data
    if arr.shape[1:] != grid.shape:
        raise ValueError(f"array shape {arr.shape[1:]} does not match grid {grid.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    integer = np.issubdtype(arr.dtype, np.integer)
    profile = {
        "driver": "COG",
        "width": grid.width,
        "height": grid.height,
        "count": arr.shape[0],
        "dtype": arr.dtype.name,
        "crs": CRS.from_user_input(grid.crs),
        "transform": grid.transform,
        "nodata": nodata,
        "compress": "deflate",
        "predictor": 2 if integer else 3,
        "blocksize": blocksize,
        "overview_resampling": "nearest" if integer else "average",
    }
    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"), rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        if descriptions:
            for i, d in enumerate(descriptions, start=1):
                dst.set_band_description(i, d)


def _canonical(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def write_json(path: Path, obj: object) -> None:
    """Write pretty, key-sorted JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, sort_keys=True, indent=2, allow_nan=False) + "\n")


def write_ndjson(path: Path, objs: list[dict[str, Any]]) -> None:
    """Write one key-sorted JSON object per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(_canonical(o) + "\n" for o in objs))
