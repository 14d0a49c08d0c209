"""The validation tables built from the run store: both training modes side by side."""

from __future__ import annotations

import math
from pathlib import Path

import pytest


def test_modes_table_pools_paper_models_over_types_and_keeps_the_aggregate_apart(tmp_path: Path) -> None:
    import pandas as pd

    from gppscale.io.store import RunStore
    from gppscale.io.validate import modes_table

    store = RunStore(str(tmp_path))
    q = "2021Q3"
    store.write_json(
        "train/metrics.json",
        {
            "by_quarter": {
                "aggregate/gpp/dnn": {q: {"rmse": 10.0, "n": 4}},
                "DNF/gpp/dnn": {q: {"rmse": 20.0, "n": 1}},
                "ENF/gpp/dnn": {q: {"rmse": 30.0, "n": 1}},
            }
        },
    )
    truth = pd.DataFrame(
        [
            {
                "target": "gpp",
                "source": s,
                "forest_type": "all",
                "quarter": q,
                "r2": 0.5,
                "rmse": 1.0,
                "md": 0.0,
            }
            for s in ("downscaled", "aggregate-dnn", "dnn", "coarse")
        ]
    )
    table = modes_table(truth, store).set_index("source")
    # sqrt((1 * 20^2 + 1 * 30^2) / 2) = 25.495: the aggregate model's 10 (n 4) is not pooled in.
    assert table.loc["dnn", "held_out_coarse_rmse"] == pytest.approx(math.sqrt((400 + 900) / 2))
    assert table.loc["aggregate-dnn", "held_out_coarse_rmse"] == pytest.approx(10.0)
    assert table.loc["dnn", "mode"] == "paper" and table.loc["aggregate-dnn", "mode"] == "aggregate"
    assert math.isnan(table.loc["downscaled", "held_out_coarse_rmse"])
