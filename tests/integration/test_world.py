"""The synthetic `small` world follows the data contract of DESIGN.md and is reproducible."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import rasterio
import xarray as xr
from pystac import STACObjectType
from pystac.validation.stac_validator import JsonSchemaSTACValidator
from pystac_client import Client

from gppscale.io.catalog import serve_catalog
from gppscale.world import COLLECTIONS, make_world, read_manifest
from gppscale.world.climate import glass_windows, quarter_day_overlap
from gppscale.world.coarse import CoarseOperator
from gppscale.world.grids import SINUSOIDAL_WKT, Grid

pytestmark = [pytest.mark.slow, pytest.mark.integration]

LANDSAT_BANDS = ("coastal", "blue", "green", "red", "nir08", "swir16", "swir22")
CONTRACT = {
    "landsat-c2-l2": {**dict.fromkeys(LANDSAT_BANDS, ("uint16", 0.0)), "qa_pixel": ("uint16", 1.0)},
    "cop-dem-glo-30": {"data": ("float32", None)},
    "glc-fcs30d": {"classification": ("uint8", 0.0)},
    "meteo-8day": dict.fromkeys(("tmean", "prcp", "srad", "vpd"), ("float32", None)),
    "glass-gpp": {"data": ("uint16", 65535.0)},
    "glass-npp": {"data": ("uint16", 65535.0)},
    "reference-gpp": {"data": ("float32", "nan")},
    "reference-npp": {"data": ("float32", "nan")},
}


def _items(world: Path, cid: str) -> list[dict]:
    return [json.loads(line) for line in (world / "stac" / cid / "items.ndjson").read_text().splitlines()]


def _path(href: str) -> Path:
    assert href.startswith("file://"), href
    return Path(urlparse(href).path)


def test_every_item_and_collection_validates_as_stac(small_world: Path):
    # Core schemas ship with pystac; extension schemas would need the network, so extension fields are
    # checked against the contract in the tests below instead.
    v = JsonSchemaSTACValidator()
    for cid in COLLECTIONS.values():
        v.validate_core(
            json.loads((small_world / "stac" / cid / "collection.json").read_text()),
            STACObjectType.COLLECTION,
            "1.1.0",
        )
        items = _items(small_world, cid)
        assert items, cid
        for it in items:
            v.validate_core(it, STACObjectType.ITEM, "1.1.0")


@pytest.mark.parametrize("cid", sorted(CONTRACT))
def test_assets_match_the_contract(small_world: Path, cid: str):
    items = _items(small_world, cid)
    for it in items[:: max(1, len(items) // 6)]:
        props = it["properties"]
        assert set(it["assets"]) == set(CONTRACT[cid]), it["id"]
        for key, (dtype, nodata) in CONTRACT[cid].items():
            asset = it["assets"][key]
            band = asset["raster:bands"][0]
            assert band["data_type"] == dtype
            with rasterio.open(_path(asset["href"])) as src:
                assert src.dtypes[0] == dtype
                assert src.profile.get("tiled") and src.block_shapes[0][0] in (256, src.height)
                if nodata == "nan":
                    assert np.isnan(src.nodata) and band["nodata"] == "nan"
                elif nodata is not None:
                    assert src.nodata == nodata == band["nodata"]
                assert list(src.shape) == props["proj:shape"]
                assert list(src.transform)[:6] == pytest.approx(props["proj:transform"])
                if props.get("proj:code"):
                    assert src.crs.to_epsg() == int(props["proj:code"].split(":")[1])
                else:
                    assert src.crs == rasterio.crs.CRS.from_wkt(props["proj:wkt2"])
        if cid == "landsat-c2-l2":
            for b in LANDSAT_BANDS:
                rb = it["assets"][b]["raster:bands"][0]
                assert (rb["scale"], rb["offset"]) == (2.75e-5, -0.2)
            assert props["platform"] == "landsat-8" and 0 <= props["eo:cloud_cover"] <= 100
            assert props["proj:code"] == "EPSG:32650"
        if cid.startswith("glass-"):
            assert it["assets"]["data"]["raster:bands"][0]["scale"] == 0.01
            assert props["proj:code"] is None and "Sinusoidal" in props["proj:wkt2"]
            assert props["start_datetime"] < props["end_datetime"]


def test_coarse_grid_is_the_global_modis_grid(small_world: Path):
    meta = read_manifest(small_world)
    assert meta["coarse_grid"]["modis_tile"] == "h26v04"
    it = _items(small_world, "glass-gpp")[0]
    with rasterio.open(_path(it["assets"]["data"]["href"])) as src:
        t = src.transform
        assert t.a == pytest.approx(463.312716525) and -t.e == pytest.approx(463.312716525)
        assert ((t.c + 20015109.354) / t.a) % 1 == pytest.approx(0.0, abs=1e-6)
        assert ((10007554.677 - t.f) / t.a) % 1 == pytest.approx(0.0, abs=1e-6)
        assert src.crs == rasterio.crs.CRS.from_wkt(SINUSOIDAL_WKT)


def test_glass_windows_and_scenes_cover_the_year(small_world: Path):
    gpp = _items(small_world, "glass-gpp")
    assert len(gpp) == 46
    assert gpp[0]["properties"]["start_datetime"] == "2021-01-01T00:00:00Z"
    assert gpp[-1]["properties"]["end_datetime"] == "2021-12-31T23:59:59Z"
    landsat = _items(small_world, "landsat-c2-l2")
    dates = sorted(it["properties"]["datetime"][:10] for it in landsat)
    gaps = np.diff(np.array(dates, dtype="datetime64[D]")).astype(int)
    assert set(gaps.tolist()) <= {7, 9}  # two WRS paths 7 days apart, each every 16 days
    assert {it["properties"]["landsat:wrs_path"] for it in landsat} == {"123", "124"}
    covers = [it["properties"]["eo:cloud_cover"] for it in landsat]
    assert 10 < np.mean(covers) < 60 and min(covers) < 5 and max(covers) > 70


def test_qa_pixel_in_files_is_self_consistent(small_world: Path):
    winter_snow = 0
    for it in _items(small_world, "landsat-c2-l2")[::4]:
        with rasterio.open(_path(it["assets"]["qa_pixel"]["href"])) as src:
            qa = src.read(1)
        with rasterio.open(_path(it["assets"]["blue"]["href"])) as src:
            blue = src.read(1)
        fill = (qa & 1) == 1
        assert ((blue == 0) == fill).all()
        cloud, dilated, clear = (qa >> 3) & 1, (qa >> 1) & 1, (qa >> 6) & 1
        assert (clear[~fill] == 1 - (cloud | dilated)[~fill]).all()
        assert not (cloud & dilated).any()
        month = int(it["properties"]["datetime"][5:7])
        if month in (6, 7, 8):
            assert not ((qa >> 5) & 1).any()
        elif month in (12, 1, 2):
            winter_snow += int(((qa >> 5) & 1).sum())
        cover = 100 * cloud[~fill].mean()
        assert cover == pytest.approx(it["properties"]["eo:cloud_cover"], abs=0.01)
    assert winter_snow > 0


def test_truth_magnitudes_are_plausible(small_world: Path):
    ds = xr.open_zarr(small_world / "truth" / "truth.zarr", consolidated=False)
    lc = ds["land_cover"].values
    gpp = ds["gpp"].values
    forest = (lc >= 51) & (lc <= 92)
    annual = gpp.sum(axis=0)[forest]
    assert 700 < annual.mean() < 1500
    quarters = [float(np.nanmean(gpp[q][forest])) for q in range(4)]
    assert int(np.argmax(quarters)) == 2  # summer (Jul-Sep) is the largest quarter
    npp = ds["npp"].values.sum(axis=0)[forest]
    assert 0.4 < npp.mean() / annual.mean() < 0.6
    assert ds["gpp"].attrs["units"] == "gC m-2 quarter-1"
    assert "spatial_ref" in ds.coords and ds["gpp"].attrs["grid_mapping"] == "spatial_ref"


def test_coarse_product_is_the_truth_aggregated(small_world: Path):
    """Day-prorated quarterly sums of the coarse product match the area-aggregated truth."""
    meta = read_manifest(small_world)
    ds = xr.open_zarr(small_world / "truth" / "truth.zarr", consolidated=False)
    fine = Grid(**meta["world_grid"])
    coarse = Grid(**{k: v for k, v in meta["coarse_grid"].items() if k != "modis_tile"})
    op = CoarseOperator.build(fine, coarse)
    starts, n_days = glass_windows(2021)
    days = quarter_day_overlap(starts, n_days, 2021)
    stack = []
    for it in _items(small_world, "glass-gpp"):
        with rasterio.open(_path(it["assets"]["data"]["href"])) as src:
            raw = src.read(1)
        stack.append(np.where(raw == 65535, np.nan, raw * 0.01))
    coarse_q = np.einsum("qw,wyx->qyx", days, np.array(stack))
    truth_q = np.array([op.apply(ds["gpp"].values[q]) for q in range(4)])
    ok = np.isfinite(coarse_q[2]) & np.isfinite(truth_q[2])
    assert ok.sum() > 100
    ratio = coarse_q[2][ok].sum() / truth_q[2][ok].sum()
    assert 0.9 < ratio < 1.03  # the product carries a ~3 % low bias
    assert np.corrcoef(coarse_q[2][ok], truth_q[2][ok])[0, 1] > 0.8


def test_towers_and_plots_are_written(small_world: Path):
    sites = json.loads((small_world / "towers" / "sites.geojson").read_text())
    assert len(sites["features"]) == 2
    for f in sites["features"]:
        csv = small_world / "towers" / f["properties"]["csv"]
        header = csv.read_text().splitlines()[0].split(",")
        assert {"TIMESTAMP_START", "NEE_VUT_REF", "GPP_NT_VUT_REF", "USTAR"} <= set(header)
    truth = json.loads((small_world / "truth" / "towers.json").read_text())
    for site in truth.values():
        q = site["gpp_gc_m2_quarter"]
        assert max(q, key=q.get) == "3" and 500 < sum(q.values()) < 2000
    plots = json.loads((small_world / "plots" / "plots.geojson").read_text())
    assert len(plots["features"]) == 32
    assert all(200 < f["properties"]["npp_gc_m2_yr"] < 1200 for f in plots["features"])


def test_pystac_client_searches_the_served_world(small_world: Path):
    landsat = _items(small_world, "landsat-c2-l2")
    q1 = [it for it in landsat if it["properties"]["datetime"] < "2021-04-01"]
    with serve_catalog(small_world) as url:
        client = Client.open(url)
        assert {c.id for c in client.get_collections()} == set(COLLECTIONS.values())
        bbox = read_manifest(small_world)["bbox_lonlat"]
        found = client.search(
            collections=["landsat-c2-l2"], bbox=bbox, datetime="2021-01-01/2021-03-31", limit=5
        )
        assert len(list(found.items())) == len(q1)
        whole = client.search(collections=["glass-gpp"], bbox=bbox, datetime="2021", limit=10)
        assert len(list(whole.items())) == 46
        far = client.search(collections=["landsat-c2-l2"], bbox=[10.0, 10.0, 10.1, 10.1])
        assert len(list(far.items())) == 0
        dem = client.search(collections=["cop-dem-glo-30"], bbox=bbox)
        assert len(list(dem.items())) == 1


def _digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes().replace(str(root).encode(), b"<WORLD>")
            out[str(p.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return out


def test_same_seed_gives_identical_bytes(small_world: Path, tmp_path: Path):
    again = make_world("small", tmp_path / "world", seed=0)
    assert _digest(again) == _digest(small_world)
