"""Tests of gppscale.config: the run spec, its loader, its errors and its JSON Schema."""

from __future__ import annotations

import doctest
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from dask.base import tokenize
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info

import gppscale.config
from gppscale.config import (
    FOREST_TYPES,
    SCHEMA_COMMAND,
    FrozenDict,
    RunSpec,
    _errors,
    _geo,
    _load,
    _schema,
    _spec,
    _types,
    load_spec,
    parse_override,
    parse_spec,
    spec_json_schema,
    spec_json_schema_text,
    utm_epsg_for,
)
from gppscale.config.__main__ import main
from gppscale.errors import GppscaleError, SpecError

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "pipeline"
SQUARE = {
    "type": "Polygon",
    "coordinates": [[[117.0, 42.0], [117.1, 42.0], [117.1, 42.1], [117.0, 42.1], [117.0, 42.0]]],
}


def minimal(**changes: Any) -> dict[str, Any]:
    """The smallest valid spec, as the YAML structure, with top-level keys replaced."""
    data: dict[str, Any] = {
        "name": "t",
        "area": {"bbox": [117.0, 41.95, 117.37, 42.23]},
        "years": [2021],
        "catalog": {"world": "/data/world"},
        "output": {"store": "/data/run"},
    }
    data.update(changes)
    return data


