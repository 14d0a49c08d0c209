"""Trained models in the run store: checkpoints, training records, metrics tables and the model selection.

Layout under ``<store>/train/``:

* ``<type>/<target>/<kind>.safetensors``: the weights of a deep model (never pickled);
* ``<type>/<target>/<kind>.json``: its record — checkpoint metadata, held-out scores, where it ran and
  the task's fingerprint; written after the weights, so it marks a finished task (the tree baseline has
  a record only);
* ``metrics.json`` and ``metrics.csv``: one row per type, target and model with R², RMSE, MD, N on the
  test cells (pooled and the mean of per-quarter R²);
* ``selection.json``: the model used for each type and target;
* ``<type>/<target>/<kind>/member<k>.*``: the other members (k = 1 ... ``models.ensemble`` - 1) of the
  selected models' deep ensembles, trained with seeds ``seed + k``; they are left out of the selection
  and the metrics tables;
* ``intervals.json``: the held-out relative errors of the maps models' ensemble means
  (:func:`write_intervals`);
* ``aggregate/<target>/<kind>.*``: the ``aggregate``-mode models, one per target and kind for every
  forest type (class-conditioned; :func:`load_type_model` gives a forest type's view of one).

Example:
    >>> def rec(kind, rmse):
    ...     return {"forest_type": "DNF", "target": "gpp", "kind": kind, "metrics": {"rmse": rmse}}
    >>> select_models([rec("dnn", 9.0), rec("rnn", 7.5), rec("trees", 5.0)], "auto")
    {'DNF': {'gpp': 'rnn'}}
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from gppscale.errors import CheckpointError, StoreError
from gppscale.io.store import RunStore
from gppscale.train import AGGREGATE, TREES, TaskOutcome, member_name

if TYPE_CHECKING:
    from gppscale.models import Regressor

__all__ = [
    "INTERVALS",
    "TRAIN_DIR",
    "interval_errors",
    "json_safe",
    "load_model",
    "load_type_model",
    "maps_selection",
    "metrics_rows",
    "read_record",
    "read_selection",
    "record_name",
    "select_models",
    "task_fingerprint",
    "write_intervals",
    "write_outcome",
    "write_summary",
]

TRAIN_DIR = "train"
"""Folder of the trained models in the run store."""

Record = dict[str, Any]


def task_fingerprint(
    samples_sha256: str, name: str, hyper: Mapping[str, Any], features: Sequence[str]
) -> str:
    """A digest of what decides a training task's result: samples, task, hyper-parameters and features."""
    parts = {"samples": samples_sha256, "task": name, "hyper": dict(hyper), "features": list(features)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def json_safe(value: Any) -> Any:  # noqa: ANN401 - any JSON-like value
    """``value`` with every NaN or infinite float replaced by None (JSON has no NaN).

    Example:
        >>> json_safe({"r2": float("nan"), "n": 3, "by": [1.5, float("inf")]})
        {'r2': None, 'n': 3, 'by': [1.5, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _number(value: Any) -> float:  # noqa: ANN401 - a stored score: a number or None
    return math.nan if value is None else float(value)


def _rel(name: str, suffix: str) -> str:
    return f"{TRAIN_DIR}/{name}.{suffix}"


def write_outcome(store: RunStore, outcome: TaskOutcome) -> None:
    """Save a finished task: weights first, then its record (which marks it finished)."""
    if outcome.weights is not None:
        store.write_bytes(_rel(outcome.name, "safetensors"), outcome.weights)
    record = {
        "forest_type": outcome.forest_type,
        "target": outcome.target,
        "kind": outcome.kind,
        "fingerprint": outcome.fingerprint,
        "metrics": outcome.metrics,
        "meta": outcome.meta,
        "worker": outcome.worker,
        "device": outcome.device,
        "seconds": round(outcome.seconds, 3),
        "member": outcome.member,
        **({"held_out": outcome.held_out} if outcome.held_out is not None else {}),
    }
    store.write_json(_rel(outcome.name, "json"), json_safe(record))


def read_record(store: RunStore, name: str) -> Record | None:
    """The record of the task ``<type>/<target>/<kind>``, or None when it never finished."""
    rel = _rel(name, "json")
    if not store.exists(rel):
        return None
    record: Record = store.read_json(rel)
    return record


def load_model(store: RunStore, forest_type: str, target: str, kind: str, member: int = 0) -> Regressor:
    """The trained model of a type, target and kind (or its ensemble ``member``), checked, never unpickled.

    Raises:
        StoreError: If it was never trained in this store.
        CheckpointError: If the weights are missing, truncated, tampered with or do not match the record.
    """
    from gppscale.models import from_bytes

    name = member_name(f"{forest_type}/{target}/{kind}", member)
    record = read_record(store, name)
    if record is None or kind == TREES:
        which = f"member {member} of the " if member else ""
        raise StoreError(
            f"no trained {which}{kind} model for {forest_type} {target} in {store.join(TRAIN_DIR)}; "
            "run `gppscale train SPEC` (with the same models.ensemble)"
        )
    rel = _rel(name, "safetensors")
    if not store.exists(rel):
        raise CheckpointError(
            f"{store.join(rel)} is missing although {name} has a record; rerun `gppscale train`"
        )
    return from_bytes(store.read_bytes(rel), record["meta"])


def select_models(records: Iterable[Mapping[str, Any]], select: str) -> dict[str, dict[str, str]]:
    """The model of each type and target: ``select`` when it names a kind, else the lowest test RMSE.

    Only deep models can be selected (the tree baseline is scored beside them). A kind with no finite
    RMSE (no test cells) loses to any with one; ties go to the first in ``records``.
    """
    best: dict[tuple[str, str], tuple[float, str]] = {}
    for r in records:
        if r["kind"] == TREES or r.get("member", 0):
            continue
        key = (r["forest_type"], r["target"])
        rmse = _number(r["metrics"].get("rmse"))
        score = -1.0 if r["kind"] == select else (rmse if math.isfinite(rmse) else math.inf)
        if key not in best or score < best[key][0]:
            best[key] = (score, r["kind"])
    out: dict[str, dict[str, str]] = {}
    for (forest_type, target), (_, kind) in sorted(best.items()):
        out.setdefault(forest_type, {})[target] = kind
    return out


_COLUMNS = (
    "forest_type",
    "target",
    "model",
    "selected",
    "r2",
    "within_quarter_r2",
    "rmse",
    "md",
    "n",
    "n_train_cells",
    "n_test_cells",
    "epochs_run",
    "device",
    "worker",
    "seconds",
)


def metrics_rows(
    records: Iterable[Mapping[str, Any]], selection: Mapping[str, Mapping[str, str]]
) -> list[Record]:
    """One flat row per record for the metrics table (see :data:`_COLUMNS`)."""
    rows = []
    for r in records:
        if r.get("member", 0):  # ensemble members: their records hold their scores
            continue
        m = r["metrics"]
        chosen = selection.get(r["forest_type"], {}).get(r["target"]) == r["kind"]
        rows.append(
            {
                "forest_type": r["forest_type"],
                "target": r["target"],
                "model": r["kind"],
                "selected": chosen,
                **{k: m.get(k) for k in ("r2", "within_quarter_r2", "rmse", "md", "n")},
                "n_train_cells": m.get("n_train_cells"),
                "n_test_cells": m.get("n_test_cells"),
                "epochs_run": m.get("epochs_run"),
                "device": r.get("device"),
                "worker": r.get("worker"),
                "seconds": r.get("seconds"),
            }
        )
    return sorted(rows, key=lambda row: (row["forest_type"], row["target"], row["model"]))


def _csv(rows: Sequence[Record]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def write_summary(
    store: RunStore, records: Sequence[Mapping[str, Any]], select: str
) -> tuple[list[Record], dict[str, dict[str, str]]]:
    """Write ``metrics.json``, ``metrics.csv`` and ``selection.json``; returns the rows and the selection."""
    selection = select_models(records, select)
    rows = metrics_rows(records, selection)
    store.write_json(
        f"{TRAIN_DIR}/metrics.json",
        {
            "rows": rows,
            "by_quarter": {
                f"{r['forest_type']}/{r['target']}/{r['kind']}": r["metrics"].get("by_quarter", {})
                for r in records
            },
        },
    )
    store.write_bytes(f"{TRAIN_DIR}/metrics.csv", _csv(rows))
    store.write_json(f"{TRAIN_DIR}/selection.json", {"select": select, "models": selection})
    return rows, selection


def read_selection(store: RunStore) -> dict[str, dict[str, str]]:
    """The selected model kind of each type and target.

    Raises:
        StoreError: If the run has not been trained (run ``gppscale train SPEC``).
    """
    rel = f"{TRAIN_DIR}/selection.json"
    if not store.exists(rel):
        raise StoreError(f"no trained models in {store.join(TRAIN_DIR)}; run `gppscale train SPEC` first")
    models: dict[str, dict[str, str]] = store.read_json(rel)["models"]
    return models


def record_name(mode: str, forest_type: str, target: str, kind: str) -> str:
    """Where a forest type's model of ``mode`` lives: ``<type>/<target>/<kind>`` or ``aggregate/...``.

    Example:
        >>> record_name("aggregate", "DNF", "gpp", "dnn"), record_name("paper", "DNF", "gpp", "dnn")
        ('aggregate/gpp/dnn', 'DNF/gpp/dnn')
    """
    return f"{AGGREGATE if mode == AGGREGATE else forest_type}/{target}/{kind}"


def maps_selection(
    selection: Mapping[str, Mapping[str, str]], mode: str, forest_types: Sequence[str]
) -> dict[str, dict[str, str]]:
    """The kind of each forest type and target that makes the maps in ``mode``.

    ``paper``: the per-type selection. ``aggregate``: the selected aggregate kind, for every type of
    ``forest_types`` (one model serves them all).

    Raises:
        StoreError: If ``mode`` is ``aggregate`` and no aggregate model was trained.

    Example:
        >>> sel = {"DNF": {"gpp": "rnn"}, "aggregate": {"gpp": "dnn"}}
        >>> maps_selection(sel, "paper", ["DNF", "ENF"]), maps_selection(sel, "aggregate", ["DNF", "ENF"])
        ({'DNF': {'gpp': 'rnn'}}, {'DNF': {'gpp': 'dnn'}, 'ENF': {'gpp': 'dnn'}})
    """
    if mode != AGGREGATE:
        return {t: dict(kinds) for t, kinds in selection.items() if t != AGGREGATE}
    if AGGREGATE not in selection:
        raise StoreError(
            "models.modes puts 'aggregate' first but no aggregate-mode model was trained; rerun "
            "`gppscale train SPEC`"
        )
    return {t: dict(selection[AGGREGATE]) for t in forest_types}


INTERVALS = f"{TRAIN_DIR}/intervals.json"
"""The held-out errors of the models making the maps, from which the maps' 90 % interval is built."""


def write_intervals(
    store: RunStore,
    mode: str,
    selection: Mapping[str, Mapping[str, str]],
    members: int,
    quarters: Sequence[str],
) -> dict[str, Any]:
    """The held-out relative errors of each maps model's ensemble mean, per quarter → ``intervals.json``.

    For every model of ``selection`` (as given by :func:`maps_selection`) the test-cell predictions of
    its ``members`` records are averaged and compared with the labels
    (:mod:`gppscale.stages.uncertainty`): ``interval_error`` within 3 x 3 blocks of test cells after
    block mass preservation (for mass-preserved maps), ``interval_error_uncorrected`` per cell (for maps
    as predicted). A model whose records hold no test cells gets no entry.

    Raises:
        StoreError: If a member was never trained (rerun ``gppscale train SPEC``).
    """
    from gppscale.stages.uncertainty import cell_error, within_block_error

    names = sorted(
        {
            record_name(mode, t, target, kind)
            for t, kinds in selection.items()
            for target, kind in kinds.items()
        }
    )
    out: dict[str, Any] = {}
    for name in names:
        predictions = []
        for member in range(members):
            record = read_record(store, member_name(name, member))
            if record is None:
                raise StoreError(
                    f"member {member} of {name} has no record in {store.join(TRAIN_DIR)}; rerun "
                    "`gppscale train SPEC`"
                )
            held = record.get("held_out") or {}
            predictions.append(np.array(held.get("prediction", []), np.float64))
        labels = np.array(held.get("labels", []), np.float64)
        if labels.ndim != 2 or labels.shape[0] == 0:
            continue
        mean = np.mean(predictions, axis=0)
        blocks = np.array(held.get("blocks", []), np.int64)
        within = within_block_error(mean, labels, blocks) if blocks.size == labels.shape[0] else []
        out[name] = {
            "members": members,
            "interval_error": dict(zip(quarters, within, strict=False)),
            "interval_error_uncorrected": dict(zip(quarters, cell_error(mean, labels), strict=True)),
        }
    store.write_json(INTERVALS, json_safe(out))
    return out


def interval_errors(
    store: RunStore,
    mode: str,
    selection: Mapping[str, Mapping[str, str]],
    quarters: Sequence[str],
    *,
    corrected: bool,
) -> dict[str, npt.NDArray[np.float32]]:
    """By target, the held-out relative error ``(T, 256)`` of each quarter and forest-type id.

    From ``intervals.json`` (:func:`write_intervals`) for the models of ``selection``:
    ``interval_error`` for mass-preserved maps (``corrected``), else ``interval_error_uncorrected``;
    quarters without one take the model's largest (:func:`gppscale.stages.uncertainty.fill_errors`).
    Types without an entry stay 0 (the interval is then the ensemble's spread alone).
    """
    from gppscale.stages.forest import FOREST_TYPE_IDS
    from gppscale.stages.uncertainty import fill_errors

    key = "interval_error" if corrected else "interval_error_uncorrected"
    known = store.read_json(INTERVALS) if store.exists(INTERVALS) else {}
    out: dict[str, npt.NDArray[np.float32]] = {}
    for forest_type, kinds in selection.items():
        for target, kind in kinds.items():
            by_quarter = known.get(record_name(mode, forest_type, target, kind), {}).get(key) or {}
            table = out.setdefault(target, np.zeros((len(quarters), 256), np.float32))
            table[:, FOREST_TYPE_IDS[forest_type]] = fill_errors([by_quarter.get(q) for q in quarters])
    return out


def load_type_model(
    store: RunStore, mode: str, forest_type: str, target: str, kind: str, member: int = 0
) -> Any:  # noqa: ANN401
    """A forest type's model of ``mode`` (or its ensemble ``member``): its own, or the aggregate one.

    The aggregate model is seen with the type's class (:class:`~gppscale.models.aggregate.WithClass`).

    Raises:
        StoreError: If it was never trained in this store.
        CheckpointError: If the weights are missing, truncated, tampered with or do not match the record.
    """
    if mode != AGGREGATE:
        return load_model(store, forest_type, target, kind, member)
    from gppscale.models.aggregate import WithClass
    from gppscale.stages.landclass import N_CLASSES, class_of_forest_type

    model = load_model(store, AGGREGATE, target, kind, member)
    return WithClass(model, class_of_forest_type(forest_type), N_CLASSES)
