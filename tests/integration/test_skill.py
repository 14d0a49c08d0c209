"""30 m skill on the `demo` world (two years): the maps follow the known truth within each growing quarter.

The whole pipeline runs as `make demo` runs it (pipeline/demo.yaml, a local cluster of processes). Scores
are computed per growing-season quarter, never pooled over quarters (the seasonal cycle alone would give
R² ≈ 0.97), on every modelled forest pixel of the held-out cells, against the world's 30 m truth, beside
the "coarse value everywhere" baseline. The `small` world (one year, a few dozen pure cells per type) is
too small for this: see the issue notes.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox

from gppscale.config import load_spec
from gppscale.errors import DataWarning
from gppscale.io.samples import read_samples
from gppscale.io.store import RunStore
from gppscale.plan import plan_run
from gppscale.runner import RunResult, run_stages
from gppscale.stages.aggregate import pixel_cells
from gppscale.stages.metrics import scores
from gppscale.stages.predict import coarse_everywhere
from gppscale.stages.samples import labels_by_cell

# The demo world's build and run take about 6 min on 2 idle cores; the default 600 s limit left no room
# on a loaded machine.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

R2_FLOOR = 0.78
"""Least R² of the mass-preserved 30 m GPP in each growing quarter (measured 0.84-0.89 in the paper mode
when written; 0.85-0.91 over all forest pixels in the aggregate mode, the demo spec's)."""

MARGIN = 0.05
"""How much higher than the coarse baseline's R² it must be (baseline measured 0.72-0.75)."""


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, RunResult]:
    from gppscale.world import make_world

    root = tmp_path_factory.mktemp("demo")
    world = make_world("demo", root / "world", seed=0)
    spec_path = Path(__file__).resolve().parents[2] / "pipeline" / "demo.yaml"
    # The maps' mode only (pipeline/demo.yaml also trains the paper's way, for validation), and one
    # model instead of the ensemble (its intervals are checked on the small world).
    overrides = {
        "catalog.world": str(world),
        "output.store": str(root / "run"),
        "models.modes": ["aggregate"],
        "models.ensemble": 1,
    }
    spec = load_spec(spec_path, overrides=overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # e.g. MF's purity threshold relaxed
        return spec, run_stages(spec, "predict")  # validation has its own tests


def test_mass_preserved_maps_beat_the_coarse_value_in_every_growing_quarter(
    demo_run: tuple[Any, RunResult],
) -> None:
    spec, run = demo_run
    store = RunStore(spec.output.store)
    plan = plan_run(spec)
    grid = json.loads(store.read_bytes("samples.json"))["coarse_grid"]
    coarse = GeoBox(tuple(grid["shape"]), Affine(*grid["transform"]), grid["crs"])
    out = xr.open_zarr(run.results["predict"].url, consolidated=False).load()
    truth = xr.open_zarr(Path(str(spec.catalog.world)) / "truth" / "truth.zarr", consolidated=False).gpp
    truth = truth.sel(y=out.y, x=out.x, method="nearest", tolerance=1).sel(time=out.time).values
    cells = pixel_cells(plan.geobox, coarse)
    table = read_samples(store)
    n_cells = coarse.shape.y * coarse.shape.x
    baseline = coarse_everywhere(labels_by_cell(table, "gpp", plan.quarters, n_cells), cells)
    held_out = np.isin(cells, table[table.test].cell.unique()) & np.isfinite(out.gpp.values[0])
    assert held_out.sum() > 50_000
    lines, failures = [], []
    for i, q in enumerate(plan.quarters):
        if q.q not in (2, 3):
            continue
        obs = truth[i][held_out]
        got, base = scores(out.gpp.values[i][held_out], obs), scores(baseline[i][held_out], obs)
        lines.append(
            f"{q.label}: 30 m R² {got['r2']:.3f} RMSE {got['rmse']:.1f} | coarse R² {base['r2']:.3f} "
            f"RMSE {base['rmse']:.1f} (n {got['n']})"
        )
        if not (got["r2"] >= R2_FLOOR and got["r2"] >= base["r2"] + MARGIN and got["rmse"] < base["rmse"]):
            failures.append(lines[-1])
    print("\n".join(lines))
    assert not failures, failures