def write_spec(folder: Path, data: dict[str, Any] | str, name: str = "spec.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def spec_error(data: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return str(info.value)


# --- defaults, example specs, immutability --------------------------------------------------------------


def test_defaults_follow_the_data_contract_and_the_paper():
    spec = parse_spec(minimal())
    assert spec.quarters == (1, 2, 3, 4)
    assert (
        spec.catalog.max_cloud_cover_pct == 80
        and spec.catalog.sign == "none"
        and not spec.catalog.requester_pays
    )
    landsat = spec.collections.landsat
    assert landsat.id == "landsat-c2-l2"
    assert landsat.assets.as_dict() == {
        b: b for b in ("coastal", "blue", "green", "red", "nir08", "swir16", "swir22", "qa_pixel")
    }
    ids = {role: getattr(spec.collections, role).id for role in type(spec.collections).model_fields}
    assert ids == {
        "landsat": "landsat-c2-l2",
        "dem": "cop-dem-glo-30",
        "forest_type": "glc-fcs30d",
        "meteorology": "meteo-8day",
        "coarse_gpp": "glass-gpp",
        "coarse_npp": "glass-npp",
        "reference_gpp": "reference-gpp",
        "reference_npp": "reference-npp",
    }
    assert spec.collections.meteorology.assets.as_dict() == {v: v for v in ("tmean", "prcp", "srad", "vpd")}
    assert spec.collections.forest_type.assets["classification"] == "classification"
    assert spec.collections.dem.assets["data"] == "data"
    assert (spec.grid.crs, spec.grid.resolution_m, spec.grid.chunk_px) == ("auto", 30, 512)
    assert (spec.coarse.scale, spec.coarse.offset, spec.coarse.nodata) == (0.01, 0.0, 65535)
    assert (spec.coarse.units, spec.coarse.max_valid, spec.coarse.to_gc_m2_d) == ("gC m-2 d-1", 30.0, 1.0)
    assert dict(spec.forest_types.codes) == {
        "ENF": (71, 72),
        "DBF": (61, 62),
        "MF": (91, 92),
        "DNF": (81, 82),
        "EBF": (51, 52),
    }
    assert spec.forest_types.fill == (0, 250) and spec.forest_types.modelled == ("ENF", "DBF", "MF", "DNF")
    assert spec.purity.for_type("ENF").model_dump() == {
        "fraction": 0.3,
        "min_type_fraction": 0.9,
        "min_cells": 30,
        "fallback": "relax",
    }
    assert (spec.split.test_fraction, spec.split.block_cells, spec.split.seed) == (0.3, 4, 42)
    assert spec.models.kinds == ("dnn", "cnn", "bpnn", "rnn") and spec.models.baselines == ("trees", "coarse")
    assert spec.models.select == "auto"
    assert spec.models.hyper_for("MF").model_dump() == {
        "epochs": 200,
        "batch_size": 256,
        "learning_rate": 1e-3,
        "hidden": (64, 64),
        "dropout": 0.1,
        "patience": 20,
        "seed": 0,
    }
    assert spec.output.overwrite is False and not spec.output.is_remote
    cluster = spec.cluster
    assert (cluster.mode, cluster.workers, cluster.threads_per_worker, cluster.memory_limit) == (
        "local",
        2,
        1,
        "auto",
    )
    assert cluster.address is None
    assert (cluster.kubernetes.namespace, cluster.kubernetes.cpu_workers, cluster.kubernetes.gpu_workers) == (
        "default",
        4,
        0,
    )
    assert spec.validation.reference is True and spec.validation.truth is None


def test_demo_spec_loads():
    spec = load_spec(PIPELINE / "demo.yaml")
    assert spec.name == "demo"
    assert spec.area.bounds_lonlat() == (117.00, 41.95, 117.37, 42.23)
    assert spec.years == (2020, 2021)
    assert spec.catalog.world == str(REPO / "out" / "demo" / "world")
    assert spec.output.store == str(REPO / "out" / "demo" / "run")
    assert spec.cluster.mode == "local" and spec.cluster.workers == 2
    assert spec.epsg() == 32650
    assert spec.purity.for_type("MF").min_type_fraction == 0.8  # the demo's override
    assert spec.purity.for_type("DNF").min_type_fraction == 0.9


def test_small_spec_loads():
    spec = load_spec(str(PIPELINE / "small.yaml"))
    assert spec.name == "small"
    assert spec.area.bounds_lonlat() == (117.15, 42.06, 117.24, 42.13)
    assert spec.years == (2021,)
    assert spec.catalog.world == str(REPO / "out" / "small" / "world")
    assert spec.output.store == str(REPO / "out" / "small" / "run")
    assert spec.epsg() == 32650


def test_spec_is_immutable_hashable_and_picklable():
    spec = load_spec(PIPELINE / "demo.yaml")
    with pytest.raises(ValidationError, match="frozen"):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        spec.grid.chunk_px = 1024  # type: ignore[misc]
    with pytest.raises(TypeError, match="immutable"):
        spec.forest_types.codes["ENF"] = (1,)  # type: ignore[index]
    assert isinstance(spec.forest_types.codes, FrozenDict)
    assert isinstance(spec.years, tuple) and isinstance(spec.models.hyper_for("ENF").hidden, tuple)
    assert hash(spec) == hash(load_spec(PIPELINE / "demo.yaml"))
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert tokenize(spec) == tokenize(load_spec(PIPELINE / "demo.yaml"))
    assert tokenize(spec.purity.for_type("MF")) != tokenize(spec.purity.for_type("DNF"))


def test_to_dict_round_trips():
    spec = load_spec(PIPELINE / "demo.yaml")
    data = spec.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["purity"]["*"]["fraction"] == 0.3
    assert parse_spec(data) == spec


def test_years_and_quarters_are_sorted_unique_and_scalars_allowed():
    spec = parse_spec(minimal(years=[2021, 2019, 2021], quarters=[3, 1]))
    assert spec.years == (2019, 2021) and spec.quarters == (1, 3)
    assert parse_spec(minimal(years=2020)).years == (2020,)
    assert "years[0]" in spec_error(minimal(years=[1970]))
    assert "quarters[0]" in spec_error(minimal(quarters=[5]))
    assert "years" in spec_error(minimal(years=[]))


# --- overrides and paths -----------------------------------------------------------------------------


def test_overrides_apply_before_validation(tmp_path):
    spec = load_spec(
        PIPELINE / "small.yaml",
        {
            "output.store": "s3://my-bucket/runs/small",
            "years": [2020, 2021],
            "purity.*.fraction": 0.5,
            "models.hyper.DNF.epochs": 3,
            "catalog.url": "https://earth-search.aws.element84.com/v1",
        },
    )
    assert spec.output.store == "s3://my-bucket/runs/small" and spec.output.is_remote
    assert spec.years == (2020, 2021)
    assert spec.purity.for_type("EBF").fraction == 0.5
    assert spec.models.hyper_for("DNF").epochs == 3
    assert spec.catalog.url is not None and spec.catalog.world is None  # url replaces the file's world


def test_relative_override_paths_are_taken_from_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = load_spec(PIPELINE / "demo.yaml", {"catalog.world": "w", "output.store": "runs/x"})
    assert spec.catalog.world == str(tmp_path / "w")
    assert spec.output.store == str(tmp_path / "runs" / "x")


def test_override_errors_name_the_override(tmp_path):
    with pytest.raises(SpecError, match=r"output.stor .*override 'output.stor'.*did you mean 'store'"):
        load_spec(PIPELINE / "small.yaml", {"output.stor": "/x"})
    with pytest.raises(SpecError, match="not a dotted key"):
        load_spec(PIPELINE / "small.yaml", {"output..store": "/x"})
    with pytest.raises(SpecError, match=r"name holds 'small', not a block"):
        load_spec(PIPELINE / "small.yaml", {"name.first": "x"})
    with pytest.raises(SpecError, match=r"grid.chunk_px \(override 'grid.chunk_px'\).*multiple of 64.*100"):
        load_spec(PIPELINE / "small.yaml", {"grid.chunk_px": 100})


def test_parse_override():
    assert parse_override("years=[2020, 2021]") == ("years", [2020, 2021])
    assert parse_override(" output.store = s3://b/run") == ("output.store", "s3://b/run")
    assert parse_override("validation.truth=") == ("validation.truth", None)
    with pytest.raises(SpecError, match="KEY=VALUE"):
        parse_override("years")


def test_relative_paths_are_taken_from_the_spec_folder(tmp_path):
    (tmp_path / "areas").mkdir()
    (tmp_path / "areas" / "basin.geojson").write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [{"type": "Feature", "properties": {}, "geometry": SQUARE}],
            }
        )
    )
    data = minimal(
        area={"geojson": "../areas/basin.geojson"},
        catalog={"world": "../worlds/./w"},
        output={"store": "../runs/x"},
        validation={
            "towers_sites": "towers/sites.geojson",
            "towers_dir": "towers",
            "plots": "/abs/plots.geojson",
        },
    )
    spec = load_spec(write_spec(tmp_path / "specs", data))
    assert spec.catalog.world == str(tmp_path / "worlds" / "w")
    assert spec.output.store == str(tmp_path / "runs" / "x")
    assert spec.area.geojson == str(tmp_path / "areas" / "basin.geojson")
    assert spec.validation.towers_sites == str(tmp_path / "specs" / "towers" / "sites.geojson")
    assert spec.validation.towers_dir == str(tmp_path / "specs" / "towers")
    assert spec.validation.plots == "/abs/plots.geojson"
    assert spec.area.bounds_lonlat() == pytest.approx((117.0, 42.0, 117.1, 42.1))
    assert parse_spec(minimal(catalog={"world": "w"}), base_dir=tmp_path).catalog.world == str(tmp_path / "w")


