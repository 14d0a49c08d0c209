"""Stage 5, train: one task per forest type, model and target, on GPU workers when the cluster has them.

For each modelled forest type with pure cells the sample table gives sequences ``x (cells, T, F)`` and
labels ``y (cells, T)`` (:mod:`gppscale.stages.features`): training cells are the type's pure cells
outside the test blocks, test cells the pure cells inside them. A spatially blocked 15 % of the training
cells is the validation slice for early stopping. Every deep model kind and the tree baseline is trained
for GPP and for NPP, each as one task (:func:`run_task`, pure: arrays in, weights and scores out), and
scored on the held-out test cells: pooled R², RMSE, mean difference and N, and the same per quarter.

Placement: when a worker of the ``distributed`` cluster advertises a ``GPU`` resource (``dask worker
--resources GPU=1``), deep-model tasks ask for ``GPU: 1`` so that only such workers run them, one at a
time per GPU; a task uses CUDA when torch sees a device and the CPU otherwise. Tree tasks need no GPU.
Without a cluster the tasks run one after another in this process.

The "coarse value everywhere" baseline is not trained: at the coarse scale it equals the label, so it
is scored at 30 m against a truth or reference (validation), never here.

Example:
    >>> from gppscale.config import HyperParams
    >>> rng = np.random.default_rng(0)
    >>> x = rng.uniform(size=(40, 2, 3)).astype(np.float32)
    >>> data = TypeData("DNF", x[:30], 100 * x[:30, :, 0], None, x[30:], 100 * x[30:, :, 0])
    >>> quarters = ("2021Q1", "2021Q2")
    >>> task = TrainTask("DNF", "gpp", "trees", HyperParams(), ("a", "b", "c"), quarters, data, "f")
    >>> out = run_task(task)
    >>> out.kind, out.metrics["n"], out.metrics["r2"] > 0.8
    ('trees', 20, True)
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from gppscale.config import HyperParams, SplitSpec
from gppscale.stages.features import table_to_sequences
from gppscale.stages.metrics import scores, scores_by_quarter, within_quarter_r2
from gppscale.stages.purity import blocked_split
from gppscale.stages.uncertainty import block_ids

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "AGGREGATE",
    "TREES",
    "VAL_FRACTION",
    "AggregateTask",
    "TaskOutcome",
    "TrainTask",
    "TreeModel",
    "TypeData",
    "as_member",
    "fit_trees",
    "gpu_workers",
    "member_name",
    "run_aggregate_task",
    "run_task",
    "run_tasks",
    "type_data",
]

TREES = "trees"
"""The tree-ensemble baseline's kind (scikit-learn HistGradientBoostingRegressor)."""

AGGREGATE = "aggregate"
"""The ``forest_type`` of aggregate-mode tasks: one class-conditioned model for every pixel."""

VAL_FRACTION = 0.15
"""Share of the training blocks used for early stopping."""

F32 = npt.NDArray[np.float32]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TypeData:
    """The sequences of one forest type and target: training part, its validation slice, test part."""

    forest_type: str
    x_train: F32
    y_train: F32
    val_mask: npt.NDArray[np.bool_] | None
    x_test: F32
    y_test: F32
    test_blocks: npt.NDArray[np.int64] | None = None
    """Block id of each test cell (:func:`gppscale.stages.uncertainty.block_ids`), for the interval."""


@dataclass(frozen=True)
class TrainTask:
    """One model kind to train for one forest type and target."""

    forest_type: str
    target: str
    kind: str
    hyper: HyperParams
    features: tuple[str, ...]
    quarters: tuple[str, ...]
    data: TypeData
    fingerprint: str
    member: int = 0

    @property
    def name(self) -> str:
        """``<type>/<target>/<kind>`` (``.../member<k>`` for ensemble members), its place in the store."""
        return member_name(f"{self.forest_type}/{self.target}/{self.kind}", self.member)


