"""Fine→coarse area weights and the aggregation kernels/wrappers, against hand values and NumPy loops."""

from __future__ import annotations

import math

import dask.array as dsa
import numpy as np
import pytest
import scipy.sparse
import xarray as xr
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from odc.geo.geobox import GeoBox
from pyproj import Transformer
from shapely.geometry import Polygon, box
from shapely.ops import transform as shapely_transform

from gppscale.errors import SpecError
from gppscale.stages.aggregate import (
    aggregate_chunk,
    aggregate_mean,
    aggregate_stats,
    fine_to_coarse_chunk,
)

# MODIS sinusoidal as GLASS/MODIS files carry it: WKT on a sphere, no EPSG code.
SIN_WKT = (
    'PROJCS["unnamed",GEOGCS["Unknown datum based upon the custom spheroid",'
    'DATUM["Not specified (based on custom spheroid)",SPHEROID["Custom spheroid",6371007.181,0]],'
    'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Sinusoidal"],'
    'PARAMETER["longitude_of_center",0],PARAMETER["false_easting",0],PARAMETER["false_northing",0],'
    'UNIT["Meter",1]]'
)
R_SPHERE = 6371007.181
CELL = 463.312716525
X0, Y0 = -20015109.354, 10007554.677  # upper-left corner of the global MODIS grid (h00v00)
UTM50 = "EPSG:32650"
NATIVE_SIN = GeoBox((21600, 86400), Affine(CELL, 0, X0, 0, -CELL, Y0), SIN_WKT)


def utm_grid(ny: int, nx: int, x0: float = 515010.0, y1: float = 4684500.0) -> GeoBox:
    return GeoBox((ny, nx), Affine(30.0, 0.0, x0, 0.0, -30.0, y1), UTM50)


def window_over(fine: GeoBox, native: GeoBox, margin: int = 1) -> GeoBox:
    """The window of ``native`` (any CRS, any affine) covering ``fine``, plus ``margin`` cells."""
    ny, nx = fine.shape
    t = np.linspace(0, 1, 41)
    cols = np.concatenate([t * nx, np.full_like(t, nx), t * nx, np.zeros_like(t)])
    rows = np.concatenate([np.zeros_like(t), t * ny, np.full_like(t, ny), t * ny])
    xs, ys = fine.transform * (cols, rows)
    to_native = Transformer.from_crs(fine.crs.to_wkt(), native.crs.to_wkt(), always_xy=True)
    cc, rr = ~native.transform * to_native.transform(xs, ys)
    c0, r0 = math.floor(np.min(cc)) - margin, math.floor(np.min(rr)) - margin
    c1, r1 = math.ceil(np.max(cc)) + margin, math.ceil(np.max(rr)) + margin
    return GeoBox((r1 - r0, c1 - c0), native.transform * Affine.translation(c0, r0), native.crs)


def whole(fine: GeoBox, coarse: GeoBox, s: int = 5) -> scipy.sparse.csr_matrix:
    return fine_to_coarse_chunk(fine, coarse, slice(None), slice(None), s)


def chunked_dense(fine: GeoBox, coarse: GeoBox, ys: list[int], xs: list[int], s: int) -> np.ndarray:
    """The operator assembled from chunks, columns in the whole grid's row-major order."""
    ny, nx = fine.shape
    out = np.zeros((coarse.shape.y * coarse.shape.x, ny * nx))
    index = np.arange(ny * nx).reshape(ny, nx)
    for y0, y1 in zip([0, *np.cumsum(ys)[:-1]], np.cumsum(ys), strict=True):
        for x0, x1 in zip([0, *np.cumsum(xs)[:-1]], np.cumsum(xs), strict=True):
            w = fine_to_coarse_chunk(fine, coarse, slice(y0, y1), slice(x0, x1), s)
            assert w.shape == (coarse.shape.y * coarse.shape.x, (y1 - y0) * (x1 - x0))
            out[:, index[y0:y1, x0:x1].ravel()] = w.toarray()
    return out


def split(n: int, sizes: list[int]) -> list[int]:
    """Chunk sizes covering n from a list of drawn sizes (cycled), the last one cut."""
    out, i = [], 0
    while sum(out) < n:
        out.append(min(sizes[i % len(sizes)], n - sum(out)))
        i += 1
    return out


