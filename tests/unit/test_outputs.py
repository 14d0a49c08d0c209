"""STAC description of the 30 m outputs and the run manifest (gppscale.io.outputs)."""

from __future__ import annotations

import datetime as dt
import doctest
import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import shapely
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords
from pyproj import CRS, Transformer
from pystac.validation import validate_dict

import gppscale.io.outputs as outputs_mod
from gppscale.errors import SpecError
from gppscale.io.outputs import (
    EXTENSIONS,
    MANIFEST_FORMAT,
    ZARR_MEDIA_TYPE,
    output_collection,
    output_items,
    package_versions,
    run_manifest,
    write_manifest,
    write_output_stac,
)
from gppscale.io.store import RunStore

SINUSOIDAL = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"
GRIDS = {
    # CRS and top-left corner of 4 x 5 pixels of 30 m; both near 117 E, 40 N
    "utm": ("epsg:32650", (500010.0, 4400120.0)),
    "sinusoidal": (SINUSOIDAL, (9960000.0, 4448120.0)),
}
CREATED = dt.datetime(2024, 5, 1, 8, 30, tzinfo=dt.UTC)
UNITS = "gC m-2 quarter-1"


def make_output(grid: str = "utm", starts: tuple[str, ...] = ("2021-01-01", "2021-04-01")):
    """A small Dataset laid out as the predict stage writes ``gpp.zarr``, and its GeoBox."""
    crs, (left, top) = GRIDS[grid]
    gb = GeoBox((4, 5), Affine(30.0, 0.0, left, 0.0, -30.0, top), crs)
    time = np.array(starts, dtype="datetime64[ns]")
    nxt = np.array([np.datetime64(s, "M") + 3 for s in starts], dtype="datetime64[ns]")
    rng = np.random.default_rng(0)
    shape = (len(starts), *gb.shape)

    def production(long: str) -> tuple[tuple[str, ...], np.ndarray, dict[str, str]]:
        attrs = {"units": UNITS, "long_name": long, "grid_mapping": "spatial_ref"}
        return ("time", "y", "x"), rng.uniform(0, 500, shape).astype("float32"), attrs

    def codes(long: str, values: list[int], meanings: str) -> tuple[tuple[str, ...], np.ndarray, dict]:
        attrs = {
            "long_name": long,
            "flag_values": values,
            "flag_meanings": meanings,
            "grid_mapping": "spatial_ref",
        }
        return ("y", "x"), rng.choice(values, gb.shape).astype("uint8"), attrs

    models = ([0, 1, 2, 3, 4], "none dnn cnn bpnn rnn")
    ds = xr.Dataset(
        {
            "gpp": production("gross primary production, 30 m"),
            "npp": production("net primary production, 30 m"),
            "gpp_uncorrected": production("gross primary production, 30 m, as predicted"),
            "npp_uncorrected": production("net primary production, 30 m, as predicted"),
            "forest_type": codes(
                "forest type", [0, 1, 2, 3, 4, 5, 255], "non_forest ENF DBF MF DNF EBF no_data"
            ),
            "model_gpp": codes("model used for gpp", *models),
            "model_npp": codes("model used for npp", *models),
        },
        coords={"time": time, **xr_coords(gb)},
    )
    ds = ds.assign_coords(time_bnds=(("time", "nv"), np.stack([time, nxt], axis=1)))
    ds["time"].attrs.update(bounds="time_bnds", long_name="first day of the quarter")
    return ds, gb


def collection_of(ds: xr.Dataset, gb: GeoBox, **kw) -> dict:
    args = {
        "run_name": "demo",
        "zarr_href": "s3://bucket/demo/gpp.zarr",
        "created": CREATED,
        "software": {"gppscale": "0.1.0", "torch": "2.13.0"},
        "inputs": {"search/landsat.parquet": "ab" * 32},
    }
    return output_collection(ds, gb, **{**args, **kw})


def items_of(ds: xr.Dataset, gb: GeoBox) -> list[dict]:
    return output_items(ds, gb, run_name="demo", zarr_href="s3://bucket/demo/gpp.zarr", created=CREATED)


# ------------------------------------------------------------------------------------------ Collection


