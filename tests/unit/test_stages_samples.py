"""The sample table: cell areas, rows per cell and quarter, per-cell purity, the stratified blocked split."""

from __future__ import annotations

import doctest
import math
import warnings

import numpy as np
import pandas as pd
import pyproj
import pytest
import xarray as xr
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from odc.geo.geobox import GeoBox

import gppscale.stages.samples as samples_mod
from gppscale.config import PuritySpec, SplitSpec
from gppscale.errors import DataWarning, SpecError
from gppscale.stages.aggregate import aggregate_stats
from gppscale.stages.quarters import Quarter
from gppscale.stages.samples import cell_area_px, cells_table, flag_samples, type_counts

SIN = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"
MODIS = 463.312716525
X0, Y0 = -20015109.354, 10007554.677
Q = [Quarter(2021, 1), Quarter(2021, 2)]


def test_doctests() -> None:
    assert doctest.testmod(samples_mod).failed == 0


# --- cell_area_px ------------------------------------------------------------------------------------


def test_cell_area_same_crs_by_hand() -> None:
    fine = GeoBox((10, 10), Affine(30, 0, 0, 0, -30, 300), "EPSG:32650")
    coarse = GeoBox((2, 3), Affine(45, 0, 0, 0, -75, 300), "EPSG:32650")
    assert cell_area_px(fine, coarse) == pytest.approx(np.full((2, 3), 45 * 75 / 900))


def test_cell_area_sinusoidal_cell_in_utm_by_hand() -> None:
    # A MODIS cell near 42 N 117.2 E. Sinusoidal is equal-area on its sphere (R = 6371007.181 m), so the
    # cell holds 463.3127² m² of the sphere. On WGS84 the same lon/lat patch is larger by M·N/R² (the
    # ellipsoid's area element over the sphere's), and UTM zone 50 scales areas by k², with the point
    # scale k = 0.9996 (1 + Δλ² cos²φ (1 + η²) / 2) to second order. One 30 m pixel is 900 m².
    to_sin = pyproj.Transformer.from_crs("EPSG:4326", SIN, always_xy=True)
    x, y = to_sin.transform(117.2, 42.0)
    col, row = math.floor((x - X0) / MODIS), math.floor((Y0 - y) / MODIS)
    coarse = GeoBox((1, 1), Affine(MODIS, 0, X0 + col * MODIS, 0, -MODIS, Y0 - row * MODIS), SIN)
    fine = GeoBox((10, 10), Affine(30, 0, 500000, 0, -30, 4650000), "EPSG:32650")
    lon, lat = to_sin.transform(X0 + (col + 0.5) * MODIS, Y0 - (row + 0.5) * MODIS, direction="INVERSE")
    phi, a, e2 = math.radians(lat), 6378137.0, 0.00669437999014
    w = math.sqrt(1 - e2 * math.sin(phi) ** 2)
    n, m = a / w, a * (1 - e2) / w**3
    eta2 = e2 / (1 - e2) * math.cos(phi) ** 2
    k = 0.9996 * (1 + math.radians(lon - 117) ** 2 * math.cos(phi) ** 2 / 2 * (1 + eta2))
    expected = MODIS**2 * m * n / 6371007.181**2 * k**2 / 900
    assert 238.6 < expected < 238.8
    assert cell_area_px(fine, coarse)[0, 0] == pytest.approx(expected, rel=1e-6)


# --- cells_table -------------------------------------------------------------------------------------


def _grids() -> tuple[GeoBox, GeoBox]:
    fine = GeoBox((4, 6), Affine(30, 0, 0, 0, -30, 120), "EPSG:32650")
    coarse = GeoBox((2, 3), Affine(60, 0, 0, 0, -60, 120), "EPSG:32650")  # 2 x 2 fine pixels per cell
    return fine, coarse


def _fine_data() -> xr.Dataset:
    ndvi = np.array(
        [
            [
                [0.2, 0.4, 0.5, 0.5, 0.1, 0.1],
                [0.2, 0.4, 0.5, 0.5, 0.1, 0.1],
                [0.6, 0.6, 0.3, 0.3, 0.7, np.nan],
                [0.6, 0.6, 0.3, 0.3, 0.7, 0.7],
            ],
            np.full((4, 6), 0.5),
        ],
        np.float32,
    )
    types = np.array(
        [[1, 1, 4, 4, 0, 0], [1, 1, 4, 4, 0, 0], [2, 2, 4, 1, 255, 255], [2, 2, 4, 4, 255, 255]], np.uint8
    )
    return xr.Dataset(
        {
            "ndvi": (("time", "y", "x"), ndvi),
            "elevation": (("y", "x"), np.arange(24, dtype=np.float32).reshape(4, 6)),
            "forest_type": (("y", "x"), types),
        },
        coords={"time": np.array([q.start for q in Q], "datetime64[ns]")},
    )