# --- weights ---------------------------------------------------------------------------------------


def test_weights_split_by_hand() -> None:
    # Fine 1x3 pixels of 30 m from x = 0; coarse cells 45 m wide and 30 m tall. With s = 2 the sub-points
    # of the middle pixel lie at x = 37.5 and 52.5: one on each side of the edge at 45 m → 0.5 / 0.5.
    fine = GeoBox((1, 3), Affine(30, 0, 0, 0, -30, 30), UTM50)
    coarse = GeoBox((1, 2), Affine(45, 0, 0, 0, -30, 30), UTM50)
    w = fine_to_coarse_chunk(fine, coarse, slice(None), slice(None), supersample=2)
    assert isinstance(w, scipy.sparse.csr_matrix)
    np.testing.assert_array_equal(w.toarray(), [[1.0, 0.5, 0.0], [0.0, 0.5, 1.0]])


def test_weights_aligned_two_by_two() -> None:
    # 2x2 fine pixels, coarse 1x2 cells of 30 m wide x 60 m tall: left column → cell 0, right → cell 1.
    fine = GeoBox((2, 2), Affine(30, 0, 0, 0, -30, 60), UTM50)
    coarse = GeoBox((1, 2), Affine(30, 0, 0, 0, -60, 60), UTM50)
    w = whole(fine, coarse, s=2).toarray()
    np.testing.assert_array_equal(w, [[1, 0, 1, 0], [0, 1, 0, 1]])


def test_columns_sum_to_one_inside_and_less_at_the_coarse_edge() -> None:
    fine = utm_grid(60, 50)
    coarse = window_over(fine, NATIVE_SIN)
    np.testing.assert_allclose(np.asarray(whole(fine, coarse).sum(axis=0)).ravel(), 1.0, rtol=0, atol=1e-12)
    # Cut the coarse window: its edges now cross the fine grid.
    cut = coarse[1:-2, 2:-1]
    col = np.asarray(whole(fine, cut).sum(axis=0)).ravel().reshape(fine.shape)
    assert np.all(col <= 1.0 + 1e-12) and np.all(col >= 0)
    assert (col < 1).any() and (col == 0).any()
    # A fine pixel's four corners in coarse pixel coordinates: all inside the cut window → weight 1.
    corners = [(0, 0), (1, 0), (0, 1), (1, 1)]
    to_sin = Transformer.from_crs(UTM50, SIN_WKT, always_xy=True)
    rows, cols = np.mgrid[0 : fine.shape.y, 0 : fine.shape.x]
    inside = np.ones(fine.shape, bool)
    for dc, dr in corners:
        cc, rr = ~cut.transform * to_sin.transform(*(fine.transform * (cols + dc, rows + dr)))
        inside &= (cc > 0) & (cc < cut.shape.x) & (rr > 0) & (rr < cut.shape.y)
    assert inside.sum() > 1000
    np.testing.assert_allclose(col[inside], 1.0, atol=1e-12)


def _cell_in_utm(coarse: GeoBox, row: int, col: int) -> Polygon:
    """A coarse cell's outline, densified to 5 m in its CRS, in UTM 50N."""
    corners = [(0, 0), (1, 0), (1, 1), (0, 1)]
    ring = Polygon([coarse.transform * (col + dc, row + dr) for dc, dr in corners]).segmentize(5.0)
    to_utm = Transformer.from_crs(SIN_WKT, UTM50, always_xy=True)
    return shapely_transform(to_utm.transform, ring)


@pytest.mark.parametrize("shear", [0.0, 0.3])
def test_row_sums_are_cell_areas(shear: float) -> None:
    # Fine grid of 2.4 km; a coarse cell wholly inside it has its whole area covered by fine pixels, so
    # its weights add up to its exact area (shapely) / 900 m², up to the supersampling error.
    fine = utm_grid(80, 80)
    native = GeoBox((10, 10), Affine(CELL, shear * CELL, X0, 0, -CELL, Y0), SIN_WKT)
    coarse = window_over(fine, native)
    rows = np.asarray(whole(fine, coarse).sum(axis=1)).ravel().reshape(coarse.shape)
    fine_poly = box(*fine.extent.boundingbox)
    checked = 0
    for r in range(coarse.shape.y):
        for c in range(coarse.shape.x):
            cell = _cell_in_utm(coarse, r, c)
            if fine_poly.contains(cell.buffer(30)):
                assert rows[r, c] == pytest.approx(cell.area / 900.0, rel=0.01), (r, c)
                checked += 1
    assert checked >= 4