@pytest.mark.parametrize("grid", list(GRIDS))
def test_collection_and_items_round_trip_and_pass_the_core_schema(grid: str) -> None:
    ds, gb = make_output(grid)
    d = collection_of(ds, gb)
    collection = pystac.Collection.from_dict(d)
    assert collection.id == "gppscale-demo"
    assert collection.license == "other"
    assert set(collection.stac_extensions) == set(EXTENSIONS.values())
    assert collection.assets["zarr"].media_type == ZARR_MEDIA_TYPE == "application/vnd.zarr; version=3"
    assert collection.assets["zarr"].roles == ["data"]
    # core STAC 1.1 schemas ship with pystac, so this runs offline; extension schemas would be fetched
    validate_dict(d, extensions=[])
    for item_dict in items_of(ds, gb):
        item = pystac.Item.from_dict(item_dict)
        assert item.collection_id == "gppscale-demo"
        validate_dict(item_dict, extensions=[])
    json.dumps(d, allow_nan=False)  # what RunStore.write_json needs


def test_collection_fields() -> None:
    ds, gb = make_output()
    d = collection_of(ds, gb)
    assert d["gppscale:inputs"] == {"search/landsat.parquet": "ab" * 32}
    (provider,) = d["providers"]
    assert set(provider["roles"]) == {"producer", "processor"}
    assert provider["processing:level"] == "L4"
    assert provider["processing:software"] == {"gppscale": "0.1.0", "torch": "2.13.0"}
    assert provider["processing:datetime"] == "2024-05-01T08:30:00Z"
    assert "mass-preserving" in provider["processing:lineage"]
    asset = d["assets"]["zarr"]
    assert asset["href"] == "s3://bucket/demo/gpp.zarr"
    assert asset["xarray:open_kwargs"] == {"engine": "zarr", "consolidated": False, "decode_coords": "all"}
    assert (asset["zarr:zarr_format"], asset["zarr:node_type"], asset["zarr:consolidated"]) == (
        3,
        "group",
        False,
    )
    links = {link["rel"]: link["href"] for link in d["links"]}
    assert links == {"root": "./collection.json", "store": "s3://bucket/demo/gpp.zarr"}
    assert d["summaries"] == {"gppscale:quarter": ["2021Q1", "2021Q2"]}


def test_lineage_without_correction_does_not_claim_mass_preservation() -> None:
    ds, gb = make_output()
    d = collection_of(ds.drop_vars(["gpp_uncorrected", "npp_uncorrected"]), gb)
    assert "mass-preserving" not in d["providers"][0]["processing:lineage"]


@pytest.mark.parametrize("grid", list(GRIDS))
def test_cube_dimensions_hold_pixel_centres_and_quarter_starts(grid: str) -> None:
    ds, gb = make_output(grid)
    dims = collection_of(ds, gb)["cube:dimensions"]
    for axis in ("x", "y"):
        dim = dims[axis]
        assert (dim["type"], dim["axis"], dim["step"]) == ("spatial", axis, 30.0)
        # extents are the first and last pixel centre: the coordinate values in the store
        assert dim["extent"] == [float(ds[axis].min()), float(ds[axis].max())]
        values = np.arange(dim["extent"][0], dim["extent"][1] + 1, dim["step"])
        np.testing.assert_allclose(np.sort(ds[axis].values), values)
    left, bottom, right, top = gb.extent.boundingbox
    assert dims["x"]["extent"] == [left + 15, right - 15]
    assert dims["y"]["extent"] == [bottom + 15, top - 15]
    assert dims["time"] == {
        "type": "temporal",
        "description": dims["time"]["description"],
        "extent": ["2021-01-01T00:00:00Z", "2021-04-01T00:00:00Z"],
        "values": ["2021-01-01T00:00:00Z", "2021-04-01T00:00:00Z"],
        "step": "P3M",
    }
    assert dims["nv"]["extent"] == [0, 1]
    ref = dims["x"]["reference_system"]
    if grid == "utm":
        assert ref == 32650
    else:
        assert CRS.from_wkt(ref).equals(CRS.from_proj4(SINUSOIDAL))


