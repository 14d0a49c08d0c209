"""Coarse items from local files: dates from names, windows, spec fields, grids, footprints, containers."""

from __future__ import annotations

import doctest
import os
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine
from scipy.io import netcdf_file
from shapely.geometry import Point, shape

import gppscale.io.files as files_mod
from gppscale.config import CoarseGppCollection, CoarseNppCollection, load_spec, parse_spec
from gppscale.errors import CatalogError, DataWarning, MissingDependencyError, NoDataError, SpecError
from gppscale.io.coarse import item_geobox
from gppscale.io.cube import window_of
from gppscale.io.files import date_from_name, file_items, file_window, gdal_drivers
from gppscale.io.freeze import item_problems, search_fingerprint

GLASS = r"A(?P<year>\d{4})(?P<doy>\d{3})"
SINU = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"
R_SPHERE = 6371007.181
CELL = 463.312716525  # MODIS 500 m cell: 2 * pi * R / 36 / 2400
# GLASS/MODIS tile h26v04, cut to 6 x 4 cells at the small world's corner.
SINU_TRANSFORM = Affine(CELL, 0.0, 9657753.575843625, 0.0, -CELL, 4685944.814993849)
HAS_HDF4 = "HDF4" in gdal_drivers()


def write_tif(path: Path, crs: str, transform: Affine, data: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": 65535,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path


def sinu_tif(path: Path) -> Path:
    return write_tif(path, SINU, SINU_TRANSFORM, np.arange(24, dtype="uint16").reshape(4, 6))


def gpp(files: str, **settings: Any) -> CoarseGppCollection:
    return CoarseGppCollection(files=files, **settings)


def minimal(**collections: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "area": {"bbox": [117.0, 41.95, 117.37, 42.23]},
        "years": [2021],
        "catalog": {"world": "/data/world"},
        "output": {"store": "/data/run"},
        "collections": collections,
    }


# --- dates and windows -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "pattern", "expected"),
    [
        ("GLASS_GPP_A2021161_h26v04.tif", GLASS, date(2021, 6, 10)),  # 31+28+31+30+31 = 151, +10
        ("GLASS_GPP_A2021001_h26v04.tif", GLASS, date(2021, 1, 1)),
        ("GLASS01B01.V60.A2020366.h26v04.hdf", GLASS, date(2020, 12, 31)),  # leap year: day 366 exists
        ("gpp_2021-06-10.tif", r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})", date(2021, 6, 10)),
        ("gpp_20210228.tif", r"(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})", date(2021, 2, 28)),
        ("readme.txt", GLASS, None),
    ],
)
def test_dates_come_from_the_file_name(name: str, pattern: str, expected: date | None) -> None:
    assert date_from_name(name, pattern) == expected


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("GLASS_GPP_A2021366.tif", GLASS),  # 2021 has 365 days
        ("GLASS_GPP_A2021000.tif", GLASS),
        ("gpp_20210229.tif", r"(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})"),
    ],
)
def test_impossible_dates_are_errors(name: str, pattern: str) -> None:
    with pytest.raises(ValueError):
        date_from_name(name, pattern)


@pytest.mark.parametrize(
    ("name", "first", "last", "days"),
    [
        ("A2021353", date(2021, 12, 19), date(2021, 12, 26), 8),
        ("A2021361", date(2021, 12, 27), date(2021, 12, 31), 5),  # GLASS's last window of 2021
        ("A2020361", date(2020, 12, 26), date(2020, 12, 31), 6),  # ... and of the leap year 2020
        ("A2021001", date(2021, 1, 1), date(2021, 1, 8), 8),
    ],
)
def test_windows_are_clipped_at_the_year_end(name: str, first: date, last: date, days: int) -> None:
    start = date_from_name(name, GLASS)
    assert start is not None
    window = file_window(start, 8)
    assert window == (first, last)
    assert (window[1] - window[0]).days + 1 == days


def test_item_windows_read_back_as_the_clipped_days(tmp_path: Path) -> None:
    sinu_tif(tmp_path / "GLASS_GPP_A2020361_h26v04.tif")
    (item,) = file_items(gpp(str(tmp_path / "*.tif")), [2021], role="coarse_gpp")
    props = item["properties"]
    assert props["start_datetime"] == "2020-12-26T00:00:00Z"
    assert props["end_datetime"] == "2020-12-31T23:59:59Z"
    assert props["datetime"] is None
    start, end = window_of(item)  # what the cube and coarse stages read
    assert (start, end) == (np.datetime64("2020-12-26"), np.datetime64("2021-01-01"))
    assert (end - start) == np.timedelta64(6, "D")


