"""Search-stage rules that need no server: item screening, windows, scale/offset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gppscale.errors import CatalogError
from gppscale.io.cube import scale_offset_of, window_of
from gppscale.io.freeze import item_problems


def _item(**props: object) -> dict[str, object]:
    return {
        "id": "LC08_x",
        "properties": {
            "proj:code": "EPSG:32650",
            "proj:shape": [2, 2],
            "proj:transform": [30, 0, 0, 0, -30, 0],
        }
        | props,
        "assets": {
            "red": {"href": "s3://bucket/red.tif", "raster:bands": [{"scale": 2.75e-5, "offset": -0.2}]},
            "qa_pixel": {"href": "https://host/qa.tif"},
        },
    }


def test_complete_item_has_no_problems() -> None:
    assert item_problems(_item(), {"red": "red", "qa_pixel": "qa_pixel"}) == []


def test_missing_asset_and_projection_are_named() -> None:
    item = _item()
    item["properties"] = {"datetime": "2021-01-01T00:00:00Z"}
    problems = item_problems(item, {"red": "red", "nir08": "nir08"})
    assert ("nir08", "asset missing") in problems
    assert ("red", "no CRS (proj:code, proj:epsg, proj:wkt2 or proj:projjson)") in problems
    assert ("red", "no proj:shape/proj:transform") in problems


def test_projection_on_the_asset_counts() -> None:
    item = _item()
    item["properties"] = {}
    item["assets"] = {
        "data": {
            "href": "file:///x.tif",
            "proj:wkt2": "PROJCRS[...]",
            "proj:shape": [1, 1],
            "proj:transform": [1, 0, 0, 0, -1, 0],
        }
    }
    assert item_problems(item, {"data": "data"}) == []


@pytest.mark.parametrize(
    ("props", "start", "end"),
    [
        # GLASS-style inclusive end at 23:59:59: 8 days, Jan 1 .. Jan 8 inclusive
        (
            {"start_datetime": "2021-01-01T00:00:00Z", "end_datetime": "2021-01-08T23:59:59Z"},
            "2021-01-01",
            "2021-01-09",
        ),
        # an end at midnight is exclusive
        (
            {"start_datetime": "2021-01-01T00:00:00Z", "end_datetime": "2021-01-09T00:00:00Z"},
            "2021-01-01",
            "2021-01-09",
        ),
        # an instant is one day
        ({"datetime": "2021-03-31T10:30:00Z"}, "2021-03-31", "2021-04-01"),
    ],
)
def test_window_of(props: dict[str, str], start: str, end: str) -> None:
    assert window_of({"properties": props}) == (np.datetime64(start), np.datetime64(end))


def test_scale_offset_agrees_or_fails() -> None:
    a, b = _item(), _item()
    assert scale_offset_of([a, b], "red", "landsat") == (2.75e-5, -0.2)
    assert scale_offset_of([a], "qa_pixel", "landsat") == (1.0, 0.0)
    b["id"] = "LC08_y"
    b["assets"]["red"]["raster:bands"] = [{"scale": 1e-4, "offset": 0.0}]  # type: ignore[index]
    with pytest.raises(CatalogError, match=r"LC08_x.*LC08_y"):
        scale_offset_of([a, b], "red", "landsat")


def test_planetary_computer_signing_names_the_extra() -> None:
    from gppscale.errors import MissingDependencyError
    from gppscale.io.access import resolve_patch_url

    assert resolve_patch_url("none") is None
    try:
        import planetary_computer  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match=r"gppscale\[pc\]"):
            resolve_patch_url("planetary-computer")
    else:
        assert callable(resolve_patch_url("planetary-computer"))


def test_href_checks(tmp_path: Path) -> None:
    from gppscale.io.access import missing_hrefs

    real = tmp_path / "a.tif"
    real.write_bytes(b"x")
    assert missing_hrefs([real.as_uri(), (tmp_path / "b.tif").as_uri(), "ftp://x/y"]) == {
        (tmp_path / "b.tif").as_uri(),
        "ftp://x/y",
    }