def test_point_checked_by_hand_across_sinusoidal_and_utm() -> None:
    # P = (117.2 E, 42.302 N). On the MODIS sphere R = 6371007.181 m:
    #   λ = 117.2° = 2.0455258833 rad, φ = 42.302° = 0.7383091802 rad, cos φ = 0.7396076020
    #   x = R·λ·cos φ = 9 638 610.71 m, y = R·φ = 4 703 773.09 m
    #   col = floor((x - X0) / 463.312716525) = floor((9638610.71 + 20015109.354) / 463.3127)
    #       = floor(64003.68) = 64003
    #   row = floor((Y0 - y) / 463.312716525) = floor((10007554.677 - 4703773.09) / 463.3127)
    #       = floor(11447.52) = 11447
    # P is 0.32 cell (147 m) from the cell's east edge and 0.48 cell from its north one, so the 30 m pixel
    # around it lies wholly in that cell. In UTM 50N, P = (516484.98, 4683327.19) (pyproj), so in the fine
    # grid from (515010, 4684500): col = floor(1474.98 / 30) = 49, row = floor(1172.81 / 30) = 39.
    lam, phi = math.radians(117.2), math.radians(42.302)
    x, y = R_SPHERE * lam * math.cos(phi), R_SPHERE * phi
    assert (x, y) == pytest.approx((9638610.71, 4703773.09), abs=0.01)
    assert (math.floor((x - X0) / CELL), math.floor((Y0 - y) / CELL)) == (64003, 11447)
    fine = utm_grid(80, 80)
    coarse = window_over(fine, NATIVE_SIN)
    r0 = round((Y0 - coarse.transform.f) / CELL)
    c0 = round((coarse.transform.c - X0) / CELL)
    cell = (11447 - r0) * coarse.shape.x + (64003 - c0)
    pixel = 39 * fine.shape.x + 49
    w = whole(fine, coarse).toarray()
    assert w[cell, pixel] == 1.0
    assert w[:, pixel].sum() == 1.0


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(1, 40), min_size=1, max_size=4),
    st.lists(st.integers(1, 37), min_size=1, max_size=4),
    st.sampled_from(["sin", "sin-sheared", "utm-100m"]),
    st.integers(1, 4),
)
def test_chunked_operator_equals_whole(ys: list[int], xs: list[int], kind: str, s: int) -> None:
    fine = utm_grid(40, 37)
    coarse = _coarse_kind(fine, kind)
    expected = whole(fine, coarse, s).toarray()
    got = chunked_dense(fine, coarse, split(40, ys), split(37, xs), s)
    np.testing.assert_array_equal(got, expected)


def _coarse_kind(fine: GeoBox, kind: str) -> GeoBox:
    if kind == "sin":
        return window_over(fine, GeoBox((10, 10), Affine(250.0, 0, X0, 0, -250.0, Y0), SIN_WKT))
    if kind == "sin-sheared":
        return window_over(fine, GeoBox((10, 10), Affine(230.0, 40.0, X0, 10.0, -210.0, Y0), SIN_WKT))
    return window_over(fine, GeoBox((10, 10), Affine(100.0, 0, 500017.0, 0, -100.0, 4690003.0), UTM50), 0)


def test_weights_reject_bad_arguments() -> None:
    fine = utm_grid(4, 4)
    with pytest.raises(SpecError, match="supersample 0"):
        fine_to_coarse_chunk(fine, fine, slice(None), slice(None), supersample=0)
    with pytest.raises(SpecError, match="y_slice"):
        fine_to_coarse_chunk(fine, fine, slice(3, 3), slice(None))
    with pytest.raises(SpecError, match="x_slice"):
        fine_to_coarse_chunk(fine, fine, slice(None), slice(0, 4, 2))


# --- kernel ----------------------------------------------------------------------------------------


