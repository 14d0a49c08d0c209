"""Search → frozen stac-geoparquet → predictor cube Zarr on the `small` world (local and S3 stores)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import xarray as xr

from gppscale.compute import local_cluster
from gppscale.config import RunSpec, parse_spec
from gppscale.errors import DataWarning, NoDataError
from gppscale.io.cube import build_cube
from gppscale.io.freeze import FrozenSearch, load_frozen
from gppscale.io.store import RunStore
from gppscale.plan import plan_run
from gppscale.runner import CUBE_REL, run_cube, run_search

pytestmark = pytest.mark.integration

BANDS = ("coastal", "blue", "green", "red", "nir08", "swir16", "swir22")


def small_spec(world: Path, store: str, **extra: Any) -> RunSpec:
    meta = json.loads((world / "world.json").read_text())
    raw: dict[str, Any] = {
        "name": "small-cube",
        "area": {"bbox": meta["bbox_lonlat"]},
        "years": meta["years"],
        "catalog": {"world": str(world)},
        "grid": {"chunk_px": 128},  # 6 regions
        "output": {"store": store},
    }
    for key, value in extra.items():
        raw[key] = value
    return parse_spec(raw)


@pytest.fixture(scope="module")
def local_run(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunSpec, xr.Dataset]:
    store = tmp_path_factory.mktemp("run") / "run"
    spec = small_spec(small_world, str(store))
    run_search(spec)
    run_cube(spec)
    return spec, xr.open_zarr(store / CUBE_REL, consolidated=False)


def test_search_is_frozen_as_stac_geoparquet(
    local_run: tuple[RunSpec, xr.Dataset], small_world: Path
) -> None:
    spec, _ = local_run
    store = Path(spec.output.store)
    manifest = json.loads((store / "search" / "search.json").read_text())
    meta = json.loads((small_world / "world.json").read_text())
    for role, info in manifest["roles"].items():
        if info["kept"]:
            md = pq.ParquetFile(store / "search" / f"{role}.parquet").metadata.metadata
            assert b"geo" in md and b"stac-geoparquet" in md
    cid = meta["collections"]["landsat"]
    world_items = [
        json.loads(line) for line in (small_world / "stac" / cid / "items.ndjson").read_text().splitlines()
    ]
    cloudy = sum(i["properties"]["eo:cloud_cover"] > spec.catalog.max_cloud_cover_pct for i in world_items)
    landsat = manifest["roles"]["landsat"]
    assert (landsat["kept"], landsat["cloudy"]) == (len(world_items) - cloudy, cloudy)
    frozen = load_frozen(RunStore(str(store)))
    assert len(frozen.role("landsat")) == landsat["kept"]


def test_cube_layout_and_cf_metadata(local_run: tuple[RunSpec, xr.Dataset]) -> None:
    spec, cube = local_run
    plan = plan_run(spec)
    assert cube.sizes == {"time": 4, "y": plan.geobox.shape.y, "x": plan.geobox.shape.x}
    expected = {
        *BANDS,
        "n_clear",
        "ndvi",
        "kndvi",
        "evi",
        "ndwi",
        "ndmi",
        "tmean",
        "prcp",
        "srad",
        "vpd",
        "elevation",
        "slope",
        "northness",
        "eastness",
        "land_cover",
        "forest_type",
    }
    assert set(cube.data_vars) == expected
    for name, var in cube.data_vars.items():
        assert var.attrs.get("grid_mapping") == "spatial_ref", name
        assert "units" in var.attrs or "flag_values" in var.attrs, name
    assert "crs_wkt" in cube.spatial_ref.attrs
    assert cube.odc.geobox == plan.geobox
    assert cube.tmean.attrs["units"] == "degC" and cube.prcp.attrs["units"] == "mm quarter-1"


def _truth_on(cube: xr.Dataset, world: Path) -> xr.Dataset:
    """The world's truth (stored on its padded grid) on the cube's pixels."""
    truth = xr.open_zarr(world / "truth" / "truth.zarr", consolidated=False)
    return truth.sel(y=cube.y, x=cube.x, method="nearest", tolerance=1.0).load()


def test_cube_matches_the_worlds_clean_composites(
    local_run: tuple[RunSpec, xr.Dataset], small_world: Path
) -> None:
    # The world's clean_<band> is the cloud-free, noise-free MEAN of all scenes of the quarter; the cube is
    # the MEDIAN of the clear, noisy scenes, so within-quarter phenology (green-up in Q2, senescence in Q4)
    # separates them a little. Tolerances on pixels with n_clear >= 2 (measured on seed 0 in brackets):
    # median |error| of red/nir08/swir16 < 0.03 (<= 0.023), NDVI < 0.08 (<= 0.06), r(NDVI) > 0.85 (>= 0.89);
    # in the stable summer quarter NDVI agrees within 0.02 (0.011).
    _, cube = local_run
    truth = _truth_on(cube, small_world)
    for t in range(cube.sizes["time"]):
        ok = (cube.n_clear[t] >= 2).values
        assert ok.mean() > 0.4, f"quarter {t}: only {ok.mean():.0%} of pixels with >= 2 clear scenes"
        for band in ("red", "nir08", "swir16"):
            got, want = cube[band][t].values[ok], truth[f"clean_{band}"][t].values[ok]
            assert np.median(np.abs(got - want)) < 0.03, (t, band)
        ndvi, clean_ndvi = cube.ndvi[t].values[ok], truth.clean_ndvi[t].values[ok]
        assert np.median(np.abs(ndvi - clean_ndvi)) < (0.02 if t == 2 else 0.08), t
        assert np.corrcoef(ndvi, clean_ndvi)[0, 1] > 0.85, t


def test_no_clear_observation_is_nan_not_zero(local_run: tuple[RunSpec, xr.Dataset]) -> None:
    _, cube = local_run
    none = (cube.n_clear == 0).values
    for band in BANDS:
        values = cube[band].values
        assert np.isnan(values[none]).all(), band
        assert not np.isnan(values[~none]).any(), band


def test_static_layers_match_the_world(local_run: tuple[RunSpec, xr.Dataset], small_world: Path) -> None:
    _, cube = local_run
    truth = _truth_on(cube, small_world)
    assert np.mean(cube.land_cover.values == truth.land_cover.values) > 0.97
    assert np.nanmedian(np.abs(cube.elevation.values - truth.elevation.values)) < 3.0
    ft = cube.forest_type.values
    assert set(np.unique(ft)) <= {0, 1, 2, 3, 4, 5, 255}
    assert (ft == 4).mean() > 0.02  # larch (DNF) is common in the upper Luanhe basin world
    assert np.isfinite(cube.tmean.values).all() and np.isfinite(cube.srad.values).all()
    # Q3 is warmer than Q1 everywhere
    assert (cube.tmean[2].values > cube.tmean[0].values).all()


def test_rerun_skips_everything(local_run: tuple[RunSpec, xr.Dataset]) -> None:
    spec, _ = local_run
    result = run_cube(spec)
    assert (result.written, result.skipped) == (0, result.regions)


def test_lazy_cube_does_no_pixel_io(local_run: tuple[RunSpec, xr.Dataset], tmp_path: Path) -> None:
    spec, _ = local_run
    frozen = load_frozen(RunStore(spec.output.store))

    def broken(item: dict[str, Any]) -> dict[str, Any]:
        item = json.loads(json.dumps(item))
        for asset in item["assets"].values():
            asset["href"] = "file:///nonexistent/" + asset["href"].rsplit("/", 1)[-1]
        return item

    gone = FrozenSearch({r: [broken(i) for i in items] for r, items in frozen.items.items()}, frozen.manifest)
    cube = build_cube(spec, plan_run(spec), gone)  # builds: no file is opened
    with pytest.raises(Exception, match="nonexistent"):
        cube.red.isel(time=0, y=slice(0, 10), x=slice(0, 10)).compute()


def test_graph_grows_linearly_with_chunks(local_run: tuple[RunSpec, xr.Dataset]) -> None:
    spec, _ = local_run
    frozen = load_frozen(RunStore(spec.output.store))
    w, s, e, n = spec.area.bounds_lonlat()
    sizes = []
    for k in (1, 2, 3):
        bbox = [w, s, w + k * (e - w), s + k * (n - s)]
        grown = parse_spec(spec.to_dict() | {"area": {"bbox": bbox}, "grid": {"chunk_px": 64}})
        plan = plan_run(grown)
        cube = build_cube(grown, plan, frozen)
        ny, nx = plan.chunks_yx
        sizes.append((ny * nx, len(cube.__dask_graph__())))
    (n1, t1), (n2, t2), (n3, t3) = sizes
    per_chunk_a, per_chunk_b = (t2 - t1) / (n2 - n1), (t3 - t2) / (n3 - n2)
    assert per_chunk_b == pytest.approx(per_chunk_a, rel=0.3), sizes


def test_quarter_without_scenes_is_an_error(small_world: Path, tmp_path: Path) -> None:
    spec = small_spec(small_world, str(tmp_path / "run"))
    run_search(spec)
    frozen = load_frozen(RunStore(spec.output.store))
    q3 = [
        i
        for i in frozen.role("landsat")
        if not i["properties"]["datetime"].startswith(("2021-07", "2021-08", "2021-09"))
    ]
    thin = FrozenSearch({**frozen.items, "landsat": q3}, frozen.manifest)
    with pytest.raises(NoDataError, match="2021Q3"):
        build_cube(spec, plan_run(spec), thin)


def test_missing_asset_and_broken_href_are_skipped_with_one_warning(
    small_world: Path, tmp_path: Path
) -> None:
    world = tmp_path / "world"
    shutil.copytree(small_world, world, ignore=shutil.ignore_patterns("truth"))
    cid = json.loads((world / "world.json").read_text())["collections"]["landsat"]
    path = world / "stac" / cid / "items.ndjson"
    items = [json.loads(line) for line in path.read_text().splitlines()]
    del items[0]["assets"]["swir16"]
    items[1]["assets"]["red"]["href"] = items[1]["assets"]["red"]["href"].replace(".TIF", "_gone.TIF")
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    spec = small_spec(world, str(tmp_path / "run"))
    with pytest.warns(DataWarning) as record:
        frozen = run_search(spec)
    messages = [str(w.message) for w in record if "skipped" in str(w.message)]
    assert len(messages) == 1
    assert items[0]["id"] in messages[0] and "swir16" in messages[0]
    assert items[1]["id"] in messages[0] and "href not found" in messages[0]
    kept = {i["id"] for i in frozen.role("landsat")}
    assert items[0]["id"] not in kept and items[1]["id"] not in kept


def test_no_items_is_a_clear_error(small_world: Path, tmp_path: Path) -> None:
    spec = small_spec(small_world, str(tmp_path / "run")).model_copy(update={"years": (2015,)})
    with pytest.raises(NoDataError, match=r"landsat-c2-l2.*bbox=.*2015-01-01"):
        run_search(spec)


def _checksums(store: RunStore) -> dict[str, Any]:
    from gppscale.io.regions import read_region_records

    return {name: rec["checksums"] for name, rec in read_region_records(store, CUBE_REL).items()}


def test_s3_store_on_a_multiprocess_cluster_gives_the_same_cube(
    local_run: tuple[RunSpec, xr.Dataset], small_world: Path, s3_bucket: str
) -> None:
    from distributed import Client

    spec, local_cube = local_run
    s3_spec = small_spec(small_world, f"{s3_bucket}/run")
    run_search(s3_spec)
    with (
        local_cluster(2, 1) as cluster,
        Client(cluster) as client,
    ):
        result = run_cube(s3_spec, client=client)
    assert result.written == result.regions
    assert _checksums(RunStore(s3_spec.output.store)) == _checksums(RunStore(spec.output.store))
    # the region tasks the workers received name the store but carry no credentials
    import os

    import cloudpickle

    from gppscale.io.cube import cube_fingerprint
    from gppscale.io.regions import plan_region_writes, records_rel

    store = RunStore(s3_spec.output.store)
    frozen = load_frozen(store)
    plan = plan_run(s3_spec)
    store.remove(records_rel(CUBE_REL))  # so that every region gets a task again
    tasks = plan_region_writes(
        build_cube(s3_spec, plan, frozen),
        store,
        CUBE_REL,
        fingerprint=cube_fingerprint(s3_spec, plan, frozen),
    ).tasks
    payload = cloudpickle.dumps(list(tasks.values()))
    assert len(tasks) == result.regions and store.url.encode() in payload
    for secret in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"):
        assert os.environ[secret].encode() not in payload
    remote = xr.open_zarr(RunStore(s3_spec.output.store).zarr_store(CUBE_REL), consolidated=False)
    xr.testing.assert_identical(remote.load(), local_cube.load())


def test_killed_cube_run_resumes_without_rewriting(
    local_run: tuple[RunSpec, xr.Dataset], small_world: Path, tmp_path: Path
) -> None:
    import hashlib
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    from gppscale.io.regions import read_region_records, records_rel

    _, reference = local_run
    store_dir = tmp_path / "run"
    raw = small_spec(small_world, str(store_dir)).to_dict()
    raw["cluster"] = {"mode": "local", "workers": 1, "threads_per_worker": 1}
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    records_dir = store_dir / records_rel(CUBE_REL)

    proc = subprocess.Popen(
        [sys.executable, "-m", "gppscale.cli", "cube", str(spec_path)],
        start_new_session=True,  # the LocalCluster's worker processes die with the group
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(records_dir.glob("*.json"))) < 2:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in records_dir.glob("*.json")}
    assert 2 <= len(before) < 6

    spec = parse_spec(raw)
    result = run_cube(spec)
    assert (result.regions, result.skipped, result.written) == (6, len(before), 6 - len(before))
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in records_dir.glob("*.json")}
    assert {k: after[k] for k in before} == before  # finished regions were not rewritten

    cube = xr.open_zarr(store_dir / CUBE_REL, consolidated=False).load()
    xr.testing.assert_equal(cube, reference.load())  # same values as the uninterrupted run
    for name, record in read_region_records(RunStore(str(store_dir)), CUBE_REL).items():
        part = cube.isel(y=slice(*record["y"]), x=slice(*record["x"]))
        for var, digest in record["checksums"].items():
            assert hashlib.sha256(np.ascontiguousarray(part[var].values).tobytes()).hexdigest() == digest, (
                name,
                var,
            )
