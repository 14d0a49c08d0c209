"""Mass preservation of the 30 m maps (``gppscale.io.predict``), on a 4 x 4-pixel world of 2 x 2 cells."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from affine import Affine
from distributed import Client
from odc.geo.geobox import GeoBox

from gppscale.compute import local_cluster
from gppscale.io.predict import _scaled, mass_factors
from gppscale.stages.quarters import Quarter

FINE = GeoBox((4, 4), Affine(30, 0, 500_000, 0, -30, 4_000_000), "EPSG:32650")
COARSE = GeoBox((2, 2), Affine(60, 0, 500_000, 0, -60, 4_000_000), "EPSG:32650")
QUARTERS = [Quarter(2021, 2), Quarter(2021, 3)]


def _raw() -> xr.Dataset:
    """GPP 100 in cell 0 and 200 elsewhere (Q3: twice that); NPP half of GPP; one chunk per cell."""
    gpp = np.full((2, 4, 4), 200.0, np.float32)
    gpp[:, :2, :2] = 100.0
    gpp[1] *= 2
    coords = {
        "time": np.array(["2021-04-01", "2021-07-01"], "datetime64[ns]"),
        "y": FINE.coords["y"].values,
        "x": FINE.coords["x"].values,
    }
    lazy = {"time": 2, "y": 2, "x": 2}
    return xr.Dataset(
        {
            "gpp_uncorrected": (("time", "y", "x"), gpp),
            "npp_uncorrected": (("time", "y", "x"), gpp / 2),
            "forest_type": (("y", "x"), np.ones((4, 4), np.uint8)),
        },
        coords=coords,
    ).chunk(lazy)


def _table() -> pd.DataFrame:
    """Coarse labels: every cell 150 (Q2) and 300 (Q3) of GPP, NPP half; cell 3 only partly covered."""
    rows = [
        {"quarter": q.label, "cell": c, "coverage": 0.5 if c == 3 else 1.0, "gpp": 150.0 * (i + 1)}
        for i, q in enumerate(QUARTERS)
        for c in range(4)
    ]
    table = pd.DataFrame(rows)
    table["npp"] = table["gpp"] / 2
    return table


def _factors(client: Client | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    return mass_factors(
        _raw(), _table(), FINE, COARSE, QUARTERS, min_forest_fraction=0.9, iterations=2, client=client
    )


def test_factors_bring_each_covered_cell_to_its_coarse_value() -> None:
    factors, corrected = _factors(None)
    # Cell 0 holds 100 where the coarse value says 150 (factor 1.5); cells 1 and 2 hold 200 (0.75);
    # cell 3 lies only half inside the run's area, so it is not corrected (factor 1). Q3 and NPP: same.
    assert corrected.tolist() == [True, True, True, False]
    for target in ("gpp", "npp"):
        np.testing.assert_array_equal(factors[target], [[1.5, 0.75, 0.75, 1.0]] * 2)


def test_factors_on_a_distributed_cluster_equal_the_local_ones() -> None:
    with (
        local_cluster(2, 1, processes=False) as cluster,
        Client(cluster) as client,
    ):
        remote, _ = _factors(client)
    local, _ = _factors(None)
    for target in ("gpp", "npp"):
        np.testing.assert_array_equal(remote[target], local[target])


def test_each_pass_has_its_own_task_keys() -> None:
    """A scheduler reuses results by key: passes with other factors must not share keys with earlier ones.

    (When the factors lived in a closure every pass had the same keys, and on a cluster a pass could
    receive the previous pass's scaled blocks: NPP maps then differed between identical runs.)
    """
    values = _raw()["npp_uncorrected"]
    ones = np.ones((2, 4), np.float32)
    first, again, second = (_scaled(values, f, FINE, COARSE) for f in (ones, ones.copy(), ones * 2))
    assert first.data.name == again.data.name  # same factors: same work, same keys
    assert first.data.name != second.data.name


@pytest.mark.parametrize("iterations", [1, 3])
def test_factors_do_not_depend_on_the_number_of_passes_when_pixels_nest_in_cells(iterations: int) -> None:
    factors, _ = mass_factors(
        _raw(), _table(), FINE, COARSE, QUARTERS, min_forest_fraction=0.9, iterations=iterations
    )
    np.testing.assert_allclose(factors["gpp"], [[1.5, 0.75, 0.75, 1.0]] * 2, rtol=1e-6)