def test_s3_store_is_kept_and_other_schemes_refused():
    assert parse_spec(minimal(output={"store": "s3://my-bucket/a/b"})).output.store == "s3://my-bucket/a/b"
    for store in ("gs://bucket/x", "az://container/x", "https://host/x"):
        message = spec_error(minimal(output={"store": store}))
        assert f"output.store: {store!r}" in message and "s3://bucket/prefix" in message
    assert "not a valid S3 bucket" in spec_error(minimal(output={"store": "s3://Bad_Bucket/x"}))


# --- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "key", "suggestion"),
    [
        (minimal(nmae="x"), "nmae", "did you mean 'name'?"),
        (
            minimal(catalog={"world": "/w", "max_cloud_cover": 20}),
            "catalog.max_cloud_cover",
            "'max_cloud_cover_pct'",
        ),
        (
            minimal(collections={"landsat": {"assets": {"nir8": "SR_B5"}}}),
            "collections.landsat.assets.nir8",
            "did you mean 'nir08'?",
        ),
        (
            minimal(models={"hyper": {"*": {"learning_rat": 0.1}}}),
            "models.hyper.*.learning_rat",
            "'learning_rate'",
        ),
        (
            minimal(cluster={"kubernetes": {"gpu_worker": 1}}),
            "cluster.kubernetes.gpu_worker",
            "'gpu_workers'",
        ),
    ],
)
def test_unknown_keys_are_named_with_a_suggestion_and_the_allowed_keys(data, key, suggestion):
    message = spec_error(data)
    assert f"{key}: unknown key" in message
    assert suggestion in message
    assert "llowed keys here:" in message