def test_aggregate_chunk_ignores_nan_in_sum_and_weight() -> None:
    w = scipy.sparse.csr_matrix(np.array([[1.0, 0.5, 0.0], [0.0, 0.5, 1.0]]))
    values = np.array([[[2.0, 4.0, 8.0]], [[2.0, 4.0, np.nan]]])  # (t=2, y=1, x=3)
    total, weight = aggregate_chunk(w, values)
    # t0: cell 0 = 2 + 0.5·4 = 4 over 1.5; cell 1 = 0.5·4 + 8 = 10 over 1.5. t1: cell 1 loses pixel 2.
    np.testing.assert_array_equal(total, [[4.0, 10.0], [4.0, 2.0]])
    np.testing.assert_array_equal(weight, [[1.5, 1.5], [1.5, 0.5]])
    with pytest.raises(SpecError, match="do not match weights for 3 fine pixels"):
        aggregate_chunk(w, values[:, :, :2])


# --- wrappers --------------------------------------------------------------------------------------


def _da(values: np.ndarray, fine: GeoBox, name: str = "v") -> xr.DataArray:
    dims = ("time", "y", "x") if values.ndim == 3 else ("y", "x")
    coords = {k: c.values for k, c in fine.coords.items()}
    if values.ndim == 3:
        coords["time"] = np.arange(values.shape[0]).astype("datetime64[D]")
    return xr.DataArray(values, dims=dims, coords=coords, name=name)


def test_aggregate_mean_by_hand() -> None:
    # 2x2 fine pixels split 2/2 over two coarse cells (left / right column), s = 2.
    fine = GeoBox((2, 2), Affine(30, 0, 0, 0, -30, 60), UTM50)
    coarse = GeoBox((1, 2), Affine(30, 0, 0, 0, -60, 60), UTM50)
    v = np.array([[[1.0, 10.0], [3.0, np.nan]], [[np.nan, np.nan], [5.0, 20.0]]])
    out = aggregate_mean(_da(v, fine), fine, coarse, supersample=2)
    # t0: left (1 + 3) / 2 = 2, right 10 (NaN skipped); t1: left 5, right 20.
    np.testing.assert_array_equal(out.values, [[[2.0, 10.0]], [[5.0, 20.0]]])
    assert out.dims == ("time", "cy", "cx")
    np.testing.assert_array_equal(out.cx.values, [15.0, 45.0])
    np.testing.assert_array_equal(out.cy.values, [30.0])
    assert out.spatial_ref.attrs["crs_wkt"] == coarse.crs.to_wkt()
    assert out.name == "v"
    # The half-split pixel: 1x3 fine, cells 45 m wide; values 2, 4, NaN → (2 + 0.5·4) / 1.5 and 4.
    fine3 = GeoBox((1, 3), Affine(30, 0, 0, 0, -30, 30), UTM50)
    coarse2 = GeoBox((1, 2), Affine(45, 0, 0, 0, -30, 30), UTM50)
    out = aggregate_mean(_da(np.array([[2.0, 4.0, np.nan]]), fine3), fine3, coarse2, supersample=2)
    np.testing.assert_allclose(out.values, [[8.0 / 3.0, 4.0]], rtol=1e-7)