def test_cube_variables() -> None:
    ds, gb = make_output()
    d = collection_of(ds, gb)
    variables = d["cube:variables"]
    assert set(variables) == {*ds.data_vars, "time_bnds"}  # spatial_ref is not a variable
    for name in ("gpp", "npp", "gpp_uncorrected", "npp_uncorrected"):
        assert variables[name]["type"] == "data"
        assert variables[name]["unit"] == UNITS
        assert variables[name]["dimensions"] == ["time", "y", "x"]
    forest = variables["forest_type"]
    assert (forest["type"], forest["dimensions"]) == ("auxiliary", ["y", "x"])
    assert forest["values"] == [0, 1, 2, 3, 4, 5, 255]
    assert "1 ENF" in forest["description"]
    assert variables["model_gpp"]["values"] == [0, 1, 2, 3, 4]
    assert "2 cnn" in variables["model_gpp"]["description"]
    assert variables["time_bnds"] == {
        "dimensions": ["time", "nv"],
        "type": "auxiliary",
        "description": "bounds of time: [start, end)",
    }
    for var in variables.values():
        assert set(var["dimensions"]) <= set(d["cube:dimensions"])


def test_non_consecutive_quarters_have_no_step_and_the_interval_ends_with_the_last() -> None:
    ds, gb = make_output(starts=("2021-04-01", "2021-07-01", "2022-04-01"))
    d = collection_of(ds, gb)
    assert d["cube:dimensions"]["time"]["step"] is None
    assert d["extent"]["temporal"]["interval"] == [["2021-04-01T00:00:00Z", "2022-06-30T23:59:59Z"]]


@pytest.mark.parametrize("grid", list(GRIDS))
def test_bbox_and_footprint_contain_the_grid(grid: str) -> None:
    ds, gb = make_output(grid)
    d = collection_of(ds, gb)
    (bbox,) = d["extent"]["spatial"]["bbox"]
    west, south, east, north = bbox
    to_lonlat = Transformer.from_crs(CRS.from_user_input(gb.crs.to_wkt()), "EPSG:4326", always_xy=True)
    left, bottom, right, top = gb.extent.boundingbox
    lon, lat = to_lonlat.transform((left + right) / 2, (bottom + top) / 2)
    assert west < lon < east and south < lat < north
    assert 116 < lon < 118 and 39 < lat < 41
    eps = 1e-7  # coordinates are rounded to 7 decimals
    for x, y in [(left, bottom), (left, top), (right, bottom), (right, top)]:
        cx, cy = to_lonlat.transform(x, y)
        assert west - eps <= cx <= east + eps and south - eps <= cy <= north + eps
    for item in items_of(ds, gb):
        assert item["bbox"] == bbox
        footprint = shapely.geometry.shape(item["geometry"])
        assert footprint.is_valid and footprint.exterior.is_ccw
        assert footprint.contains(shapely.Point(lon, lat))
        assert len(footprint.exterior.coords) > 5  # densified, not just the four corners


@pytest.mark.parametrize("grid", list(GRIDS))
def test_projection_fields_switch_between_code_and_wkt2(grid: str) -> None:
    ds, gb = make_output(grid)
    asset = collection_of(ds, gb)["assets"]["zarr"]
    props = items_of(ds, gb)[0]["properties"]
    for fields in (asset, props):
        assert fields["proj:shape"] == [4, 5]
        assert fields["proj:transform"] == list(gb.transform)[:6]
        assert fields["proj:bbox"] == list(gb.extent.boundingbox)
        if grid == "utm":
            assert fields["proj:code"] == "EPSG:32650"
            assert "proj:wkt2" not in fields
        else:
            assert "proj:code" not in fields
            assert fields["proj:wkt2"].startswith("PROJCRS")
            assert CRS.from_wkt(fields["proj:wkt2"]).equals(CRS.from_proj4(SINUSOIDAL))


# ----------------------------------------------------------------------------------------------- Items


def test_one_item_per_quarter() -> None:
    ds, gb = make_output(starts=("2021-01-01", "2021-07-01", "2021-10-01"))
    items = items_of(ds, gb)
    assert [i["id"] for i in items] == [
        "gppscale-demo-2021Q1",
        "gppscale-demo-2021Q3",
        "gppscale-demo-2021Q4",
    ]
    spans = [(i["properties"]["start_datetime"], i["properties"]["end_datetime"]) for i in items]
    assert spans == [
        ("2021-01-01T00:00:00Z", "2021-03-31T23:59:59Z"),
        ("2021-07-01T00:00:00Z", "2021-09-30T23:59:59Z"),
        ("2021-10-01T00:00:00Z", "2021-12-31T23:59:59Z"),
    ]
    for index, item in enumerate(items):
        props = item["properties"]
        assert props["datetime"] is None
        assert props["created"] == props["processing:datetime"] == "2024-05-01T08:30:00Z"
        assert props["gppscale:quarter"] == item["id"].rsplit("-", 1)[1]
        asset = item["assets"]["zarr"]
        assert asset["gppscale:time_index"] == index
        assert asset["href"] == "s3://bucket/demo/gpp.zarr"
        assert {(link["rel"], link["href"]) for link in item["links"]} == {
            ("root", "../collection.json"),
            ("parent", "../collection.json"),
            ("collection", "../collection.json"),
        }
        parsed = pystac.Item.from_dict(item)
        assert parsed.common_metadata.start_datetime == dt.datetime.fromisoformat(props["start_datetime"])