def test_unknown_key_error_names_file_line_value_and_allowed_keys(tmp_path):
    text = "name: t\narea: {bbox: [117, 41.9, 117.3, 42.2]}\nyears: [2021]\ncatalog:\n  world: w\noutput:\n"
    text += "  store: r\ncollections:\n  landsat:\n    assets:\n      nir8: SR_B5\n"
    path = write_spec(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert str(path) in message
    assert "collections.landsat.assets.nir8 (line 11): unknown key 'nir8' (value 'SR_B5')" in message
    assert "coastal, blue, green, red, nir08, swir16, swir22, qa_pixel" in message
    assert isinstance(info.value.__cause__, ValidationError)


def test_remapped_assets_and_their_errors():
    spec = parse_spec(
        minimal(collections={"landsat": {"assets": {"nir08": "SR_B5", "qa_pixel": "QA_PIXEL"}}})
    )
    assert (
        spec.collections.landsat.assets["nir08"] == "SR_B5"
        and spec.collections.landsat.assets["red"] == "red"
    )
    assert spec.collections.landsat.id == "landsat-c2-l2"
    assert "repeats 'red'" in spec_error(minimal(collections={"landsat": {"assets": {"nir08": "red"}}}))
    assert parse_spec(minimal(collections={"reference_gpp": None})).collections.reference_gpp is None
    with pytest.raises(KeyError, match="canonical names"):
        spec.collections.landsat.assets["nir"]


def test_wrong_types_name_key_and_value():
    message = spec_error(
        minimal(years=["twenty"], grid={"resolution_m": "thirty"}, output={"store": "/r", "overwrite": 3})
    )
    assert "years[0]: Input should be a valid integer" in message and "'twenty'" in message
    assert "grid.resolution_m:" in message and "'thirty'" in message
    assert "output.overwrite:" in message
    assert "3 problems" in message
    assert "name: required key is missing" in spec_error({k: v for k, v in minimal().items() if k != "name"})
    assert "not a run name" in spec_error(minimal(name="my run"))
    assert "is not allowed; did you mean 'dnn'? Choose one of" in spec_error(
        minimal(models={"select": "dnnn"})
    )


@pytest.mark.parametrize(
    ("bbox", "expected"),
    [
        ([190, 41, 191, 42], "west 190.0 is outside [-180, 180]"),
        ([117, -95, 118, 42], "south -95.0 is outside [-90, 90]"),
        ([118, 41, 117, 42], "west 118.0 must be less than east 117.0"),
        ([117, 42, 118, 42], "south 42.0 must be less than north 42.0"),
        ([117, 41, 118], "area.bbox"),
        ([117, 41, 118, float("nan")], "area.bbox"),
    ],
)
def test_bbox_is_checked(bbox, expected):
    assert expected in spec_error(minimal(area={"bbox": bbox}))


def test_area_needs_exactly_one_of_bbox_or_geojson(tmp_path):
    assert "both given" in spec_error(minimal(area={"bbox": [117, 41, 118, 42], "geojson": SQUARE}))
    assert "neither given" in spec_error(minimal(area={}))
    inline = parse_spec(minimal(area={"geojson": SQUARE}))
    assert inline.area.bounds_lonlat() == pytest.approx((117.0, 42.0, 117.1, 42.1))
    assert inline.area.geometry_lonlat().area == pytest.approx(0.01)
    assert isinstance(inline.area.geojson, FrozenDict) and hash(inline)
    assert "cannot read the GeoJSON file" in spec_error(
        minimal(area={"geojson": str(tmp_path / "nope.geojson")})
    )
    point = {"type": "Point", "coordinates": [117, 42]}
    assert "Polygon or MultiPolygon; got Point" in spec_error(minimal(area={"geojson": point}))
    utm = {
        "type": "Polygon",
        "coordinates": [[[500000, 4650000], [510000, 4650000], [510000, 4660000], [500000, 4650000]]],
    }
    assert "lon/lat degrees (RFC 7946)" in spec_error(minimal(area={"geojson": utm}))


def test_catalog_needs_exactly_one_of_url_or_world():
    assert "both given" in spec_error(minimal(catalog={"url": "https://x.org/stac", "world": "/w"}))
    assert "neither given" in spec_error(minimal(catalog={}))
    assert "not an http(s) URL" in spec_error(minimal(catalog={"url": "ftp://x.org/stac"}))
    assert "is a URL; 'world' is a local folder" in spec_error(minimal(catalog={"world": "s3://b/w"}))
    assert "a local world needs sign: none" in spec_error(
        minimal(catalog={"world": "/w", "sign": "planetary-computer"})
    )
    spec = parse_spec(minimal(catalog={"url": "https://x.org/stac", "sign": "planetary-computer"}))
    assert spec.catalog.url == "https://x.org/stac" and not spec.catalog.is_world


@pytest.mark.parametrize(
    "data",
    [
        minimal(output={"store": "s3://b/x", "key": "AKIAEXAMPLE"}),
        minimal(catalog={"world": "/w", "token": "AKIAEXAMPLE"}),
        minimal(cluster={"kubernetes": {"aws_access_key_id": "AKIAEXAMPLE"}}),
        minimal(output={"store": "s3://b/x", "storage_options": {"AWS_Secret_Access_Key": "AKIAEXAMPLE"}}),
        minimal(password="AKIAEXAMPLE"),
    ],
)
def test_credentials_are_refused_without_echoing_them(data):
    message = spec_error(data)
    assert "must not hold credentials" in message and "from the environment" in message
    assert "AKIAEXAMPLE" not in message


def test_credentials_in_urls_and_overrides_are_refused(tmp_path):
    message = spec_error(minimal(output={"store": "s3://AKIAEXAMPLE:hunter2@bucket/x"}))
    assert "credentials" in message and "hunter2" not in message and "AKIAEXAMPLE" not in message
    assert "hunter2" not in spec_error(minimal(catalog={"url": "https://user:hunter2@x.org/stac"}))
    with pytest.raises(SpecError, match=r"output.secret \(override 'output.secret'\)") as info:
        load_spec(PIPELINE / "small.yaml", {"output.secret": "hunter2"})
    assert "hunter2" not in str(info.value)


def test_per_type_blocks_merge_overrides_onto_the_default():
    spec = parse_spec(
        minimal(
            purity={"*": {"fraction": 0.25, "min_cells": 10}, "DNF": {"fraction": 0.5, "min_cells": None}},
            models={
                "hyper": {"*": {"epochs": 100, "hidden": [32]}, "ENF": {"hidden": [128, 64], "dropout": 0.0}}
            },
        )
    )
    dnf = spec.purity.for_type("DNF")
    assert (dnf.fraction, dnf.min_cells, dnf.min_type_fraction, dnf.fallback) == (0.5, 10, 0.9, "relax")
    assert spec.purity.for_type("ENF").fraction == 0.25
    enf = spec.models.hyper_for("ENF")
    assert (enf.epochs, enf.hidden, enf.dropout) == (100, (128, 64), 0.0)
    assert spec.models.hyper_for("DBF").hidden == (32,)
    assert all(spec.purity.for_type(t).min_type_fraction == 0.9 for t in FOREST_TYPES)
    with pytest.raises(SpecError, match="unknown forest type 'XNF'"):
        spec.purity.for_type("XNF")
    assert "purity.DNF.fraction" in spec_error(minimal(purity={"DNF": {"fraction": 1.5}}))
    assert "purity.XNF: unknown key" in spec_error(minimal(purity={"XNF": {}}))


def test_forest_type_codes_are_checked():
    assert "code 71 is listed under both ENF and DBF" in spec_error(
        minimal(forest_types={"codes": {"ENF": [71], "DBF": [71]}, "modelled": ["ENF"]})
    )
    assert "listed under both fill and ENF" in spec_error(
        minimal(forest_types={"codes": {"ENF": [0]}, "modelled": ["ENF"]})
    )
    assert "modelled types ['DBF', 'MF', 'DNF'] have no codes" in spec_error(
        minimal(forest_types={"codes": {"ENF": [71]}})
    )
    assert "forest_types.codes.ENF[0]" in spec_error(minimal(forest_types={"codes": {"ENF": [300]}}))
    assert "forest_types.codes.XNF" in spec_error(minimal(forest_types={"codes": {"XNF": [1]}}))
    spec = parse_spec(minimal(forest_types={"codes": {"DNF": [81, 82, 83]}, "modelled": ["DNF"]}))
    assert spec.forest_types.code_to_type() == {81: "DNF", 82: "DNF", 83: "DNF"}


def test_coarse_units_set_the_default_ceiling():
    assert parse_spec(minimal(coarse={"units": "gC m-2 8d-1"})).coarse.max_valid == 240.0
    kg = parse_spec(minimal(coarse={"units": "kgC m-2 d-1"})).coarse
    assert kg.max_valid == pytest.approx(0.03) and kg.to_gc_m2_d == 1000.0
    assert parse_spec(minimal(coarse={"units": "gC m-2 8d-1", "max_valid": 100})).coarse.max_valid == 100


def test_cluster_and_models_cross_checks():
    assert "needs 'address'" in spec_error(minimal(cluster={"mode": "address"}))
    assert "only used with mode: address" in spec_error(minimal(cluster={"address": "tcp://127.0.0.1:8786"}))
    assert "not a Dask scheduler address" in spec_error(
        minimal(cluster={"mode": "address", "address": "localhost"})
    )
    spec = parse_spec(
        minimal(cluster={"mode": "address", "address": "tcp://127.0.0.1:8786", "memory_limit": "4GiB"})
    )
    assert spec.cluster.address == "tcp://127.0.0.1:8786"
    assert "not a memory size" in spec_error(minimal(cluster={"memory_limit": "lots"}))
    assert "needs kubernetes.cpu_workers" in spec_error(
        minimal(cluster={"mode": "kubernetes", "kubernetes": {"cpu_workers": 0}})
    )
    assert "not a Kubernetes namespace" in spec_error(minimal(cluster={"kubernetes": {"namespace": "My_NS"}}))
    assert "select 'cnn' is not among kinds" in spec_error(
        minimal(models={"kinds": ["dnn"], "select": "cnn"})
    )
    assert "repeats 'dnn'" in spec_error(minimal(models={"kinds": ["dnn", "dnn"]}))
    assert "both 'towers_sites'" in spec_error(minimal(validation={"towers_sites": "/s.geojson"}))


# --- YAML and file errors ------------------------------------------------------------------------------


def test_yaml_problems_become_spec_errors_with_lines(tmp_path):
    with pytest.raises(
        SpecError, match=r"spec.yaml:4:1: YAML syntax error: .*flow sequence that starts at line 3"
    ):
        load_spec(write_spec(tmp_path, "name: x\narea:\n  bbox: [1, 2\n"))
    with pytest.raises(SpecError, match=r'a key "\*" must be quoted'):
        load_spec(write_spec(tmp_path, "name: x\npurity:\n  *:\n    fraction: 1\n"))
    with pytest.raises(SpecError, match=r"spec.yaml:2: key 'name' is given twice \(first at line 1\)"):
        load_spec(write_spec(tmp_path, "name: x\nname: y\n"))
    with pytest.raises(SpecError, match="top level must be a mapping"):
        load_spec(write_spec(tmp_path, "- name\n"))
    with pytest.raises(SpecError, match="top level must be a mapping"):
        load_spec(write_spec(tmp_path, ""))
    with pytest.raises(SpecError, match=r"not found; examples are pipeline/demo\.yaml") as info:
        load_spec(tmp_path / "missing.yaml")
    assert isinstance(info.value.__cause__, FileNotFoundError)
    with pytest.raises(SpecError, match="is a folder"):
        load_spec(tmp_path)
    with pytest.raises(GppscaleError):
        parse_spec(["name"])  # type: ignore[arg-type]


# --- grid and UTM zones --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [
        (117.2, 42.1, 32650),  # upper Luanhe basin: zone 50 = floor((117.2 + 180) / 6) + 1
        (-70.5, -33.4, 32719),  # Santiago de Chile: zone 19 south
        (180.0, 10.0, 32660),  # 180 closes zone 60
        (-180.0, 10.0, 32601),
        (0.0, 0.0, 32631),  # the equator is north
        (-0.000001, -0.000001, 32730),
        (174.0, -41.3, 32760),  # a zone edge belongs to the zone east of it
        (173.999, -41.3, 32759),
        (-1e-300, 45.0, 32630),  # lon + 180 rounds to 180.0, the edge of zone 31, yet the point is west of it
    ],
)
def test_utm_epsg_hand_checked(lon, lat, epsg):
    assert utm_epsg_for(lon, lat) == epsg


