"""Validation figures and the self-contained report (gppscale.io.report)."""

from __future__ import annotations

import base64
import doctest
import io
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

import gppscale.io.report as report_mod
from gppscale.errors import SpecError
from gppscale.io.report import (
    PNG_SIGNATURE,
    maps_figure,
    md_to_html,
    scatter_figure,
    timeseries_figure,
    write_report,
)
from gppscale.io.store import RunStore


def _check_png(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_SIGNATURE
    Image.open(io.BytesIO(png)).verify()
    with Image.open(io.BytesIO(png)) as im:  # verify() leaves the image unusable; reopen to inspect
        assert im.format == "PNG"
        assert im.mode in {"RGB", "RGBA"}
        assert im.width > 100 and im.height > 100
        assert 100 <= round(im.info["dpi"][0]) <= 150
        return im.size


def _grey_share(png: bytes) -> float:
    """Share of pixels that are exactly the NaN grey (#d9d9d9)."""
    with Image.open(io.BytesIO(png)) as im:
        a = np.asarray(im.convert("RGB"))
    return float(np.all(a == (0xD9, 0xD9, 0xD9), axis=-1).mean())


def _series_table() -> pd.DataFrame:
    quarters = [f"{y}Q{q}" for y in (2020, 2021) for q in (1, 2, 3, 4)]
    rng = np.random.default_rng(0)
    rows = [
        {
            "quarter": q,
            "forest_type": ft,
            "coarse": v,
            "downscaled": v * 1.1,
            "reference": v * 0.9,
            "truth": v,
        }
        for ft in ("MF", "ENF", "DBF")
        for q, v in zip(quarters, rng.uniform(50, 600, len(quarters)), strict=True)
    ]
    return pd.DataFrame(rows)


def test_doctests() -> None:
    assert doctest.testmod(report_mod).failed == 0


def test_maps_figure_numpy_and_xarray_with_nan() -> None:
    rng = np.random.default_rng(1)
    coarse = rng.uniform(100, 500, (8, 8))
    fine = np.repeat(np.repeat(coarse, 16, axis=0), 16, axis=1)
    fine[:40, :40] = np.nan
    _check_png(maps_figure(coarse, fine, "GPP 2021Q2"))
    da = xr.DataArray(
        fine, dims=("y", "x"), coords={"y": 4e6 - 30.0 * np.arange(128), "x": 5e5 + 30.0 * np.arange(128)}
    )
    png = maps_figure(xr.DataArray(coarse, dims=("y", "x")), da, "GPP 2021Q2")
    _check_png(png)
    assert _grey_share(png) > 0.005  # the NaN block is drawn grey


def test_maps_figure_thins_large_maps() -> None:
    fine = np.ones((2500, 30), dtype="float32")
    values, extent = report_mod._thin_map(fine, "fine")
    assert values.shape == (834, 10) and extent is None
    _check_png(maps_figure(np.ones((3, 3)), fine, "big"))


def test_maps_figure_all_nan_says_no_data() -> None:
    png = maps_figure(np.full((4, 4), np.nan), np.full((8, 8), np.nan), "empty")
    _check_png(png)
    with Image.open(io.BytesIO(png)) as im:  # two empty panels with a note, no colour bar
        assert float(np.all(np.asarray(im.convert("RGB")) == 255, axis=-1).mean()) > 0.9
    assert png == maps_figure(np.full((4, 4), np.nan), np.full((8, 8), np.nan), "empty")  # deterministic


def test_maps_figure_rejects_non_2d() -> None:
    with pytest.raises(SpecError, match=r"shape \(2, 4, 4\).*2-D"):
        maps_figure(np.ones((2, 4, 4)), np.ones((4, 4)), "bad")


@pytest.mark.parametrize("n", [300, 6000])
def test_scatter_figure_points_and_hexbin(n: int) -> None:
    rng = np.random.default_rng(2)
    obs = rng.uniform(0, 800, n)
    pred = obs + rng.normal(0, 40, n)
    pred[:5] = np.nan
    _check_png(scatter_figure(pred, obs, title="towers", label_pred="downscaled", label_obs="tower"))


def test_scatter_figure_given_scores_and_determinism() -> None:
    obs = np.linspace(0, 10, 50)
    scores = {"r2": 0.5, "rmse": 1.0, "md": -0.2, "n": 50}
    a = scatter_figure(obs, obs, title="t", label_pred="p", label_obs="o", scores=scores)
    b = scatter_figure(obs, obs, title="t", label_pred="p", label_obs="o", scores=scores)
    _check_png(a)
    assert a == b
    assert a != scatter_figure(obs, obs, title="t", label_pred="p", label_obs="o")
    assert report_mod._score_text(scores) == "R² = 0.500\nRMSE = 1\nMD = -0.2\nN = 50"
    assert "R² = n/a" in report_mod._score_text({"r2": float("nan"), "n": 1})


@pytest.mark.parametrize("pred", [np.array([]), np.full(10, np.nan)])
def test_scatter_figure_no_data(pred: np.ndarray) -> None:
    _check_png(scatter_figure(pred, np.ones_like(pred), title="t", label_pred="p", label_obs="o"))


def test_scatter_figure_rejects_shape_mismatch() -> None:
    with pytest.raises(SpecError, match="must match"):
        scatter_figure(np.ones(3), np.ones(4), title="t", label_pred="p", label_obs="o")


def test_timeseries_figure() -> None:
    table = _series_table()
    table.loc[3, "reference"] = np.nan  # a gap
    _, h = _check_png(timeseries_figure(table, title="GPP by forest type"))
    assert h > 500  # three forest types: two rows of panels
    assert report_mod._forest_types(table) == ["ENF", "DBF", "MF"]
    one = table[table["forest_type"] == "ENF"].iloc[::-1]  # unordered rows are sorted by quarter
    _check_png(timeseries_figure(one, title="ENF"))


def test_timeseries_figure_no_data_and_errors() -> None:
    empty = pd.DataFrame(
        {"quarter": pd.Series([], dtype=str), "forest_type": pd.Series([], dtype=str), "truth": []}
    )
    _check_png(timeseries_figure(empty, title="empty"))
    nan_only = _series_table().assign(coarse=np.nan, downscaled=np.nan, reference=np.nan, truth=np.nan)
    _check_png(timeseries_figure(nan_only, title="nan"))
    with pytest.raises(SpecError, match="forest_type"):
        timeseries_figure(pd.DataFrame({"quarter": ["2021Q1"], "truth": [1.0]}), title="t")
    with pytest.raises(SpecError, match="no numeric source"):
        timeseries_figure(pd.DataFrame({"quarter": ["2021Q1"], "forest_type": ["ENF"]}), title="t")


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.refs += [(tag, k, v or "") for k, v in attrs if k in {"src", "href", "srcset", "action", "data"}]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_write_report(tmp_path) -> None:
    store = RunStore(str(tmp_path / "run"))
    scores = pd.DataFrame(
        {"r2": [0.81, np.nan], "rmse": [41.234567, 50.0], "n": [120, 3]},
        index=pd.Index(["ENF", "DBF"], name="forest_type"),
    )
    evil = pd.DataFrame({"site": ["<script>alert(1)</script>", "a|b & c"], "gpp": [1.5, 2.0]})
    series = _series_table()
    tables = {"scores": scores, "sites": evil, "series": series}
    obs = np.linspace(0, 100, 40)
    figures = {
        "maps": maps_figure(np.ones((4, 4)), np.ones((16, 16)), "maps"),
        "scatter": scatter_figure(obs, obs + 1, title="s", label_pred="p", label_obs="o"),
        "timeseries": timeseries_figure(series, title="ts"),
    }
    summary = (
        "## Result\n\nDownscaled **R²** 0.81 at `ENF` towers; see [docs](https://example.org).\n\n"
        "- one\n- two"
    )
    out = write_report(store, title="Validation <run>", summary_md=summary, tables=tables, figures=figures)

    base = tmp_path / "run" / "validation"
    expected = {
        "report.md",
        "report.html",
        *(f"figures/{n}.png" for n in figures),
        *(f"{n}.csv" for n in tables),
    }
    assert set(out) == expected
    for rel, url in out.items():
        assert url == str(base / rel)
        assert (base / rel).stat().st_size > 0
    for name, png in figures.items():
        assert (base / "figures" / f"{name}.png").read_bytes() == png

    # CSVs round-trip; a named index becomes a leading column.
    back = pd.read_csv(base / "scores.csv").set_index("forest_type")
    pd.testing.assert_frame_equal(back, scores)
    pd.testing.assert_frame_equal(pd.read_csv(base / "sites.csv"), evil)
    pd.testing.assert_frame_equal(pd.read_csv(base / "series.csv"), series)

    md = (base / "report.md").read_text()
    assert md.startswith("# Validation <run>\n\n## Result")
    for name in tables:
        assert f"## {name}" in md and f"]({name}.csv)" in md
    for name in figures:
        assert f"](figures/{name}.png)" in md
    assert "| forest_type | r2 | rmse | n |" in md and "| ENF | 0.81 | 41.23 | 120 |" in md
    assert "<script>" not in md and "&lt;script&gt;" in md and "a\\|b &amp; c" in md

    text = (base / "report.html").read_text()
    parser = _Collector()
    parser.feed(text)
    parser.close()
    assert parser.refs and all(v.startswith(("data:", "#")) for _, _, v in parser.refs), parser.refs
    assert "http://" not in text and "https://" not in text
    assert "script" not in parser.tags and "link" not in parser.tags
    assert "<script>alert(1)</script>" in "".join(parser.text)  # shown as text, not run
    assert parser.tags.count("table") == len(tables) and parser.tags.count("img") == len(figures)
    anchors = {v[1:] for tag, k, v in parser.refs if k == "href"}
    assert anchors == {"summary", *(f"fig-{n}" for n in figures), *(f"table-{n}" for n in tables)}
    for tag in anchors:
        assert f'id="{tag}"' in text
    for png in figures.values():
        assert text.count("data:image/png;base64," + base64.b64encode(png).decode()) == 1
    assert "[docs](https://example.org)" in "".join(parser.text)  # link shown as text, not live
    assert "<strong>R²</strong>" in text and "<code>ENF</code>" in text and "<li>one</li>" in text


def test_write_report_rejects_bad_names_and_bytes(tmp_path) -> None:
    store = RunStore(str(tmp_path / "run"))
    with pytest.raises(SpecError, match="cannot be a file name"):
        write_report(store, title="t", summary_md="", tables={"../x": pd.DataFrame()}, figures={})
    with pytest.raises(SpecError, match="not PNG bytes"):
        write_report(store, title="t", summary_md="", tables={}, figures={"f": b"GIF89a"})
    assert not (tmp_path / "run").exists()  # nothing written before the inputs are checked


def test_md_to_html_escapes_and_renders_subset() -> None:
    got = md_to_html("# T\npara one\npara two\n\n* a\n- <img src=x>\n\n[l](http://x)")
    assert got == (
        "<h2>T</h2>\n<p>para one para two</p>\n<ul><li>a</li><li>&lt;img src=x&gt;</li></ul>\n"
        "<p>[l](http&#58;//x)</p>"
    )
