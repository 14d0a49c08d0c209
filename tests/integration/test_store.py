"""The run store and region writes on a local folder and a real moto S3 server, with worker processes."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import xarray as xr
from dask.base import collections_to_expr

from gppscale.compute import local_cluster
from gppscale.errors import StoreError
from gppscale.io.regions import (
    create_template,
    plan_region_writes,
    read_region_records,
    region_encoding,
    write_regions,
)
from gppscale.io.store import RunStore, storage_options_from_env
from gppscale.testing.cubes import FOREST_TYPE_FILL, lazy_cube, with_flaky_block

pytestmark = pytest.mark.integration

REL = "output/gpp.zarr"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> RunStore:
    if request.param == "local":
        return RunStore(str(tmp_path / "run"))
    bucket = request.getfixturevalue("s3_bucket")
    return RunStore(f"{bucket}/runs/demo/")


def test_round_trips(store: RunStore, tmp_path: Path) -> None:
    store.check_writable()
    assert not store.exists("state/plan.json")
    assert store.listdir("state") == []
    store.write_json("state/plan.json", {"z": 1, "a": [1.5, "x"]})
    store.write_bytes("state/blob.bin", b"\x00\x01")
    store.write_bytes("state/blob.bin", b"\x02")  # replaced whole
    assert store.read_json("state/plan.json") == {"a": [1.5, "x"], "z": 1}
    assert store.read_bytes("state/plan.json").decode().startswith('{\n  "a"')  # sorted and indented
    assert store.read_bytes("state/blob.bin") == b"\x02"
    assert store.listdir("state") == ["blob.bin", "plan.json"]
    assert store.listdir("") == ["state"]
    assert store.read_many(["state/blob.bin"]) == {"state/blob.bin": b"\x02"}

    local = tmp_path / "in.txt"
    local.write_text("hello")
    store.upload_file(local, "files/in.txt")
    store.download_file("files/in.txt", tmp_path / "back" / "out.txt")
    assert (tmp_path / "back" / "out.txt").read_text() == "hello"

    store.remove("state")
    store.remove("state")  # absent: no error
    assert not store.exists("state/plan.json") and store.listdir("state") == []
    with pytest.raises(StoreError, match=r"plan\.json.*does not exist"):
        store.read_json("state/plan.json")


def test_missing_bucket_is_explained(s3_endpoint: str) -> None:
    with pytest.raises(StoreError, match=r"bucket 'no-such-bucket-gppscale' .* does not exist.*aws s3 mb"):
        RunStore("s3://no-such-bucket-gppscale/run").check_writable()


def test_unwritable_local_folder_is_explained(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="not writable"):
        RunStore(str(blocker / "run")).check_writable()


def test_bad_urls_are_rejected() -> None:
    with pytest.raises(StoreError, match="relative"):
        RunStore("runs/demo")
    with pytest.raises(StoreError, match="unsupported scheme"):
        RunStore("gs://bucket/run")
    with pytest.raises(StoreError, match=r"'\.\.'"):
        RunStore("/tmp/run").join("../etc")


def test_options_hold_no_credentials(s3_endpoint: str) -> None:
    options = storage_options_from_env("s3://bucket/run")
    assert options["endpoint_url"] == s3_endpoint
    assert options["config_kwargs"]["retries"]["mode"] == "legacy"
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in repr(options)
    assert os.environ["AWS_ACCESS_KEY_ID"] not in repr(options)


def _encoding(ds: xr.Dataset) -> dict[str, dict[str, object]]:
    return region_encoding(ds, chunk_y=64, chunk_x=64, fill_values={"forest_type": FOREST_TYPE_FILL})


def _assert_matches(store: RunStore, src: xr.Dataset) -> None:
    out = xr.open_zarr(store.zarr_store(REL), consolidated=False)
    src = src.compute()
    for name in src.data_vars:
        assert out[name].dtype == src[name].dtype
        np.testing.assert_array_equal(out[name].values, src[name].values)
        assert out[name].attrs["grid_mapping"] == "spatial_ref"
    assert out["spatial_ref"].attrs["crs_wkt"] == src["spatial_ref"].attrs["crs_wkt"]
    np.testing.assert_array_equal(out["y"].values, src["y"].values)


def test_region_write_round_trip(store: RunStore) -> None:
    ds = lazy_cube()
    create_template(ds, store, REL, encoding=_encoding(ds), fingerprint="fp", overwrite=False)
    summary = write_regions(ds, store, REL, fingerprint="fp")
    assert (summary.total, summary.written) == (25, 25)
    _assert_matches(store, ds)
    assert len(read_region_records(store, REL)) == 25
    again = write_regions(ds, store, REL, fingerprint="fp")
    assert (again.skipped, again.written, again.checksums) == (25, 0, summary.checksums)


def _graph_bytes(tasks: list) -> bytes:
    graph = dict(collections_to_expr(tasks, optimize_graph=True).__dask_graph__())
    return cloudpickle.dumps(graph) + pickle.dumps(tasks)


def test_worker_processes_write_to_s3_without_secrets_in_the_graph(s3_bucket: str, tmp_path: Path) -> None:
    from distributed import Client

    store = RunStore(f"{s3_bucket}/run")
    src = lazy_cube(ny=200, nx=200)
    # dask block (0, 1, 1) of gpp (rows 64-128, columns 128-256) feeds regions y0001_x0002 and y0001_x0003
    ds = with_flaky_block(src, "gpp", str(tmp_path / "failed-once"), (0, 1, 1))
    create_template(ds, store, REL, encoding=_encoding(ds), fingerprint="fp", overwrite=False)

    plan = plan_region_writes(ds, store, REL, fingerprint="fp")
    payload = _graph_bytes(list(plan.tasks.values()))
    assert store.url.encode() in payload  # the graph does name the store...
    for secret in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"):
        assert os.environ[secret].encode() not in payload  # ...but carries no credentials

    seen: list[tuple[int, int]] = []
    with (
        local_cluster(2, 1) as cluster,
        Client(cluster) as client,
    ):
        with pytest.raises(RuntimeError, match="injected failure") as info:
            write_regions(ds, store, REL, fingerprint="fp", client=client, max_in_flight=3)
        assert any("rerun to resume" in note for note in getattr(info.value, "__notes__", []))
        summary = write_regions(
            ds,
            store,
            REL,
            fingerprint="fp",
            client=client,
            max_in_flight=3,
            progress=lambda d, t: seen.append((d, t)),
        )
        workers = client.run(os.getpid)
    assert len(set(workers.values())) == 2 and os.getpid() not in workers.values()
    assert summary.total == 16 and summary.skipped >= 1 and summary.skipped + summary.written == 16
    assert seen[-1] == (16, 16) and len(seen) == summary.written
    _assert_matches(store, src)

    reference = RunStore(f"{s3_bucket}/reference")
    create_template(src, reference, REL, encoding=_encoding(src), fingerprint="fp", overwrite=False)
    assert write_regions(src, reference, REL, fingerprint="fp").checksums == summary.checksums
