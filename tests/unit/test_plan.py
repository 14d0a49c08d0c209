"""The plan stage: the target GeoBox is the snapped UTM grid that covers the area."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Transformer
from shapely.geometry import box

from gppscale.config import parse_spec
from gppscale.plan import plan_run, target_geobox
from gppscale.world.grids import snapped_utm_grid
from gppscale.world.presets import PRESETS


def _spec(bbox: list[float], **extra: object) -> dict[str, object]:
    return {
        "name": "t",
        "area": {"bbox": bbox},
        "years": [2021],
        "catalog": {"url": "https://example.com/stac"},
        "output": {"store": "s3://bucket/run"},
        **extra,
    }


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_auto_grid_equals_world_grid(preset: str) -> None:
    # The world writes its truth on its own snapped grid; the run's auto grid must be the same pixels.
    bbox = PRESETS[preset].bbox_lonlat
    plan = plan_run(parse_spec(_spec(list(bbox))))
    world = snapped_utm_grid(bbox, 30.0, plan.epsg)
    t = plan.geobox.transform
    assert (t.c, t.f, t.a, t.e) == (world.x0, world.y0, 30.0, -30.0)
    assert (plan.geobox.shape.x, plan.geobox.shape.y) == (world.width, world.height)


@settings(max_examples=40, deadline=None)
@given(
    lon=st.floats(-179.0, 178.0),
    lat=st.floats(-60.0, 60.0),
    w=st.floats(0.01, 0.8),
    h=st.floats(0.01, 0.8),
)
def test_geobox_covers_area_and_is_snapped(lon: float, lat: float, w: float, h: float) -> None:
    area = box(lon, lat, lon + w, lat + h)
    epsg = (
        32600 + int((lon + w / 2 + 180) // 6) + 1 if lat >= 0 else 32700 + int((lon + w / 2 + 180) // 6) + 1
    )
    gbox = target_geobox(area, epsg, 30.0)
    t = gbox.transform
    assert t.c % 30.0 == 0 and t.f % 30.0 == 0
    pts = np.asarray(area.boundary.segmentize(0.0005).coords)
    x, y = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(pts[:, 0], pts[:, 1])
    x1, y0 = t.c + 30.0 * gbox.shape.x, t.f - 30.0 * gbox.shape.y
    # covers the outline (1 cm slack for densification), and no edge row or column could be dropped
    assert t.c - 0.01 <= x.min() < t.c + 30.0 and x1 - 30.0 < x.max() <= x1 + 0.01
    assert y0 - 0.01 <= y.min() < y0 + 30.0 and t.f - 30.0 < y.max() <= t.f + 0.01


def test_small_world_grid_matches_plan(small_world: Path) -> None:
    meta = json.loads((small_world / "world.json").read_text())
    plan = plan_run(parse_spec(_spec(meta["bbox_lonlat"])))
    grid = meta["grid"]
    t = plan.geobox.transform
    assert grid["crs"] == f"EPSG:{plan.epsg}"
    assert (t.c, t.f, plan.geobox.shape.x, plan.geobox.shape.y) == (
        grid["x0"],
        grid["y0"],
        grid["width"],
        grid["height"],
    )


def test_plan_quarters_and_chunks() -> None:
    plan = plan_run(
        parse_spec(_spec([117.15, 42.06, 117.24, 42.13], quarters=[2, 3], grid={"chunk_px": 128}))
    )
    assert [q.label for q in plan.quarters] == ["2021Q2", "2021Q3"]
    assert plan.chunks_yx == (3, 2)  # 261 rows, 250 columns in 128-px chunks
