"""Coarse products load on their own grid: the window of the native lattice, values untouched."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import rasterio
from shapely.geometry import box

from gppscale.config import RunSpec, parse_spec
from gppscale.errors import NoDataError
from gppscale.io.catalog import serve_catalog
from gppscale.io.coarse import check_covers, item_geobox, load_native
from gppscale.io.freeze import FrozenSearch, search_run
from gppscale.io.store import RunStore
from gppscale.plan import plan_run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def searched(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunSpec, FrozenSearch]:
    """A run spec over the whole small world and its frozen search."""
    meta = json.loads((small_world / "world.json").read_text())
    spec = parse_spec(
        {
            "name": "coarse",
            "area": {"bbox": meta["bbox_lonlat"]},
            "years": meta["years"],
            "catalog": {"world": str(small_world)},
            "output": {"store": str(tmp_path_factory.mktemp("run"))},
        }
    )
    with serve_catalog(small_world) as url:
        return spec, search_run(spec, url, RunStore(spec.output.store))


def test_native_window_keeps_the_sinusoidal_lattice_and_values(
    searched: tuple[RunSpec, FrozenSearch],
) -> None:
    spec, frozen = searched
    items = frozen.role("coarse_gpp")
    plan = plan_run(spec)
    raster, starts, ends = load_native(items, "data", plan.geobox.extent)
    native = item_geobox(items[0], "data")
    gbox = raster.odc.geobox
    # same lattice: the window's origin is a whole number of cells from the item's origin
    offset_cols = (gbox.transform.c - native.transform.c) / native.transform.a
    offset_rows = (gbox.transform.f - native.transform.f) / native.transform.e
    assert offset_cols == pytest.approx(round(offset_cols), abs=1e-6)
    assert offset_rows == pytest.approx(round(offset_rows), abs=1e-6)
    assert gbox.crs == native.crs and gbox.resolution == native.resolution
    # the window covers the 30 m grid
    assert gbox.extent.contains(plan.geobox.extent.to_crs(gbox.crs))
    # values are the file's values (uint16 -> float32, nodata -> NaN), no resampling
    c0, r0 = round(offset_cols), round(offset_rows)
    t = int(np.argmax(starts == np.datetime64("2021-07-12")))
    item = next(i for i in items if i["properties"]["start_datetime"].startswith("2021-07-12"))
    with rasterio.open(urlparse(item["assets"]["data"]["href"]).path) as src:
        raw = src.read(1).astype("float32")
    raw[raw == 65535] = np.nan
    h, w = gbox.shape
    np.testing.assert_array_equal(raster[t].values, raw[r0 : r0 + h, c0 : c0 + w])
    # 8-day windows; the last one of the year (day 361) is 5 days long
    assert (ends - starts).max() == np.timedelta64(8, "D")
    assert (ends - starts).min() == np.timedelta64(5, "D")


def test_a_product_that_misses_part_of_the_area_is_an_error() -> None:
    items = [{"id": "t", "geometry": box(117.0, 42.0, 117.2, 42.2).__geo_interface__}]
    check_covers(items, box(117.05, 42.05, 117.15, 42.15), "glass-gpp")
    with pytest.raises(NoDataError, match=r"glass-gpp does not cover.*117\.2"):
        check_covers(items, box(117.1, 42.1, 117.3, 42.15), "glass-gpp")


def test_quarterly_sums_on_the_small_world(searched: tuple[RunSpec, FrozenSearch]) -> None:
    from gppscale.io.coarse import coarse_quarterly

    spec, frozen = searched
    gpp = coarse_quarterly(spec, plan_run(spec), frozen.role("coarse_gpp"), "coarse_gpp").compute()
    assert gpp.attrs["units"] == "gC m-2 quarter-1" and gpp.sizes["time"] == 4
    means = np.nanmean(gpp.values, axis=(1, 2))
    # temperate forest and grassland: summer dominates, winter is near zero, a plausible annual total
    assert means.argmax() == 2 and means[0] < 0.1 * means[2]
    assert 300.0 < means.sum() < 2000.0
    npp = coarse_quarterly(spec, plan_run(spec), frozen.role("coarse_npp"), "coarse_npp").compute()
    ratio = np.nansum(npp.values[2]) / np.nansum(gpp.values[2])
    assert 0.35 < ratio < 0.65  # NPP = r * GPP with r about 0.45-0.55
