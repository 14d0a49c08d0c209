"""Landsat scenes in two UTM zones give one seamless cube; hrefs are patched (signed) only at read time."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin

from gppscale.config import RunSpec, parse_spec
from gppscale.io.cube import SR_BANDS, landsat_predictors
from gppscale.plan import plan_run

pytestmark = pytest.mark.integration

# The area straddles 114 E, the boundary between UTM zones 49 and 50.
BBOX = (113.97, 42.00, 114.03, 42.03)
SCALE, OFFSET = 2.75e-5, -0.2
CLEAR_QA = 21824  # bits 6 (clear) and 8-9, 12-13 (low confidences) set: clear


def reflectance(lon: np.ndarray, lat: np.ndarray, band: int) -> np.ndarray:
    """A smooth field of lon/lat, different per band, 0.05-0.45."""
    return 0.25 + 0.1 * np.sin(lon * 90.0 + band) + 0.1 * np.cos(lat * 70.0 - band)


def write_scene(folder: Path, epsg: int, lon0: float, lon1: float) -> dict[str, Any]:
    """One scene on a 30 m grid of ``epsg`` covering lon0..lon1 of the area, as a STAC item dict."""
    to_utm = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    xs, ys = to_utm.transform(
        [lon0, lon1, lon0, lon1], [BBOX[1] - 0.01, BBOX[1] - 0.01, BBOX[3] + 0.01, BBOX[3] + 0.01]
    )
    x0, x1 = math.floor(min(xs) / 30) * 30, math.ceil(max(xs) / 30) * 30
    y0, y1 = math.floor(min(ys) / 30) * 30, math.ceil(max(ys) / 30) * 30
    w, h = int((x1 - x0) / 30), int((y1 - y0) / 30)
    transform = from_origin(x0, y1, 30, 30)
    cx = x0 + 15 + 30 * np.arange(w)
    cy = y1 - 15 - 30 * np.arange(h)
    gx, gy = np.meshgrid(cx, cy)
    lon, lat = Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True).transform(gx, gy)
    inside = (lon >= lon0) & (lon < lon1)
    assets: dict[str, Any] = {}
    profile = {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "count": 1,
        "crs": f"EPSG:{epsg}",
        "transform": transform,
    }
    for k, band in enumerate([*SR_BANDS, "qa_pixel"]):
        if band == "qa_pixel":
            data = np.where(inside, CLEAR_QA, 1).astype("uint16")
            meta: dict[str, Any] = {"raster:bands": [{"data_type": "uint16", "nodata": 1}]}
        else:
            dn = np.round((reflectance(lon, lat, k) - OFFSET) / SCALE)
            data = np.where(inside, dn, 0).astype("uint16")
            meta = {"raster:bands": [{"data_type": "uint16", "nodata": 0, "scale": SCALE, "offset": OFFSET}]}
        path = folder / f"z{epsg}_{band}.tif"
        with rasterio.open(
            path, "w", dtype="uint16", nodata=meta["raster:bands"][0]["nodata"], **profile
        ) as dst:
            dst.write(data, 1)
        assets[band] = {"href": path.as_uri(), "type": "image/tiff", **meta}
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [],
        "id": f"scene-{epsg}",
        "collection": "landsat-c2-l2",
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [[lon0, BBOX[1]], [lon1, BBOX[1]], [lon1, BBOX[3]], [lon0, BBOX[3]], [lon0, BBOX[1]]]
            ],
        },
        "bbox": [lon0, BBOX[1], lon1, BBOX[3]],
        "properties": {
            "datetime": "2021-07-10T03:00:00Z",
            "proj:code": f"EPSG:{epsg}",
            "proj:shape": [h, w],
            "proj:transform": list(transform)[:6],
            "eo:cloud_cover": 0.0,
        },
        "links": [],
        "assets": assets,
    }


def spec_for(tmp_path: Path) -> RunSpec:
    return parse_spec(
        {
            "name": "two-zones",
            "area": {"bbox": list(BBOX)},
            "years": [2021],
            "quarters": [3],
            "catalog": {"url": "https://example.com/stac"},
            "grid": {"chunk_px": 64},
            "output": {"store": str(tmp_path / "run")},
        }
    )


def test_scenes_in_two_utm_zones_make_one_seamless_composite(tmp_path: Path) -> None:
    # Like adjacent real scenes, the two overlap (here by about 800 m) and were taken on the same day: the
    # overlap is fused into one observation (odc-stac groupby solar_day), never counted twice.
    west = write_scene(tmp_path, 32649, BBOX[0] - 0.01, 114.005)
    east = write_scene(tmp_path, 32650, 113.995, BBOX[2] + 0.01)
    spec = spec_for(tmp_path)
    plan = plan_run(spec)
    assert plan.epsg == 32650  # the area centre is just east of 114 E
    cube = landsat_predictors(spec, plan, [west, east], None).compute()
    assert (cube.n_clear.values == 1).all(), "a gap or a double count along the zone boundary"
    gx, gy = np.meshgrid(cube.x.values, cube.y.values)
    lon, lat = Transformer.from_crs("EPSG:32650", "EPSG:4326", always_xy=True).transform(gx, gy)
    for k, band in enumerate(SR_BANDS):
        err = np.abs(cube[band].values[0] - reflectance(lon, lat, k))
        # nearest resampling of a smooth field: error within half a pixel's change plus the DN rounding
        assert np.nanmax(err) < 0.01, band


def test_hrefs_are_patched_at_read_time(tmp_path: Path) -> None:
    scene = write_scene(tmp_path, 32650, BBOX[0] - 0.01, BBOX[2] + 0.01)
    stored = {
        **scene,
        "assets": {
            k: {**a, "href": a["href"].replace("file://", "https://signed.invalid")}
            for k, a in scene["assets"].items()
        },
    }
    spec = spec_for(tmp_path)
    seen: list[str] = []

    def sign(href: str) -> str:
        seen.append(href)
        return href.replace("https://signed.invalid", "file://")

    cube = landsat_predictors(spec, plan_run(spec), [stored], sign)
    assert stored["assets"]["red"]["href"].startswith("https://signed.invalid")  # frozen items untouched
    assert (cube.n_clear.compute().values == 1).all()
    assert any(h.endswith("z32650_red.tif") for h in seen)
