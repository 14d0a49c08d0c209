"""Chunk regions, Zarr templates and resumable region writes on a local run store."""

from __future__ import annotations

import time
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from dask.base import collections_to_expr
from hypothesis import given, settings
from hypothesis import strategies as st

from gppscale.errors import StoreError
from gppscale.io.regions import (
    FINGERPRINT_ATTR,
    chunk_regions,
    create_template,
    plan_region_writes,
    read_region_records,
    records_rel,
    region_encoding,
    write_regions,
)
from gppscale.io.store import RunStore
from gppscale.testing.cubes import FOREST_TYPE_FILL, lazy_cube, with_flaky_block

REL = "out/gpp.zarr"
CHUNK = 64


@settings(deadline=None)  # a 1 by 1 chunking of the largest grid makes ~15 000 regions
@given(
    ny=st.integers(0, 120),
    nx=st.integers(0, 120),
    cy=st.integers(1, 50),
    cx=st.integers(1, 50),
)
def test_chunk_regions_tile_the_grid(ny: int, nx: int, cy: int, cx: int) -> None:
    regions = chunk_regions(ny, nx, cy, cx)
    cover = np.zeros((ny, nx), dtype=int)
    for r in regions:
        assert r.y.start % cy == 0 and r.x.start % cx == 0  # aligned on chunk edges
        assert r.y.start == r.iy * cy and r.x.start == r.ix * cx
        assert 0 < r.y.stop - r.y.start <= cy and 0 < r.x.stop - r.x.start <= cx
        assert r.y.stop - r.y.start == cy or r.y.stop == ny  # only the last row may be short
        assert r.x.stop - r.x.start == cx or r.x.stop == nx
        cover[r.y, r.x] += 1
    assert (cover == 1).all()  # exact tiling, no overlap
    assert len(regions) == -(-ny // cy) * -(-nx // cx)
    assert len({r.name for r in regions}) == len(regions)


def test_chunk_regions_rejects_bad_chunks() -> None:
    with pytest.raises(StoreError, match="must be positive"):
        chunk_regions(10, 10, 0, 5)


def test_records_live_beside_the_store() -> None:
    assert records_rel("out/gpp.zarr") == "out/gpp.regions"
    assert records_rel("out/cube") == "out/cube.regions"


def test_region_encoding_needs_integer_fill_values() -> None:
    ds = lazy_cube(ny=80, nx=80)
    with pytest.raises(StoreError, match=r"'forest_type'.*fill_values="):
        region_encoding(ds, chunk_y=CHUNK, chunk_x=CHUNK)
    enc = region_encoding(ds, chunk_y=CHUNK, chunk_x=CHUNK, fill_values={"forest_type": FOREST_TYPE_FILL})
    assert enc["gpp"]["chunks"] == (1, CHUNK, CHUNK) and np.isnan(enc["gpp"]["fill_value"])
    assert enc["forest_type"] == {"chunks": (CHUNK, CHUNK), "fill_value": FOREST_TYPE_FILL}


def _encoding(ds: xr.Dataset) -> dict[str, dict[str, object]]:
    return region_encoding(ds, chunk_y=CHUNK, chunk_x=CHUNK, fill_values={"forest_type": FOREST_TYPE_FILL})


def test_template_rejects_misaligned_dask_chunks(tmp_path: Path) -> None:
    ds = lazy_cube(ny=130, nx=130, dask_chunks=(50, 64))
    with pytest.raises(StoreError, match=r"dask chunk edge at y=50 .* zarr chunk of 64"):
        create_template(
            ds, RunStore(str(tmp_path)), REL, encoding=_encoding(ds), fingerprint="a", overwrite=False
        )


def test_template_requires_explicit_fill_values(tmp_path: Path) -> None:
    ds = lazy_cube(ny=80, nx=80)
    enc = _encoding(ds)
    del enc["forest_type"]["fill_value"]
    with pytest.raises(StoreError, match="explicit 'chunks' and 'fill_value'"):
        create_template(ds, RunStore(str(tmp_path)), REL, encoding=enc, fingerprint="a", overwrite=False)


def _open(store: RunStore) -> xr.Dataset:
    return xr.open_zarr(store.zarr_store(REL), consolidated=False)


def _assert_matches(out: xr.Dataset, src: xr.Dataset) -> None:
    src = src.compute()
    for name in src.data_vars:
        assert out[name].dtype == src[name].dtype
        np.testing.assert_array_equal(out[name].values, src[name].values)
        assert out[name].attrs == src[name].attrs  # units and grid_mapping survive
    for name in ("time", "y", "x"):
        np.testing.assert_array_equal(out[name].values, src[name].values)
    assert out["spatial_ref"].attrs["crs_wkt"] == src["spatial_ref"].attrs["crs_wkt"]
    assert out["gpp"].attrs["grid_mapping"] == "spatial_ref"
    assert out["forest_type"].attrs["grid_mapping"] == "spatial_ref"


def test_write_round_trip_local(tmp_path: Path) -> None:
    ds = lazy_cube()
    store = RunStore(str(tmp_path))
    calls: list[tuple[int, int]] = []
    assert (
        create_template(ds, store, REL, encoding=_encoding(ds), fingerprint="fp", overwrite=False)
        == "created"
    )
    summary = write_regions(ds, store, REL, fingerprint="fp", progress=lambda d, t: calls.append((d, t)))
    assert (summary.total, summary.written, summary.skipped) == (25, 25, 0)
    assert calls == [(i, 25) for i in range(1, 26)]
    out = _open(store)
    _assert_matches(out, ds)
    assert out.attrs[FINGERPRINT_ATTR] == "fp"
    assert out["forest_type"].values[0, 0] == FOREST_TYPE_FILL
    # the all-NaN chunk was not stored: only the completion record says that region is done
    assert not (tmp_path / REL / "gpp" / "c" / "0" / "0" / "0").exists()
    records = read_region_records(store, REL)
    assert sorted(records) == sorted(summary.checksums)
    assert records["y0000_x0000"]["fingerprint"] == "fp"
    assert records["y0004_x0004"]["shape"] == {"time": 3, "y": 300 - 4 * CHUNK, "x": 260 - 4 * CHUNK}
    assert records["y0001_x0002"]["checksums"] == summary.checksums["y0001_x0002"]


def test_template_resumes_with_same_fingerprint(tmp_path: Path) -> None:
    ds = lazy_cube(ny=100, nx=100)
    store = RunStore(str(tmp_path))
    create_template(ds, store, REL, encoding=_encoding(ds), fingerprint="fp", overwrite=False)
    meta = tmp_path / REL / "zarr.json"
    before = meta.stat().st_mtime_ns
    assert (
        create_template(ds, store, REL, encoding=_encoding(ds), fingerprint="fp", overwrite=False)
        == "resumed"
    )
    assert meta.stat().st_mtime_ns == before


def test_other_fingerprint_without_overwrite_keeps_data(tmp_path: Path) -> None:
    ds = lazy_cube(ny=130, nx=130)
    store = RunStore(str(tmp_path))
    create_template(ds, store, REL, encoding=_encoding(ds), fingerprint="old", overwrite=False)
    write_regions(ds, store, REL, fingerprint="old")
    other = ds.assign(gpp=ds["gpp"] * 2)
    with pytest.raises(StoreError, match=r"gpp\.zarr.*'old'.*output\.overwrite"):
        create_template(other, store, REL, encoding=_encoding(ds), fingerprint="new", overwrite=False)
    with pytest.raises(StoreError, match="create_template"):
        write_regions(other, store, REL, fingerprint="new")
    _assert_matches(_open(store), ds)
    assert len(read_region_records(store, REL)) == 9

    assert (
        create_template(other, store, REL, encoding=_encoding(ds), fingerprint="new", overwrite=True)
        == "created"
    )
    assert read_region_records(store, REL) == {}
    assert write_regions(other, store, REL, fingerprint="new").written == 9
    _assert_matches(_open(store), other)


_FAIL_AT = (0, 4, 2)  # dask block (time, y, x) of gpp that fails once: it feeds only region y0004_x0004


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_ino)
        for p in root.rglob("*")
        if p.is_file()
    }