def test_cells_table_rows_columns_and_values_by_hand() -> None:
    fine, coarse = _grids()
    stats = aggregate_stats(_fine_data(), fine, coarse, supersample=1)
    gpp = xr.DataArray(np.arange(12, dtype=np.float32).reshape(2, 2, 3), dims=("time", "cy", "cx"))
    table = cells_table(stats, {"gpp": gpp}, Q, fine, coarse)
    # Cell (1, 2) has only fill types (255): no typed pixel, no row. 5 cells x 2 quarters.
    assert len(table) == 10
    assert table.cell.tolist() == [0, 1, 2, 3, 4] * 2
    assert table.quarter.tolist() == ["2021Q1"] * 5 + ["2021Q2"] * 5
    first = table.iloc[0]  # cell (0, 0): four ENF pixels, NDVI 0.2 0.4 0.2 0.4
    assert (first.forest_type, first.type_fraction, first.coverage) == ("ENF", 1.0, 1.0)
    assert first.ndvi == pytest.approx(0.3)
    assert first.ndvi_cv == pytest.approx(0.1 / 0.3, rel=1e-5)
    assert first.elevation == pytest.approx((0 + 1 + 6 + 7) / 4)
    assert first.gpp == 0.0
    mixed = table.iloc[4]  # cell (1, 1): DNF, ENF, DNF, DNF
    assert (mixed.forest_type, mixed.type_fraction) == ("DNF", 0.75)
    assert table.iloc[9].gpp == 10.0  # quarter 2, cell (1, 1) = flat index 4 of the 2 x 3 labels + 6
    assert table.iloc[5].ndvi_cv == pytest.approx(0.0)  # a uniform NDVI in quarter 2
    assert table[["row", "col"]].iloc[4].tolist() == [1, 1]


def test_cells_table_coverage_of_an_edge_cell() -> None:
    fine = GeoBox((2, 3), Affine(30, 0, 0, 0, -30, 60), "EPSG:32650")
    coarse = GeoBox((1, 2), Affine(60, 0, 0, 0, -60, 60), "EPSG:32650")  # cell 1 is half outside
    ds = xr.Dataset(
        {
            "ndvi": (("time", "y", "x"), np.full((1, 2, 3), 0.5, np.float32)),
            "forest_type": (("y", "x"), np.ones((2, 3), np.uint8)),
        }
    )
    stats = aggregate_stats(ds, fine, coarse, supersample=2)
    label = xr.DataArray(np.ones((1, 1, 2), np.float32), dims=("time", "cy", "cx"))
    table = cells_table(stats, {"gpp": label}, Q[:1], fine, coarse)
    assert table.coverage.tolist() == [1.0, 0.5]


def test_cells_table_rejects_a_label_on_another_grid() -> None:
    fine, coarse = _grids()
    stats = aggregate_stats(_fine_data(), fine, coarse, supersample=1)
    wrong = xr.DataArray(np.zeros((2, 3, 3), np.float32), dims=("time", "cy", "cx"))
    with pytest.raises(SpecError, match="label 'gpp' has shape"):
        cells_table(stats, {"gpp": wrong}, Q, fine, coarse)
    with pytest.raises(SpecError, match="2 time steps in the statistics, 1 quarters"):
        cells_table(stats, {}, Q[:1], fine, coarse)


# --- flag_samples ------------------------------------------------------------------------------------