def test_window_days_is_a_setting(tmp_path: Path) -> None:
    sinu_tif(tmp_path / "gpp_A2021001.tif")
    (item,) = file_items(gpp(str(tmp_path), window_days=1), [2021], role="coarse_gpp")
    assert item["properties"]["end_datetime"] == "2021-01-01T23:59:59Z"


# --- the spec fields -----------------------------------------------------------------------------------


def test_defaults_read_glass_names() -> None:
    for settings in (CoarseGppCollection(), CoarseNppCollection()):
        assert settings.files is None and settings.subdataset is None
        assert settings.file_date == GLASS and settings.window_days == 8
    assert CoarseGppCollection().id == "glass-gpp" and CoarseNppCollection().id == "glass-npp"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"file_date": r"A(?P<year>\d{4}"}, "is not a regular expression"),
        ({"file_date": r"A(?P<year>\d{4})(\d{3})"}, "needs the named groups year and doy"),
        ({"file_date": r"(?P<y>\d{4})(?P<doy>\d{3})"}, "its groups: doy, y"),
        (
            {"file_date": r"(?P<year>\d{4})(?P<doy>\d{3})(?P<month>\d{2})(?P<day>\d{2})"},
            "exactly one of the two sets",
        ),
        ({"window_days": 0}, "greater than or equal to 1"),
        ({"subdataset": "GPP"}, "applies to local files only"),
        ({"files": "s3://bucket/glass/*.tif"}, "takes local paths only"),
    ],
)
def test_bad_file_settings_are_refused_at_parse_time(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(minimal(coarse_npp=settings))
    text = str(info.value)
    assert "collections.coarse_npp" in text and message in text


def test_relative_files_are_taken_from_the_spec_folder(tmp_path: Path) -> None:
    spec_file = tmp_path / "runs" / "spec.yaml"
    spec_file.parent.mkdir()
    data = minimal(coarse_gpp={"files": "../glass/GLASS_GPP_*.tif"}, coarse_npp={"files": "/abs/*.hdf"})
    spec_file.write_text(yaml.safe_dump(data))
    spec = load_spec(spec_file)
    assert spec.collections.coarse_gpp.files == str(tmp_path / "glass" / "GLASS_GPP_*.tif")
    assert spec.collections.coarse_npp.files == "/abs/*.hdf"


# --- finding and dating files -------------------------------------------------------------------------


def test_names_without_a_date_are_warned_about_and_skipped(tmp_path: Path) -> None:
    for name in ("GLASS_GPP_A2021161.tif", "GLASS_GPP_A2021169.tif", "notes.tif", "GLASS_GPP_A2021366.tif"):
        sinu_tif(tmp_path / name)
    with pytest.warns(DataWarning, match=r"skipped 2 of 4 file\(s\)") as record:
        items = file_items(gpp(str(tmp_path / "*.tif")), [2021], role="coarse_gpp")
    (warning,) = record
    assert "notes.tif: no match" in str(warning.message)
    assert "GLASS_GPP_A2021366.tif: day of year 366 does not exist in 2021" in str(warning.message)
    assert [i["id"] for i in items] == ["GLASS_GPP_A2021161", "GLASS_GPP_A2021169"]


def test_no_matching_file_is_a_no_data_error(tmp_path: Path) -> None:
    pattern = str(tmp_path / "GLASS_GPP_*.tif")
    with pytest.raises(NoDataError, match=r"coarse_gpp\.files .*GLASS_GPP_\*\.tif.* matches no file"):
        file_items(gpp(pattern), [2021], role="coarse_gpp")


def test_only_windows_near_the_years_are_kept(tmp_path: Path) -> None:
    # 2021 widened by 16 days: 2020-12-16 .. 2022-01-16.
    names = ["A2020001", "A2020345", "A2020353", "A2021001", "A2022009", "A2022017"]
    for name in names:
        sinu_tif(tmp_path / f"GLASS_GPP_{name}.tif")
    items = file_items(gpp(str(tmp_path)), [2021], role="coarse_gpp")
    # A2020345 ends 2020-12-17 (inside); A2022017 starts 2022-01-17 (outside).
    assert [i["id"][-8:] for i in items] == ["A2020345", "A2020353", "A2021001", "A2022009"]
    message = r"none of 6 file\(s\) has a window in the years \[2018\] \(windows 2020-01-01 to 2022-01-24\)"
    with pytest.raises(NoDataError, match=message):
        file_items(gpp(str(tmp_path)), [2018], role="coarse_gpp")


def test_two_files_with_one_id_are_refused(tmp_path: Path) -> None:
    sinu_tif(tmp_path / "a" / "GLASS_GPP_A2021001.tif")
    sinu_tif(tmp_path / "b" / "GLASS_GPP_A2021001.tif")
    with pytest.raises(CatalogError, match="share the item id 'GLASS_GPP_A2021001'"):
        file_items(gpp(str(tmp_path / "**" / "*.tif")), [2021], role="coarse_gpp")


# --- items from GeoTIFF -------------------------------------------------------------------------------


def test_sinusoidal_geotiff_item(tmp_path: Path) -> None:
    path = sinu_tif(tmp_path / "GLASS_GPP_A2021161_h26v04.tif")
    (item,) = file_items(gpp(str(tmp_path / "*.tif")), [2021], role="coarse_gpp")
    props, asset = item["properties"], item["assets"]["data"]
    assert item["id"] == "GLASS_GPP_A2021161_h26v04" and item["type"] == "Feature"
    assert "proj:code" not in props and "Sinusoidal" in props["proj:wkt2"]
    assert props["proj:shape"] == [4, 6]
    assert props["proj:transform"] == [CELL, 0.0, 9657753.575843625, 0.0, -CELL, 4685944.814993849]
    assert asset["href"] == path.resolve().as_uri()
    assert asset["type"] == "image/tiff; application=geotiff"
    assert asset["raster:bands"] == [{"data_type": "uint16", "nodata": 65535.0}]
    assert asset["file:size"] == path.stat().st_size
    assert item_problems(item, {"data": "data"}) == []
    # the centre cell by hand: lat = y / R, lon = x / (R cos lat) on the sphere
    x, y = SINU_TRANSFORM * (3.0, 2.0)
    lat = np.degrees(y / R_SPHERE)
    lon = np.degrees(x / (R_SPHERE * np.cos(np.radians(lat))))
    assert (lon, lat) == pytest.approx((117.1364, 42.1333), abs=1e-4)
    footprint = shape(item["geometry"])
    assert footprint.contains(Point(lon, lat))
    assert item["bbox"] == pytest.approx(list(footprint.bounds))
    # a sheared parallelogram in lon/lat: the west edge leans, so the bbox is wider than the footprint
    assert footprint.area < 0.8 * (item["bbox"][2] - item["bbox"][0]) * (item["bbox"][3] - item["bbox"][1])
    assert item_geobox(item, "data").shape == (4, 6)


def test_utm_geotiff_item_has_an_epsg_code(tmp_path: Path) -> None:
    transform = Affine(500.0, 0.0, 500000.0, 0.0, -500.0, 4650000.0)
    write_tif(tmp_path / "gpp_A2021161.tif", "EPSG:32650", transform, np.ones((4, 6), "uint16"))
    (item,) = file_items(gpp(str(tmp_path)), [2021], role="coarse_gpp")
    props = item["properties"]
    assert props["proj:code"] == "EPSG:32650" and "proj:wkt2" not in props
    assert props["proj:transform"] == [500.0, 0.0, 500000.0, 0.0, -500.0, 4650000.0]
    # centre (501500, 4649000): 1500 m east of the zone's central meridian 117 E, near 42 N
    assert shape(item["geometry"]).contains(Point(117.0181, 41.9930))
    assert not shape(item["geometry"]).contains(Point(117.04, 41.9930))  # 3.3 km east: outside


def test_a_tile_at_the_edge_of_the_sinusoidal_world_stays_east_of_the_antimeridian(tmp_path: Path) -> None:
    # MODIS tile h29v04 (x 12231458..13343406 m, 40-50 N), at 10 km cells: its north-east corner lies
    # beyond 180 E, where PROJ's inverse would wrap it round to about 173 W.
    tile = 1111950.519667
    transform = Affine(10_000.0, 0.0, (29 - 18) * tile, 0.0, -10_000.0, (9 - 4) * tile)
    write_tif(tmp_path / "tile_A2021161.tif", SINU, transform, np.ones((111, 111), "uint16"))
    (item,) = file_items(gpp(str(tmp_path)), [2021], role="coarse_gpp")
    west, south, east, north = item["bbox"]
    # west edge at 40 N: x / (R cos 40) = 143.6 E; no wrapped longitude near 173 W
    assert west == pytest.approx(143.63, abs=0.01) and east <= 180.0
    assert east == pytest.approx(180.0, abs=1e-5)  # clipped at the edge of the projection
    assert (south, north) == pytest.approx((40.0, 50.0), abs=0.1)
    # a point inside the tile and the domain: x = R cos(45) * 160 deg
    assert shape(item["geometry"]).contains(Point(160.0, 45.0))


# --- containers -----------------------------------------------------------------------------------------


def write_netcdf(path: Path, variables: dict[str, np.ndarray]) -> Path:
    """A CF NetCDF (classic format, written by scipy) on the sinusoidal grid of SINU_TRANSFORM."""
    import pyproj

    height, width = next(iter(variables.values())).shape
    with netcdf_file(path, "w") as nc:
        nc.createDimension("y", height)
        nc.createDimension("x", width)
        x = nc.createVariable("x", "d", ("x",))
        x[:] = SINU_TRANSFORM.c + CELL * (np.arange(width) + 0.5)
        x.standard_name = "projection_x_coordinate"
        y = nc.createVariable("y", "d", ("y",))
        y[:] = SINU_TRANSFORM.f - CELL * (np.arange(height) + 0.5)
        y.standard_name = "projection_y_coordinate"
        crs = nc.createVariable("crs", "i", ())
        crs.spatial_ref = pyproj.CRS(SINU).to_wkt("WKT1_GDAL")
        for name, values in variables.items():
            var = nc.createVariable(name, "h", ("y", "x"))
            var[:] = values
            var.grid_mapping = "crs"
            var._FillValue = np.int16(-1)
    return path


@pytest.fixture
def gpp_qc_nc(tmp_path: Path) -> tuple[Path, np.ndarray]:
    gpp_values = np.arange(24, dtype="int16").reshape(4, 6)
    path = write_netcdf(tmp_path / "GLASS_A2021161.nc", {"GPP": gpp_values, "QC": 100 + gpp_values})
    return path, gpp_values


def test_a_container_subdataset_is_read_through_vrt(gpp_qc_nc: tuple[Path, np.ndarray]) -> None:
    path, gpp_values = gpp_qc_nc
    (item,) = file_items(gpp(str(path), subdataset="GPP"), [2021], role="coarse_gpp")
    asset = item["assets"]["data"]
    assert asset["href"] == f'vrt://NETCDF:"{path.resolve()}":GPP'
    assert asset["type"] == "application/netcdf"
    assert item_problems(item, {"data": "data"}) == []
    with rasterio.open(asset["href"]) as src:
        np.testing.assert_array_equal(src.read(1), gpp_values)
    assert item["properties"]["proj:shape"] == [4, 6]
    assert item["properties"]["proj:transform"] == pytest.approx(list(SINU_TRANSFORM)[:6], abs=1e-6)


def test_odc_stac_loads_the_subdataset_href(gpp_qc_nc: tuple[Path, np.ndarray]) -> None:
    from odc.geo.geom import box

    from gppscale.io.coarse import load_native

    path, gpp_values = gpp_qc_nc
    items = file_items(gpp(str(path), subdataset="GPP"), [2021], role="coarse_gpp")
    native = item_geobox(items[0], "data")
    raster, starts, ends = load_native(items, "data", box(*native.boundingbox, native.crs).buffer(-1.0))
    np.testing.assert_array_equal(raster.values[0], gpp_values.astype("float32"))
    assert (starts[0], ends[0]) == (np.datetime64("2021-06-10"), np.datetime64("2021-06-18"))


@pytest.mark.parametrize(
    ("subdataset", "message"),
    [
        (None, r"container of 2 subdatasets; set collections\.coarse_gpp\.subdataset"),
        ("NPP", r"no subdataset named 'NPP'"),
    ],
)
def test_a_subdataset_that_cannot_be_chosen_is_an_error_listing_them(
    gpp_qc_nc: tuple[Path, np.ndarray], subdataset: str | None, message: str
) -> None:
    path, _ = gpp_qc_nc
    with pytest.raises(CatalogError, match=message) as info:
        file_items(gpp(str(path), subdataset=subdataset), [2021], role="coarse_gpp")
    assert f'NETCDF:"{path.resolve()}":GPP' in str(info.value)
    assert f'NETCDF:"{path.resolve()}":QC' in str(info.value)


def test_a_subdataset_for_a_plain_geotiff_is_an_error(tmp_path: Path) -> None:
    sinu_tif(tmp_path / "GLASS_GPP_A2021161.tif")
    with pytest.raises(CatalogError, match=r"has no subdatasets.*remove 'subdataset'"):
        file_items(gpp(str(tmp_path), subdataset="GPP"), [2021], role="coarse_gpp")


def test_a_file_gdal_cannot_read_is_a_catalog_error(tmp_path: Path) -> None:
    (tmp_path / "GLASS_GPP_A2021161.tif").write_bytes(b"not a raster")
    with pytest.raises(CatalogError, match=r"cannot open file .*GLASS_GPP_A2021161\.tif"):
        file_items(gpp(str(tmp_path)), [2021], role="coarse_gpp")


# --- HDF4 -----------------------------------------------------------------------------------------------


@pytest.mark.skipif(HAS_HDF4, reason="this GDAL has the HDF4 driver; the missing-driver error cannot happen")
@pytest.mark.parametrize("name", ["GLASS01B01.V60.A2021161.h26v04.hdf", "GLASS_A2021161.dat"])
def test_hdf4_without_the_driver_is_a_missing_dependency(tmp_path: Path, name: str) -> None:
    # A .hdf suffix, or HDF4's magic number in a file of any name.
    (tmp_path / name).write_bytes(b"\x0e\x03\x13\x01" + bytes(60))
    with pytest.raises(MissingDependencyError, match=r"HDF4 file.*no HDF4 driver.*gdal_translate"):
        file_items(gpp(str(tmp_path)), [2021], role="coarse_gpp")


def test_hdf4_is_read_when_gdal_has_the_driver(tmp_path: Path) -> None:
    if not HAS_HDF4:
        pytest.skip(f"GDAL {rasterio.__gdal_version__} of this rasterio has no HDF4 driver")
    # Not run where this was written (no HDF4 driver there): GDAL's HDF4Image writes one georeferenced
    # scientific dataset, which GDAL opens directly.
    values = np.arange(24, dtype="uint16").reshape(4, 6)
    path = tmp_path / "GLASS_A2021161.hdf"
    profile = {"driver": "HDF4Image", "width": 6, "height": 4, "count": 1, "dtype": "uint16"}
    with rasterio.open(path, "w", crs=SINU, transform=SINU_TRANSFORM, **profile) as dst:
        dst.write(values, 1)
    (item,) = file_items(gpp(str(path)), [2021], role="coarse_gpp")
    with rasterio.open(item["assets"]["data"]["href"]) as src:
        np.testing.assert_array_equal(src.read(1), values)
    assert item["properties"]["proj:shape"] == [4, 6]


# --- the search stage's view --------------------------------------------------------------------------


def test_search_fingerprint_follows_the_files(tmp_path: Path) -> None:
    first = sinu_tif(tmp_path / "glass" / "GLASS_GPP_A2021161.tif")
    spec = parse_spec(minimal(coarse_gpp={"files": str(tmp_path / "glass")}))
    before = search_fingerprint(spec, "http://x")
    assert search_fingerprint(spec, "http://x") == before
    sinu_tif(tmp_path / "glass" / "GLASS_GPP_A2021169.tif")
    added = search_fingerprint(spec, "http://x")
    assert added != before
    stat = first.stat()
    os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert search_fingerprint(spec, "http://x") not in (before, added)
    other = parse_spec(minimal(coarse_gpp={"files": str(tmp_path / "glass"), "window_days": 16}))
    assert search_fingerprint(other, "http://x") != search_fingerprint(spec, "http://x")


def test_doctests() -> None:
    result = doctest.testmod(files_mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
