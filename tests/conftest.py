"""Shared fixtures: a tiny hand-made world STAC folder and a local STAC API serving it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gppscale.errors import MissingDependencyError
from gppscale.io.catalog import find_rustac, serve_catalog
from gppscale.testing.stac import make_tiny_world_stac


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only tiny world (5 Landsat items, 4 DEM tiles); copy it before changing anything."""
    return make_tiny_world_stac(tmp_path_factory.mktemp("tiny-world"), n_items=5)


@pytest.fixture(scope="session")
def rustac_exe() -> Path:
    """The `rustac` executable; skips the test when it is not installed."""
    try:
        return find_rustac()
    except MissingDependencyError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def tiny_stac_url(tiny_world: Path, rustac_exe: Path) -> Iterator[str]:
    """Root URL of a `rustac serve` API over `tiny_world`, shared by one test module."""
    with serve_catalog(tiny_world) as url:
        yield url


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic `small` world (seed 0), made once per session (about 20 s); treat it as read-only."""
    from gppscale.world import make_world

    return make_world("small", tmp_path_factory.mktemp("small") / "world", seed=0)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real moto S3 server for the session; the process environment points botocore, s3fs and GDAL at it.

    Skips the test when `moto_server` is not installed. The environment (dummy credentials, endpoint)
    stays set for the rest of the session, so worker processes started later inherit it.
    """
    from gppscale.testing.s3 import find_moto_server, moto_server, s3_env

    try:
        find_moto_server()
    except MissingDependencyError as e:
        pytest.skip(str(e))
    with moto_server() as endpoint, pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
            mp.delenv(name, raising=False)
        for name, value in s3_env(endpoint).items():
            mp.setenv(name, value)
        yield endpoint


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh, empty bucket on the session's moto server, as ``s3://bucket-name``."""
    import uuid

    from gppscale.testing.s3 import make_bucket

    name = f"test-{uuid.uuid4().hex[:16]}"
    make_bucket(s3_endpoint, name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def small_samples(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """A run over the whole `small` world up to the samples stage: ``(spec, SamplesResult)``.

    Chunks of 128 px (6 cube regions), blocks of 3 x 3 cells, 60 training epochs, ensembles of 3 members
    (CI time; the default is 5). Purity keeps the 70 %
    lowest-CV cells at least 70 % of one type (at least 3): with one year and a few dozen cells per type,
    the paper's 30 % leaves too few samples to learn anything at 30 m. Later stages may write into its
    store; copy the store before changing earlier outputs.
    """
    import json
    import warnings

    from gppscale.config import parse_spec
    from gppscale.errors import DataWarning
    from gppscale.runner import run_cube, run_samples, run_search

    meta = json.loads((small_world / "world.json").read_text())
    spec = parse_spec(
        {
            "name": "small-samples",
            "area": {"bbox": meta["bbox_lonlat"]},
            "years": meta["years"],
            "catalog": {"world": str(small_world)},
            "grid": {"chunk_px": 128},
            "purity": {"*": {"fraction": 0.7, "min_type_fraction": 0.7, "min_cells": 3}},
            "split": {"block_cells": 3},
            "models": {"ensemble": 3, "hyper": {"*": {"epochs": 60, "patience": 10}}},
            "output": {"store": str(tmp_path_factory.mktemp("samples") / "run")},
            "validation": {
                "truth": str(small_world / "truth" / "truth.zarr"),
                "plots": str(small_world / "plots" / "plots.geojson"),
                "towers_sites": str(small_world / "towers" / "sites.geojson"),
                "towers_dir": str(small_world / "towers"),
            },
        }
    )
    run_search(spec)
    run_cube(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # a type with few pure cells in this small area
        return spec, run_samples(spec)
