"""Coarse GPP/NPP from the small world's GeoTIFFs give what the same files give through its STAC API."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gppscale.config import RunSpec, parse_spec
from gppscale.io.catalog import serve_catalog
from gppscale.io.coarse import coarse_quarterly
from gppscale.io.files import file_items
from gppscale.io.freeze import FrozenSearch, load_frozen, search_run
from gppscale.io.store import RunStore
from gppscale.plan import plan_run

pytestmark = pytest.mark.integration

ROLES = ("coarse_gpp", "coarse_npp")


def world_spec(world: Path, store: Path, **collections: object) -> RunSpec:
    meta = json.loads((world / "world.json").read_text())
    return parse_spec(
        {
            "name": "coarse-files",
            "area": {"bbox": meta["bbox_lonlat"]},
            "years": meta["years"],
            "catalog": {"world": str(world)},
            "collections": collections,
            "output": {"store": str(store)},
        }
    )


def coarse_folder(world: Path, role: str) -> Path:
    meta = json.loads((world / "world.json").read_text())
    return world / "data" / meta["collections"][role]


@pytest.fixture(scope="module")
def catalog(small_world: Path) -> Iterator[str]:
    with serve_catalog(small_world) as url:
        yield url


@pytest.fixture(scope="module")
def stac_frozen(
    small_world: Path, catalog: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[RunSpec, FrozenSearch]:
    spec = world_spec(small_world, tmp_path_factory.mktemp("stac-run"))
    return spec, search_run(spec, catalog, RunStore(spec.output.store))


@pytest.mark.parametrize("role", ROLES)
def test_items_from_files_give_the_quarterly_sums_of_the_stac_items(
    stac_frozen: tuple[RunSpec, FrozenSearch], small_world: Path, role: str
) -> None:
    spec, frozen = stac_frozen
    settings = getattr(spec.collections, role).model_copy(
        update={"files": str(coarse_folder(small_world, role) / "GLASS_*_A*.tif")}
    )
    from_files = file_items(settings, spec.years, role=role)
    from_stac = frozen.role(role)
    assert [i["id"] for i in from_files] == sorted(i["id"] for i in from_stac)
    plan = plan_run(spec)
    by_files = coarse_quarterly(spec, plan, from_files, role).compute()
    by_stac = coarse_quarterly(spec, plan, from_stac, role).compute()
    assert by_files.sizes["time"] == 4 and np.isfinite(by_files.values).sum() > 100
    np.testing.assert_array_equal(by_files.values, by_stac.values)
    np.testing.assert_array_equal(by_files.time.values, by_stac.time.values)
    assert by_files.odc.geobox == by_stac.odc.geobox


def test_search_freezes_file_items_and_reuses_them(
    small_world: Path, catalog: str, tmp_path: Path, stac_frozen: tuple[RunSpec, FrozenSearch]
) -> None:
    # A copy, so that the shared world stays untouched when a file is changed below.
    folder = tmp_path / "glass-gpp"
    shutil.copytree(coarse_folder(small_world, "coarse_gpp"), folder)
    spec = world_spec(small_world, tmp_path / "run", coarse_gpp={"files": str(folder / "*.tif")})
    store = RunStore(spec.output.store)
    said: list[str] = []
    first = search_run(spec, catalog, store, progress=said.append)
    entry = first.manifest["roles"]["coarse_gpp"]
    assert entry["source"] == "files" and entry["files"] == str(folder / "*.tif")
    assert entry["kept"] == len(list(folder.glob("*.tif"))) == 46 and entry["sha256"]
    assert first.manifest["roles"]["coarse_npp"]["source"] == "stac"
    assert any("coarse_gpp" in line and "(local files)" in line for line in said)
    frozen = load_frozen(store)
    hrefs = {i["assets"]["data"]["href"] for i in frozen.role("coarse_gpp")}
    assert hrefs == {p.as_uri() for p in folder.glob("*.tif")}
    # the frozen items load like the STAC ones
    stac_spec, stac_search = stac_frozen
    plan = plan_run(spec)
    np.testing.assert_array_equal(
        coarse_quarterly(spec, plan, frozen.role("coarse_gpp"), "coarse_gpp").values,
        coarse_quarterly(stac_spec, plan, stac_search.role("coarse_gpp"), "coarse_gpp").values,
    )
    # a second search reuses the frozen one
    said.clear()
    again = search_run(spec, catalog, store, progress=said.append)
    assert said == [f"search: reusing the frozen search of {first.manifest['created']}"]
    assert again.manifest["fingerprint"] == first.manifest["fingerprint"]
    # a replaced file (new time stamp) makes the search new, and its frozen items differ
    changed = folder / "GLASS_GPP_A2021161_h26v04.tif"
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    said.clear()
    third = search_run(spec, catalog, store, progress=said.append)
    assert not any("reusing" in line for line in said)
    assert third.manifest["fingerprint"] != first.manifest["fingerprint"]
    assert third.manifest["roles"]["coarse_gpp"]["sha256"] != entry["sha256"]