def test_resume_after_failure_rewrites_nothing_finished(tmp_path: Path) -> None:
    src = lazy_cube()
    flaky = with_flaky_block(src, "gpp", str(tmp_path / "marker"), _FAIL_AT)
    store = RunStore(str(tmp_path / "run"))
    create_template(flaky, store, REL, encoding=_encoding(src), fingerprint="fp", overwrite=False)
    with pytest.raises(RuntimeError, match="injected failure") as info:
        write_regions(flaky, store, REL, fingerprint="fp", max_in_flight=8)
    assert any("rerun to resume" in note for note in getattr(info.value, "__notes__", []))

    first = read_region_records(store, REL)
    assert "y0004_x0004" not in first and len(first) == 24  # batches of 8: only the last batch failed
    files = _files(tmp_path / "run")
    time.sleep(0.05)  # a rewrite then shows as a newer mtime even on coarse filesystem clocks
    summary = write_regions(flaky, store, REL, fingerprint="fp")
    assert (summary.skipped, summary.written) == (24, 1)

    after = _files(tmp_path / "run")
    assert {k: after[k] for k in files} == files  # chunks and records of finished regions untouched
    new = set(after) - set(files)
    assert new and all(k.endswith(("/4/4", "/y0004_x0004.json")) for k in new), new  # only the failed region

    reference = RunStore(str(tmp_path / "reference"))
    create_template(src, reference, REL, encoding=_encoding(src), fingerprint="fp", overwrite=False)
    assert write_regions(src, reference, REL, fingerprint="fp").checksums == summary.checksums
    _assert_matches(_open(store), src)