def test_item_asset_opens_its_quarter(tmp_path: Path) -> None:
    """The asset's open arguments and time index give back that quarter from a real Zarr 3 store."""
    ds, gb = make_output()
    href = str(tmp_path / "gpp.zarr")
    ds.to_zarr(href, zarr_format=3, consolidated=False)
    for item in output_items(ds, gb, run_name="demo", zarr_href=href, created=CREATED):
        asset = item["assets"]["zarr"]
        with xr.open_dataset(asset["href"], **asset["xarray:open_kwargs"]) as opened:
            quarter = opened.isel(time=asset["gppscale:time_index"])
            start = np.datetime64(item["properties"]["start_datetime"].rstrip("Z"), "ns")
            assert quarter["time"].values == start
            np.testing.assert_array_equal(quarter["gpp"].values, ds["gpp"].sel(time=start).values)
            assert "spatial_ref" in opened.coords and "time_bnds" in opened.coords


# ---------------------------------------------------------------------------------------------- errors


def test_refuses_times_that_are_not_quarter_starts() -> None:
    ds, gb = make_output(starts=("2021-02-01",))
    with pytest.raises(ValueError, match=r"2021-02-01T00:00:00Z .* not the first day of a quarter"):
        collection_of(ds, gb)


def test_refuses_unsorted_quarters() -> None:
    ds, gb = make_output(starts=("2021-04-01", "2021-01-01"))
    with pytest.raises(ValueError, match="not increasing"):
        items_of(ds, gb)


def test_refuses_a_geobox_that_is_not_the_store_grid() -> None:
    ds, _ = make_output()
    other = GeoBox((4, 5), Affine(30.0, 0.0, 500040.0, 0.0, -30.0, 4400120.0), "epsg:32650")
    with pytest.raises(ValueError, match="not the pixel centres of the run grid"):
        collection_of(ds, other)


def test_refuses_naive_created() -> None:
    ds, gb = make_output()
    with pytest.raises(ValueError, match="no time zone"):
        collection_of(ds, gb, created=dt.datetime(2024, 5, 1))


# ----------------------------------------------------------------------------------------------- write


def test_write_and_read_back_with_pystac(tmp_path: Path) -> None:
    store = RunStore(str(tmp_path / "run"))
    ds, gb = make_output(starts=("2021-01-01", "2021-04-01", "2021-07-01"))
    write_output_stac(store, ds, gb, run_name="demo", created=CREATED, software={}, inputs={})
    assert len(store.listdir("stac/items")) == 3

    ds2 = ds.isel(time=[0, 1])  # a rerun with fewer quarters leaves no stale items behind
    url = write_output_stac(store, ds2, gb, run_name="demo", created=CREATED, software={}, inputs={})
    assert url == store.join("stac/collection.json") == str(tmp_path / "run" / "stac" / "collection.json")
    assert store.listdir("stac/items") == ["gppscale-demo-2021Q1.json", "gppscale-demo-2021Q2.json"]

    collection = pystac.read_file(url)
    assert isinstance(collection, pystac.Collection)
    assert collection.get_self_href() == url
    items = list(collection.get_items())
    assert [i.id for i in items] == ["gppscale-demo-2021Q1", "gppscale-demo-2021Q2"]
    for item in items:
        assert item.assets["zarr"].href == store.join("gpp.zarr")
        assert item.get_self_href() == store.join("stac", "items", f"{item.id}.json")
        parent = item.get_parent()
        assert parent is not None and parent.id == "gppscale-demo"
    assert collection.assets["zarr"].href == str(tmp_path / "run" / "gpp.zarr")