def _reference(values_tyx: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted sum and weight per coarse cell with plain loops over the fine pixels."""
    t, ny, nx = values_tyx.shape
    total, weight = np.zeros((t, w.shape[0])), np.zeros((t, w.shape[0]))
    for k in range(t):
        for p in range(ny * nx):
            v = values_tyx[k].ravel()[p]
            if np.isfinite(v):
                total[k] += w[:, p] * v
                weight[k] += w[:, p]
    return total, weight


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / b, np.nan)


GRIDS = st.sampled_from(["sin", "sin-sheared", "utm-100m"])


@settings(max_examples=20, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    GRIDS,
    st.lists(st.integers(3, 40), min_size=1, max_size=3),
    st.lists(st.integers(3, 37), min_size=1, max_size=3),
    st.booleans(),
)
def test_aggregate_mean_equals_numpy_reference(
    seed: int, kind: str, ys: list[int], xs: list[int], lazy: bool
) -> None:
    rng = np.random.default_rng(seed)
    fine = utm_grid(40, 37)
    coarse = _coarse_kind(fine, kind)
    v = rng.normal(size=(2, 40, 37))
    v[rng.random(v.shape) < 0.3] = np.nan
    v[:, :10, :10] = np.nan  # some coarse cells with no valid pixel at all
    da = _da(v, fine)
    if lazy:
        da = da.chunk({"time": 1, "y": tuple(split(40, ys)), "x": tuple(split(37, xs))})
    out = aggregate_mean(da, fine, coarse)
    assert isinstance(out.data, dsa.Array) == lazy
    total, weight = _reference(v, whole(fine, coarse).toarray())
    expected = _ratio(total, weight).reshape(2, *coarse.shape)
    np.testing.assert_allclose(out.values, expected, rtol=2e-6, atol=1e-6, equal_nan=True)


def _stats_inputs(seed: int, fine: GeoBox) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    shape = (3, *fine.shape)
    ndvi = rng.uniform(-0.2, 0.9, shape).astype(np.float32)
    ndvi[rng.random(shape) < 0.25] = np.nan
    evi = rng.uniform(0, 0.6, shape).astype(np.float32)
    evi[rng.random(shape) < 0.1] = np.nan
    dem = rng.uniform(800, 1500, fine.shape).astype(np.float32)
    types = rng.choice(np.array([0, 1, 2, 3, 4, 5, 255], np.uint8), size=fine.shape)
    types[:8, :8] = 255
    return xr.Dataset(
        {
            "ndvi": _da(ndvi, fine),
            "evi": _da(evi, fine),
            "dem": _da(dem, fine),
            "forest_type": _da(types, fine),
            "land_cover": _da(types * 10, fine),
        }
    )


TYPE_NAMES = ("non_forest", "ENF", "DBF", "MF", "DNF", "EBF")


def _stats_reference(ds: xr.Dataset, w: np.ndarray, coarse: GeoBox) -> dict[str, np.ndarray]:
    grid = (-1, *coarse.shape)
    out = {}
    for name in ("ndvi", "evi", "dem"):
        v = ds[name].values.astype(np.float64)
        v = v if v.ndim == 3 else v[None]
        out[name] = _ratio(*_reference(v, w)).reshape(grid).squeeze()
    ndvi = ds.ndvi.values.astype(np.float64)
    total, weight = _reference(ndvi, w)
    total2, _ = _reference(ndvi**2, w)
    mean = _ratio(total, weight)
    std = np.sqrt(np.maximum(_ratio(total2, weight) - mean**2, 0))
    out["ndvi_std"] = std.reshape(grid)
    out["ndvi_cv"] = (std / np.abs(mean)).reshape(grid)
    out["n_fine"] = weight.reshape(grid)
    types = ds.forest_type.values.ravel()
    per_type = np.zeros((6, w.shape[0]))
    for p, t in enumerate(types):
        if t <= 5:
            per_type[t] += w[:, p]
    n_typed = per_type.sum(axis=0)
    for i, name in enumerate(TYPE_NAMES):
        out[f"frac_{name}"] = _ratio(per_type[i], n_typed).reshape(coarse.shape)
    out["n_typed"] = n_typed.reshape(coarse.shape)
    out["forest_type_majority"] = np.where(n_typed > 0, per_type.argmax(axis=0), 255).reshape(coarse.shape)
    return out


@settings(max_examples=12, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    GRIDS,
    st.lists(st.integers(4, 40), min_size=1, max_size=3),
    st.lists(st.integers(4, 37), min_size=1, max_size=3),
    st.booleans(),
)
def test_aggregate_stats_equals_numpy_reference(
    seed: int, kind: str, ys: list[int], xs: list[int], lazy: bool
) -> None:
    fine = utm_grid(40, 37)
    coarse = _coarse_kind(fine, kind)
    ds = _stats_inputs(seed, fine)
    if lazy:
        ds = ds.chunk({"time": 1, "y": tuple(split(40, ys)), "x": tuple(split(37, xs))})
    out = aggregate_stats(ds, fine, coarse).compute()
    expected = _stats_reference(ds.compute(), whole(fine, coarse).toarray(), coarse)
    assert set(out.data_vars) == set(expected)  # land_cover and forest_type are not averaged
    for name, want in expected.items():
        got = out[name].values
        assert got.shape == want.shape, name
        if name == "forest_type_majority":
            # Two types with (near) equal weight in a cell may be ordered either way by rounding: only
            # cells with a clear majority are compared.
            assert got.dtype == np.uint8
            fracs = np.sort(np.nan_to_num(np.stack([expected[f"frac_{t}"] for t in TYPE_NAMES])), axis=0)
            clear = fracs[-1] - fracs[-2] > 1e-6
            np.testing.assert_array_equal(got[clear], want[clear], err_msg=name)
        else:
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6, equal_nan=True, err_msg=name)
    assert out.ndvi.dims == ("time", "cy", "cx") and out.dem.dims == ("cy", "cx")
    assert out.frac_ENF.dims == ("cy", "cx")


def test_stats_of_uniform_cells_have_zero_std() -> None:
    fine = utm_grid(40, 37)
    coarse = _coarse_kind(fine, "utm-100m")
    ndvi = np.full((1, 40, 37), 0.7123, np.float32)
    ds = xr.Dataset({"ndvi": _da(ndvi, fine), "forest_type": _da(np.full((40, 37), 4, np.uint8), fine)})
    out = aggregate_stats(ds, fine, coarse)
    covered = out.n_typed.values > 0
    assert covered.sum() >= 4 and out.n_fine.dims == ("time", "cy", "cx")
    np.testing.assert_array_equal(out.n_fine.values[0] > 0, covered)
    assert np.all(out.ndvi_std.values[0][covered] < 1e-6)
    assert np.all(out.forest_type_majority.values[covered] == 4)
    assert np.all(out.forest_type_majority.values[~covered] == 255)
    np.testing.assert_array_equal(out.frac_DNF.values[covered], 1.0)


def test_graph_grows_linearly_and_weights_are_built_once_per_chunk() -> None:
    fine = utm_grid(32, 64)
    coarse = _coarse_kind(fine, "sin")
    ds = _stats_inputs(0, fine)
    sizes = []
    for n_x in (1, 2, 4, 8, 16):
        lazy = aggregate_stats(ds.chunk({"time": 1, "y": 16, "x": 64 // n_x}), fine, coarse)
        graph = dict(lazy.__dask_graph__())
        weight_tasks = [k for k in graph if isinstance(k, tuple) and k[0].startswith("aggregate-weights-")]
        assert len(weight_tasks) == 2 * n_x  # one per y/x chunk, shared by every variable and time step
        sizes.append(len(graph))
    slopes = np.diff(sizes) / np.diff([2, 4, 8, 16, 32])
    assert slopes.max() <= 1.2 * slopes.min(), sizes  # tasks ≈ a + b · (number of chunks)


def test_numpy_input_gives_numpy_output_and_sheared_coords() -> None:
    fine = utm_grid(20, 20)
    coarse = _coarse_kind(fine, "sin-sheared")
    out = aggregate_mean(_da(np.ones((20, 20)), fine), fine, coarse)
    assert isinstance(out.data, np.ndarray)
    assert out.dims == ("cy", "cx")
    assert out.x.dims == ("cy", "cx") and out.y.dims == ("cy", "cx")
    cx, cy = coarse.transform * (0.5, 0.5)
    assert (float(out.x[0, 0]), float(out.y[0, 0])) == pytest.approx((cx, cy))
    np.testing.assert_array_equal(out.values[np.isfinite(out.values)], 1.0)


def test_wrappers_reject_mismatched_inputs() -> None:
    fine = utm_grid(6, 5)
    coarse = _coarse_kind(fine, "utm-100m")
    with pytest.raises(SpecError, match=r"shape \(y, x\) = \(6, 5\) but fine_geobox has \(6, 4\)"):
        aggregate_mean(_da(np.ones((6, 5)), fine), utm_grid(6, 4), coarse)
    with pytest.raises(SpecError, match="x coordinates run"):
        aggregate_mean(_da(np.ones((6, 5)), fine), utm_grid(6, 5, x0=515040.0), coarse)
    with pytest.raises(SpecError, match="has dims"):
        aggregate_mean(xr.DataArray(np.ones((6, 5)), dims=("a", "b")), fine, coarse)
    ds = xr.Dataset({"ndvi": _da(np.ones((6, 5)), fine)})
    with pytest.raises(SpecError, match="no forest-type variable 'forest_type'"):
        aggregate_stats(ds, fine, coarse)
    with pytest.raises(SpecError, match="no NDVI variable 'nd'"):
        aggregate_stats(ds, fine, coarse, ndvi="nd", forest_type=ds.ndvi)