@dataclass(frozen=True)
class AggregateTask:
    """One model kind to train in ``aggregate`` mode for one target: all covered cells, every pixel.

    The task reads its bags on the worker (:func:`gppscale.io.bags.read_bags`), once per process.
    """

    target: str
    kind: str
    hyper: HyperParams
    features: tuple[str, ...]
    fingerprint: str
    store_url: str
    fine: Any  # GeoBox
    coarse: Any  # GeoBox
    predictors: tuple[str, ...]
    quarter_list: tuple[Any, ...]  # Quarter
    samples_sha256: str
    forest_type: str = AGGREGATE
    member: int = 0

    @property
    def quarters(self) -> tuple[str, ...]:
        """The quarters' labels, in time order."""
        return tuple(q.label for q in self.quarter_list)

    @property
    def name(self) -> str:
        """``aggregate/<target>/<kind>`` (``.../member<k>`` for members), its place in the run store."""
        return member_name(f"{AGGREGATE}/{self.target}/{self.kind}", self.member)


@dataclass(frozen=True)
class TaskOutcome:
    """What a training task produced: scores on the test cells, weights (deep models) and where it ran."""

    forest_type: str
    target: str
    kind: str
    fingerprint: str
    metrics: dict[str, Any]
    weights: bytes | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    worker: str = "local"
    device: str = "cpu"
    seconds: float = 0.0
    member: int = 0
    held_out: dict[str, Any] | None = None
    """The test cells' predictions ``(cells, T)``, labels and block ids (deep models; see
    :func:`gppscale.io.models.write_intervals`)."""

    @property
    def name(self) -> str:
        """``<type>/<target>/<kind>`` (``.../member<k>`` for ensemble members)."""
        return member_name(f"{self.forest_type}/{self.target}/{self.kind}", self.member)


def member_name(name: str, member: int) -> str:
    """The store name of ensemble member ``member`` of the model ``name`` (member 0 is the model itself).

    Example:
        >>> member_name("DNF/gpp/rnn", 0), member_name("aggregate/gpp/rnn", 2)
        ('DNF/gpp/rnn', 'aggregate/gpp/rnn/member2')
    """
    return name if member == 0 else f"{name}/member{member}"


def as_member(task: TrainTask | AggregateTask, member: int, fingerprint: str) -> TrainTask | AggregateTask:
    """Ensemble member ``member`` of ``task``: the same task with the seed ``hyper.seed + member``.

    Example:
        >>> from gppscale.config import HyperParams
        >>> data = TypeData("DNF", np.zeros((1, 1, 1), np.float32), np.zeros((1, 1), np.float32),
        ...                 None, np.zeros((0, 1, 1), np.float32), np.zeros((0, 1), np.float32))
        >>> task = TrainTask("DNF", "gpp", "dnn", HyperParams(seed=3), ("a",), ("2021Q2",), data, "f")
        >>> second = as_member(task, 2, "g")
        >>> second.name, second.hyper.seed, second.fingerprint
        ('DNF/gpp/dnn/member2', 5, 'g')
    """
    hyper = task.hyper.model_copy(update={"seed": task.hyper.seed + member})
    return replace(task, member=member, hyper=hyper, fingerprint=fingerprint)