def _table(n_cells: int, seed: int, types: tuple[str, ...] = ("ENF", "DBF", "non-forest")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    side = math.ceil(math.sqrt(n_cells))
    cells = pd.DataFrame(
        {
            "cell": np.arange(n_cells),
            "row": np.arange(n_cells) // side,
            "col": np.arange(n_cells) % side,
            "forest_type": rng.choice(list(types), n_cells),
            "type_fraction": rng.uniform(0.5, 1.0, n_cells).round(2),
            "coverage": np.where(rng.uniform(size=n_cells) < 0.1, 0.5, 1.0),
        }
    )
    rows = [cells.assign(quarter=f"2021Q{q}", ndvi_cv=rng.uniform(0, 0.5, n_cells)) for q in (1, 2, 3)]
    table = pd.concat(rows, ignore_index=True)
    table.loc[rng.uniform(size=len(table)) < 0.05, "ndvi_cv"] = np.nan
    return table


@settings(max_examples=30, deadline=None)
@given(
    n_cells=st.integers(1, 120),
    seed=st.integers(0, 10_000),
    fraction=st.sampled_from([0.1, 0.3, 0.5, 1.0]),
    min_type_fraction=st.sampled_from([0.5, 0.7, 0.9]),
)
def test_exactly_ceil_fraction_of_candidate_cells_per_type(
    n_cells: int, seed: int, fraction: float, min_type_fraction: float
) -> None:
    table = _table(n_cells, seed)
    purity = PuritySpec.model_validate(
        {"*": {"fraction": fraction, "min_type_fraction": min_type_fraction, "min_cells": 1}}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        flagged, reports = flag_samples(table, purity, ["ENF", "DBF"], SplitSpec(block_cells=2))
    cells = flagged.groupby("cell").agg(
        forest_type=("forest_type", "first"),
        type_fraction=("type_fraction", "first"),
        coverage=("coverage", "first"),
        cv=("ndvi_cv", "mean"),
        pure=("pure", "first"),
        pure_all=("pure", "all"),
        pure_any=("pure", "any"),
        test_all=("test", "all"),
        test_any=("test", "any"),
    )
    assert (cells.pure_all == cells.pure_any).all()  # a cell's quarters agree
    assert (cells.test_all == cells.test_any).all()  # a cell is never both train and test
    for report in reports:
        kind = cells[cells.forest_type == report.forest_type]
        candidates = kind[
            (kind.type_fraction >= report.min_type_fraction) & (kind.coverage >= 0.95) & kind.cv.notna()
        ]
        assert report.candidates == len(candidates)
        if report.action == "ok":
            want = math.ceil(round(fraction * len(candidates), 9))
            assert report.selected == want == int(kind.pure.sum())
            # the selected ones have the lowest quarter-mean CV among the candidates
            if 0 < want < len(candidates):
                assert candidates[candidates.pure].cv.max() <= candidates[~candidates.pure].cv.min()
    assert not cells[cells.forest_type == "non-forest"].pure.any()
    assert not cells[cells.coverage < 0.95].pure.any()


def test_split_by_blocks_within_each_stratum() -> None:
    # An 8 x 8 grid of DNF cells, all candidates; half of them pure by CV (left half low CV).
    n = 64
    table = pd.DataFrame(
        {
            "cell": np.arange(n),
            "row": np.arange(n) // 8,
            "col": np.arange(n) % 8,
            "forest_type": "DNF",
            "type_fraction": 1.0,
            "coverage": 1.0,
            "ndvi_cv": np.where(np.arange(n) % 8 < 4, 0.05, 0.3) + np.arange(n) * 1e-4,
        }
    )
    purity = PuritySpec.model_validate({"*": {"fraction": 0.5, "min_cells": 1}})
    flagged, (report,) = flag_samples(table, purity, ["DNF"], SplitSpec(block_cells=2, test_fraction=0.25))
    assert report.selected == 32
    assert flagged.pure.to_numpy().reshape(8, 8)[:, :4].all()
    test = flagged.test.to_numpy().reshape(8, 8)
    blocks = test.reshape(4, 2, 4, 2).transpose(0, 2, 1, 3).reshape(16, 4)
    assert (blocks.all(axis=1) | ~blocks.any(axis=1)).all()  # 2 x 2 blocks are wholly test or train
    assert test[:, :4].sum() == 8 and test[:, 4:].sum() == 8  # 2 of 8 blocks in each stratum
    counts = type_counts(flagged)["DNF"]
    assert counts == {"cells": 64, "pure": 32, "train": 24, "test": 8}


def test_flag_samples_is_deterministic_and_checks_columns() -> None:
    table = _table(50, seed=3)
    purity = PuritySpec.model_validate({"*": {"fraction": 0.3, "min_cells": 1}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        a, _ = flag_samples(table, purity, ["ENF"], SplitSpec(seed=7, block_cells=2))
        b, _ = flag_samples(
            table.sample(frac=1.0, random_state=1), purity, ["ENF"], SplitSpec(seed=7, block_cells=2)
        )
    b = b.sort_index()
    assert (a.pure == b.pure).all() and (a.test == b.test).all()
    with pytest.raises(SpecError, match=r"lacks columns \['coverage'\]"):
        flag_samples(table.drop(columns="coverage"), purity, ["ENF"], SplitSpec())


def test_too_few_pure_cells_warn_with_counts() -> None:
    table = _table(12, seed=1, types=("MF",))
    purity = PuritySpec.model_validate({"*": {"min_cells": 50, "fallback": "skip"}})
    with pytest.warns(DataWarning, match=r"purity of MF: \d+ candidate cells .* MF is skipped"):
        flagged, (report,) = flag_samples(table, purity, ["MF"], SplitSpec(block_cells=1))
    assert report.action == "skipped" and not flagged.pure.any()