def test_utm_epsg_refuses_points_that_are_not_lonlat():
    for lon, lat in ((181.0, 0.0), (0.0, 91.0), (500000.0, 4650000.0), (float("nan"), 0.0)):
        with pytest.raises(SpecError, match="not a lon/lat point"):
            utm_epsg_for(lon, lat)


@given(lon=st.floats(-180, 180), lat=st.floats(-90, 90))
def test_utm_zone_holds_the_point(lon, lat):
    epsg = utm_epsg_for(lon, lat)
    zone = epsg % 100
    assert epsg // 100 == (326 if lat >= 0 else 327)
    assert 1 <= zone <= 60
    assert -180 + 6 * (zone - 1) <= lon <= -180 + 6 * zone


@given(
    zone=st.integers(1, 60),
    offset=st.floats(0.01, 5.99),
    lat=st.floats(0.01, 83.99) | st.floats(-79.99, -0.01),
)
def test_utm_zone_agrees_with_the_epsg_database(zone, offset, lat):
    lon = -180 + 6 * (zone - 1) + offset
    info = query_utm_crs_info(datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat))
    assert utm_epsg_for(lon, lat) in {int(i.code) for i in info if i.auth_name == "EPSG"}


def test_grid_crs_is_checked_and_normalised():
    bounds = (117.0, 41.95, 117.37, 42.23)
    assert parse_spec(minimal()).grid.resolve_epsg(bounds) == 32650
    assert parse_spec(minimal(grid={"crs": "epsg:32650"})).grid.crs == "EPSG:32650"
    assert parse_spec(minimal(grid={"crs": "+proj=utm +zone=50 +datum=WGS84 +units=m"})).epsg() == 32650
    assert parse_spec(minimal(grid={"crs": "EPSG:3857"})).epsg() == 3857
    assert "not a projected CRS in metres" in spec_error(minimal(grid={"crs": "EPSG:4326"}))
    assert "not a CRS pyproj understands" in spec_error(minimal(grid={"crs": "EPSG:999999"}))
    assert "grid.chunk_px" in spec_error(minimal(grid={"chunk_px": 8192}))