@pytest.mark.integration
def test_write_to_s3(s3_bucket: str) -> None:
    store = RunStore(f"{s3_bucket}/runs/demo")
    ds, gb = make_output()
    url = write_output_stac(store, ds, gb, run_name="demo", created=CREATED, software={}, inputs={})
    assert url == f"{s3_bucket}/runs/demo/stac/collection.json"
    d = store.read_json("stac/collection.json")
    collection = pystac.Collection.from_dict(d)
    assert collection.assets["zarr"].href == f"{s3_bucket}/runs/demo/gpp.zarr"
    item_hrefs = [link.href for link in collection.links if link.rel == "item"]
    assert item_hrefs == ["./items/gppscale-demo-2021Q1.json", "./items/gppscale-demo-2021Q2.json"]
    for href in item_hrefs:
        item = pystac.Item.from_dict(store.read_json(f"stac/{href}"))
        assert item.get_self_href() == store.join("stac", href)


# -------------------------------------------------------------------------------------------- manifest


def manifest_of(spec: dict) -> dict:
    return run_manifest(
        spec,
        versions={"gppscale": "0.1.0"},
        inputs={"search/landsat.parquet": "ab12"},
        timings_s={"cube": 12.5, "predict": 3},
        outputs={"gpp.zarr": "cd34"},
        created=dt.datetime(2024, 5, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    )


def test_manifest_contents_and_write(tmp_path: Path) -> None:
    spec = {"name": "demo", "catalog": {"url": "https://example.com/stac"}, "years": [2021]}
    manifest = manifest_of(spec)
    assert manifest == {
        "format": MANIFEST_FORMAT,
        "created": "2024-05-01T08:00:00Z",
        "spec": spec,
        "versions": {"gppscale": "0.1.0"},
        "inputs": {"search/landsat.parquet": "ab12"},
        "outputs": {"gpp.zarr": "cd34"},
        "timings_s": {"cube": 12.5, "predict": 3.0},
    }
    spec["name"] = "changed"
    assert manifest["spec"]["name"] == "demo"  # a copy
    store = RunStore(str(tmp_path / "run"))
    write_manifest(store, manifest)
    assert store.read_json("manifest.json") == manifest
    with pytest.raises(ValueError, match="gppscale-manifest/1"):
        write_manifest(store, {"spec": {}})


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"catalog": {"secret": "hunter2"}}, "catalog.secret"),
        ({"output": {"AWS_SECRET_ACCESS_KEY": "hunter2"}}, "output.AWS_SECRET_ACCESS_KEY"),
        ({"Password": "hunter2"}, "Password"),
        ({"catalog": {"sas_token": "hunter2"}}, "catalog.sas_token"),
        ({"aws_access_key_id": "hunter2"}, "aws_access_key_id"),
        ({"cluster": {"credentials": {"a": "hunter2"}}}, "cluster.credentials"),
        ({"collections": [{"id": "x"}, {"accessKey": "hunter2"}]}, "collections[1].accessKey"),
    ],
)
def test_manifest_refuses_credentials(spec: dict, path: str) -> None:
    with pytest.raises(SpecError, match="looks like a credential") as info:
        manifest_of(spec)
    assert repr(path) in str(info.value)
    assert "hunter2" not in str(info.value)


def test_manifest_refuses_urls_with_passwords() -> None:
    with pytest.raises(SpecError, match=r"'catalog\.url' is a URL with a password") as info:
        manifest_of({"catalog": {"url": "https://me:hunter2@example.com/stac"}})
    assert "hunter2" not in str(info.value)
    manifest_of({"catalog": {"url": "https://me@example.com/stac"}})  # a user name alone is no secret


def test_manifest_refuses_non_json_specs_and_bad_timings() -> None:
    with pytest.raises(SpecError, match=r"not plain JSON data .* spec.to_dict\(\)"):
        manifest_of({"area": {"bbox": np.array([1.0, 2.0])}})
    with pytest.raises(ValueError, match="stage 'cube'"):
        run_manifest(
            {}, versions={}, inputs={}, timings_s={"cube": float("nan")}, outputs={}, created=CREATED
        )


def test_package_versions() -> None:
    versions = package_versions()
    assert set(versions) == {
        "gppscale", "python", "numpy", "xarray", "dask", "distributed", "zarr", "odc-stac", "odc-geo",
        "pystac", "rasterio", "gdal", "torch", "pyproj",
    }  # fmt: skip
    assert all(isinstance(v, str) and v for v in versions.values())
    assert versions["gdal"] == rasterio.__gdal_version__
    assert versions["numpy"] == np.__version__
    assert versions["gppscale"] != "not installed"


def test_doctests() -> None:
    assert doctest.testmod(outputs_mod, optionflags=doctest.ELLIPSIS).failed == 0