def _graph(collections: list) -> dict:
    return dict(collections_to_expr(collections, optimize_graph=True).__dask_graph__())


def test_region_graph_grows_linearly(tmp_path: Path) -> None:
    sizes = {}
    for n in (2, 4):
        ds = lazy_cube(n_time=2, ny=CHUNK * n, nx=CHUNK * n, dask_chunks=(CHUNK, CHUNK))
        store = RunStore(str(tmp_path / f"s{n}"))
        create_template(ds, store, REL, encoding=_encoding(ds), fingerprint="fp", overwrite=False)
        plan = plan_region_writes(ds, store, REL, fingerprint="fp")
        assert plan.total == n * n and len(plan.tasks) == n * n and plan.done == {}
        sizes[n] = len(_graph(list(plan.tasks.values())))
        assert len(_graph([plan.tasks["y0000_x0000"]])) == sizes[n] // (n * n)  # one region: a fixed size
    assert sizes[4] == 4 * sizes[2]  # four times the output chunks, four times the tasks


def test_write_with_dask_arrays_from_zeros(tmp_path: Path) -> None:
    # a dataset whose every chunk equals the fill value stores no chunk at all, yet every region is done
    ds = xr.Dataset(
        {"gpp": (("time", "y", "x"), da.full((2, 100, 70), np.nan, dtype="f4", chunks=(1, CHUNK, CHUNK)))},
        coords={"y": np.arange(100.0), "x": np.arange(70.0)},
    )
    store = RunStore(str(tmp_path))
    create_template(
        ds,
        store,
        REL,
        encoding=region_encoding(ds, chunk_y=CHUNK, chunk_x=CHUNK),
        fingerprint="fp",
        overwrite=False,
    )
    assert write_regions(ds, store, REL, fingerprint="fp").written == 4
    assert not (tmp_path / REL / "gpp" / "c").exists()
    assert write_regions(ds, store, REL, fingerprint="fp").skipped == 4