# --- JSON Schema ---------------------------------------------------------------------------------------


def test_committed_schema_matches_the_code():
    committed = (PIPELINE / "schema.json").read_text()
    assert committed == spec_json_schema_text(), (
        f"pipeline/schema.json is stale; regenerate it: {SCHEMA_COMMAND}"
    )


@pytest.mark.parametrize("name", ["demo.yaml", "small.yaml"])
def test_example_specs_validate_against_the_committed_schema(name):
    schema = json.loads((PIPELINE / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load((PIPELINE / name).read_text()))


def test_schema_rejects_what_the_loader_rejects():
    validator = jsonschema.Draft202012Validator(spec_json_schema())
    assert not validator.is_valid(minimal(catalog={"world": "/w", "max_cloud_cover": 20}))
    assert not validator.is_valid(minimal(grid={"chunk_px": 100}))
    assert not validator.is_valid(minimal(purity={"DNF": {"fraction": 2}}))
    assert validator.is_valid(minimal(purity={"*": {"fraction": 0.2}, "DNF": {"min_cells": 5}}))


def test_command_line(capsys, tmp_path):
    assert main(["--schema"]) == 0
    assert capsys.readouterr().out == spec_json_schema_text()
    assert main([str(PIPELINE / "small.yaml"), "--set", "years=[2020]"]) == 0
    assert json.loads(capsys.readouterr().out)["years"] == [2020]
    assert main([str(write_spec(tmp_path, minimal(nmae="x")))]) == 2
    assert "did you mean 'name'?" in capsys.readouterr().err


def test_schema_command_runs_as_documented():
    command = SCHEMA_COMMAND.split(">")[0].split()
    done = subprocess.run(
        [sys.executable, *command[1:]], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout == spec_json_schema_text() and done.stderr == ""


@pytest.mark.parametrize("module", [_errors, _geo, _load, _schema, _spec, _types, gppscale.config])
def test_docstring_examples(module, monkeypatch):
    monkeypatch.chdir(REPO)  # the load_spec example reads pipeline/small.yaml
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and (result.attempted > 0 or module is _schema)


def test_run_spec_is_exported():
    assert RunSpec.model_config["frozen"] is True and RunSpec.model_config["extra"] == "forbid"