def _validation_mask(rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64], split: SplitSpec) -> Any:  # noqa: ANN401
    """Blocked validation slice of the training cells; None (random slice) when they fill one block."""
    blocks = {
        (int(r) // split.block_cells, int(c) // split.block_cells) for r, c in zip(rows, cols, strict=True)
    }
    if len(blocks) < 2:
        return None
    return blocked_split(rows, cols, split.block_cells, VAL_FRACTION, split.seed + 1)


def type_data(
    table: pd.DataFrame,
    forest_type: str,
    predictors: Sequence[str],
    target: str,
    quarter_list: Sequence[Any],
    split: SplitSpec,
) -> TypeData | None:
    """One type's training and test sequences of ``target`` from the sample table (None: no pure cell)."""
    pure = table[table.pure & (table.forest_type == forest_type)]
    if pure.empty:
        return None
    parts = {}
    for name, rows in (("train", pure[~pure.test]), ("test", pure[pure.test])):
        x, y, cells = table_to_sequences(rows, predictors, target, quarter_list)
        parts[name] = (x, y, cells)
    x_tr, y_tr, cells_tr = parts["train"]
    if cells_tr.size == 0:
        return None
    first = pure[~pure.test].drop_duplicates("cell").set_index("cell").loc[cells_tr]
    val = _validation_mask(first.row.to_numpy(np.int64), first.col.to_numpy(np.int64), split)
    tested = pure[pure.test].drop_duplicates("cell").set_index("cell").loc[parts["test"][2]]
    blocks = block_ids(tested.row.to_numpy(np.int64), tested.col.to_numpy(np.int64))
    return TypeData(forest_type, x_tr, y_tr, val, parts["test"][0], parts["test"][1], blocks)


def _score(task: TrainTask, prediction: F32) -> dict[str, Any]:
    d = task.data
    return _test_scores(prediction, d.y_test, task.quarters, d.x_train.shape[0])


def _test_scores(prediction: F32, y: F32, quarters: Sequence[str], n_train: int) -> dict[str, Any]:
    """Scores of test-cell predictions ``(cells, T)`` against their labels: pooled, per quarter, within."""
    pooled = scores(prediction, y) if y.size else {"r2": math.nan, "rmse": math.nan, "md": math.nan, "n": 0}
    return {
        **pooled,
        "within_quarter_r2": within_quarter_r2(prediction, y) if y.size else math.nan,
        "by_quarter": scores_by_quarter(prediction, y, quarters) if y.size else {},
        "n_train_cells": int(n_train),
        "n_test_cells": int(y.shape[0]),
    }


def _held_out(prediction: F32, y: F32, blocks: npt.NDArray[np.int64] | None) -> dict[str, Any]:
    """The test cells' predictions, labels and blocks, kept in the record for the ensemble's interval."""
    return {
        "prediction": np.asarray(prediction, np.float64).tolist(),
        "labels": np.asarray(y, np.float64).tolist(),
        "blocks": [] if blocks is None else np.asarray(blocks).tolist(),
    }


@dataclass(frozen=True)
class TreeModel:
    """The tree baseline (one regressor over every quarter's rows), called like the deep models.

    ``(n, T, F)`` float32 in (NaN allowed), ``(n, T)`` float32 out, never negative.
    """

    regressor: Any

    def __call__(self, x: F32) -> F32:
        """Predict ``(n, T)`` from ``(n, T, F)``."""
        n, t, f = x.shape
        if n == 0:
            return np.zeros((0, t), np.float32)
        pred = np.asarray(self.regressor.predict(x.reshape(-1, f)), np.float32).reshape(n, t)
        return np.maximum(pred, np.float32(0.0))


def fit_trees(x_train: F32, y_train: F32, seed: int) -> TreeModel:
    """Fit the tree baseline on training sequences ``(n, T, F)`` → ``(n, T)`` (rows with a label)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    n_f = x_train.shape[2]
    x, y = x_train.reshape(-1, n_f), y_train.reshape(-1)
    ok = np.isfinite(y)
    model = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, random_state=seed)
    model.fit(x[ok], y[ok])
    return TreeModel(model)


def _fit_trees(task: TrainTask) -> F32:
    d = task.data
    return fit_trees(d.x_train, d.y_train, task.hyper.seed)(d.x_test)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "local"


def run_task(task: TrainTask | AggregateTask) -> TaskOutcome:
    """Train one model (or the tree baseline) and score it on the test cells. Pure apart from the device."""
    if isinstance(task, AggregateTask):
        return run_aggregate_task(task)
    start = time.perf_counter()
    if task.kind == TREES:
        metrics = _score(task, _fit_trees(task))
        return TaskOutcome(
            task.forest_type,
            task.target,
            task.kind,
            task.fingerprint,
            metrics,
            worker=_worker_address(),
            seconds=time.perf_counter() - start,
        )
    from gppscale.models import fit_model, predict

    device = _device()
    d = task.data
    fit = fit_model(task.kind, d.x_train, d.y_train, task.hyper, val_mask=d.val_mask, device=device)
    prediction = predict(fit.model, d.x_test) if d.x_test.shape[0] else d.y_test
    held_out = _held_out(prediction, d.y_test, d.test_blocks)
    return _deep_outcome(task, fit, _score(task, prediction), task.features, device, start, held_out)


def _deep_outcome(
    task: TrainTask | AggregateTask,
    fit: Any,  # noqa: ANN401 - gppscale.models.FitResult
    scores: dict[str, Any],
    features: Sequence[str],
    device: str,
    start: float,
    held_out: dict[str, Any],
    **about: Any,  # noqa: ANN401 - more checkpoint metadata
) -> TaskOutcome:
    """The outcome of a trained deep model: scores, training summary, weights and checkpoint metadata."""
    from gppscale.models import to_bytes

    metrics = {
        **scores,
        "epochs_run": fit.epochs_run,
        "best_epoch": fit.best_epoch,
        "samples_per_s": fit.samples_per_s,
    }
    meta = {
        "features": list(features),
        "quarters": list(task.quarters),
        "forest_type": task.forest_type,
        "target": task.target,
        "units": "gC m-2 quarter-1",
        "fingerprint": task.fingerprint,
        "metrics": metrics,
        "device": device,
        "member": task.member,
        "seed": task.hyper.seed,
        **about,
    }
    weights, checkpoint = to_bytes(fit.model, meta)
    return TaskOutcome(
        task.forest_type,
        task.target,
        task.kind,
        task.fingerprint,
        metrics,
        weights,
        checkpoint,
        _worker_address(),
        device,
        time.perf_counter() - start,
        task.member,
        held_out,
    )


_BAGS: dict[tuple[str, str, str], Any] = {}


def _bags_of(task: AggregateTask) -> Any:  # noqa: ANN401 - gppscale.io.bags.CellBags
    """The task's bags, read from the store once per process and samples fingerprint.

    The cube is read with dask's synchronous scheduler in this thread: left to the cluster, a task
    reading bags waited for the other workers' long training tasks to free a thread, so ensemble
    members trained one after another. No lock (a demo run hung on one): two tasks of one worker may
    both read the same bags.
    """
    import dask

    from gppscale.io.bags import read_bags
    from gppscale.io.samples import read_samples
    from gppscale.io.store import RunStore

    key = (task.store_url, task.target, task.samples_sha256)
    if key not in _BAGS:
        store = RunStore(task.store_url)
        with dask.config.set(scheduler="synchronous"):
            bags = read_bags(
                store,
                task.fine,
                task.coarse,
                read_samples(store),
                task.predictors,
                task.quarter_list,
                task.target,
            )
        _BAGS.clear()  # one run's bags at a time per process
        _BAGS[key] = bags
    return _BAGS[key]


def aggregate_batch_cells(batch_size: int) -> int:
    """Cells per optimiser step in aggregate mode: an eighth of ``batch_size``, at least 8.

    A 500 m cell holds about 280 pixels, so the default 256 gives 32 cells (about 9 000 pixels) a step:
    a small area's few hundred cells still give several steps an epoch.

    Example:
        >>> aggregate_batch_cells(256), aggregate_batch_cells(16)
        (32, 8)
    """
    return max(8, batch_size // 8)


def _cells(bags: Any, keep: npt.NDArray[np.bool_]) -> Any:  # noqa: ANN401 - Bags in, Bags out
    """The bags of the cells ``keep`` (every pixel stays; those of dropped cells are simply unused)."""
    from gppscale.models.aggregate import Bags

    return Bags(bags.x, bags.classes, bags.weights[keep], bags.labels[keep], bags.n_classes)


def run_aggregate_task(task: AggregateTask) -> TaskOutcome:
    """Train one ``aggregate``-mode model on the training cells' bags; score cell means on the test cells."""
    from gppscale.models.aggregate import aggregate_predictions, fit_aggregate
    from gppscale.stages.landclass import CLASS_NAMES

    start = time.perf_counter()
    device = _device()
    found = _bags_of(task)
    bags, test = found.bags, found.test
    hyper = task.hyper.model_copy(update={"batch_size": aggregate_batch_cells(task.hyper.batch_size)})
    fit = fit_aggregate(task.kind, _cells(bags, ~test), hyper, device=device)
    held_out = _cells(bags, test)
    prediction = aggregate_predictions(fit.model, held_out, device=device)
    width = int(task.coarse.shape.x)
    blocks = block_ids(found.cells[test] // width, found.cells[test] % width)
    scores = {
        **_test_scores(prediction, held_out.labels, task.quarters, int((~test).sum())),
        "n_pixels": int(bags.x.shape[0]),
    }
    features = [*task.features, *(f"class_{name}" for name in CLASS_NAMES)]
    kept = _held_out(prediction, held_out.labels, blocks)
    return _deep_outcome(
        task, fit, scores, features, device, start, kept, mode=AGGREGATE, n_classes=int(bags.n_classes)
    )


def gpu_workers(client: Client) -> list[str]:
    """Addresses of the cluster's workers that advertise a ``GPU`` resource."""
    info = client.scheduler_info(n_workers=-1)
    return sorted(addr for addr, w in info["workers"].items() if w.get("resources", {}).get("GPU", 0) > 0)


def _describe(out: TaskOutcome) -> str:
    m = out.metrics
    where = f"{out.device}" + ("" if out.worker == "local" else f" on {out.worker}")
    return (
        f"{out.name}: test RMSE {m['rmse']:.1f}, R² {m['r2']:.3f} (n {m['n']}), {out.seconds:.1f} s, {where}"
    )


def run_tasks(
    tasks: Sequence[TrainTask | AggregateTask],
    client: Client | None = None,
    *,
    on_done: Callable[[TaskOutcome], None] | None = None,
    progress: Progress | None = None,
) -> list[TaskOutcome]:
    """Run the tasks (on the cluster when given, deep models on GPU workers if any); outcomes in task order.

    ``on_done`` gets each outcome as soon as its task finishes (e.g. to save it), so a run stopped
    part-way keeps what it finished.
    """
    say = progress or (lambda _m: None)
    keep = on_done or (lambda _o: None)
    if client is None:
        outcomes = []
        for i, task in enumerate(tasks, 1):
            outcomes.append(run_task(task))
            keep(outcomes[-1])
            say(f"train: {i}/{len(tasks)} {_describe(outcomes[-1])}")
        return outcomes
    from distributed import as_completed

    gpus = gpu_workers(client)
    if gpus:
        say(f"train: deep models go to the {len(gpus)} GPU worker(s): {', '.join(gpus)}")
    # A fresh key per run: distributed keeps a failed task's state while any client holds its future,
    # and a rerun that reused the key would get the old error back instead of training again.
    run_id = uuid.uuid4().hex[:8]
    futures = [
        client.submit(
            run_task,
            task,
            resources={"GPU": 1} if gpus and task.kind != TREES else None,
            key=f"train-{task.name.replace('/', '-')}-{run_id}",
            pure=False,
        )
        for task in tasks
    ]
    done: dict[str, TaskOutcome] = {}
    for i, future in enumerate(as_completed(futures), 1):  # type: ignore[no-untyped-call]
        outcome: TaskOutcome = future.result()
        done[outcome.name] = outcome
        keep(outcome)
        say(f"train: {i}/{len(tasks)} {_describe(outcome)}")
    return [done[t.name] for t in tasks]
