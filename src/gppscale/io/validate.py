"""Stage 7, validate: the 30 m maps against a truth, a reference product, field plots and the coarse input.

Every comparison is scored per forest type and quarter (spatial skill within a quarter) with bootstrap
95 % intervals, and pooled over quarters in a row labelled as the seasonal cycle
(:func:`gppscale.stages.validate.scores_by_type_quarter`). ``md`` is prediction minus observation.

* **truth** (``validation.truth``, synthetic worlds): the mass-preserved maps (``downscaled``), the
  maps as predicted (``uncorrected``), every trained model kind and the tree baseline as predicted, and
  the "coarse value everywhere" baseline (``coarse``), for GPP and NPP, per forest type and over all
  modelled types (``all``), at a seeded sample of forest pixels (``validation.pixels_per_type`` per type,
  the same pixels for every source);
* **reference** (the catalog's ``reference_gpp``/``reference_npp`` roles, when frozen): the same sources
  against the reference 30 m product, loaded onto the run's grid;
* **plots** (``validation.plots``): annual NPP of each plot against the 3 x 3-pixel mean of the summed
  quarterly 30 m NPP around it;
* **modes**: both training modes side by side against the truth, with each model's consistency with
  the coarse values on the held-out cells (``held_out_coarse_rmse``);
* **consistency**: the re-aggregated 30 m output against the coarse input, per type (``predict.json``);
* **coverage** (maps of a deep ensemble, ``models.ensemble`` > 1): how often the truth or reference
  (``coverage_<name>``), tower GPP and plot NPP (``in_interval``, ``interval_coverage``) fall inside
  the maps' 90 % interval; for plots the interval's ends are summed over the year.

The tables go to ``validation/*.csv`` and ``validation/metrics.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr
from odc.geo.geobox import GeoBox

from gppscale.config import RunSpec
from gppscale.errors import SpecError
from gppscale.io.bags import cube_at_pixels
from gppscale.io.predict import OUTPUT_REL, TARGETS
from gppscale.io.samples import SAMPLES_JSON, read_samples, recorded_coarse_grid
from gppscale.io.store import RunStore
from gppscale.plan import RunPlan
from gppscale.stages.aggregate import pixel_cells
from gppscale.stages.forest import FOREST_TYPE_IDS
from gppscale.stages.metrics import bootstrap_scores
from gppscale.stages.predict import coarse_everywhere
from gppscale.stages.quarters import Quarter
from gppscale.stages.samples import labels_by_cell
from gppscale.stages.validate import (
    ALL_TYPES,
    interval_coverage,
    point_pixel,
    sample_pixels,
    scores_by_type_quarter,
    window_mean,
)

__all__ = [
    "TARGETS",
    "PixelSample",
    "Validation",
    "consistency_table",
    "coverage_table",
    "model_predictions",
    "modes_table",
    "pixel_sample",
    "plot_scores",
    "reference_maps",
    "tower_scores",
    "truth_maps",
    "validate_maps",
    "validation_figures",
    "validation_tables",
    "write_validation",
]

Progress = Callable[[str], None]
F32 = npt.NDArray[np.float32]


def _map_sources(
    out: xr.Dataset, table: pd.DataFrame, plan: RunPlan, coarse: GeoBox, target: str
) -> dict[str, F32]:
    """The output's maps being judged: mass-preserved, as predicted, and the coarse value everywhere."""
    cells = pixel_cells(plan.geobox, coarse)
    n_cells = coarse.shape.y * coarse.shape.x
    baseline = coarse_everywhere(labels_by_cell(table, target, plan.quarters, n_cells), cells)
    forest = np.isfinite(out[target].values)
    return {
        "downscaled": np.asarray(out[target].values, np.float32),
        "uncorrected": np.asarray(out[f"{target}_uncorrected"].values, np.float32),
        "coarse": np.where(forest, baseline, np.nan).astype(np.float32),
    }


@dataclass(frozen=True)
class PixelSample:
    """The forest pixels every source is judged at, and each source's values there.

    Attributes:
        index: Flat pixel indices on the run's grid ``(n,)``, sorted.
        types: Their forest-type ids ``(n,)``.
        sources: By target, by source (``downscaled``, ``uncorrected``, each model kind, ``trees``,
            ``coarse``): ``(T, n)`` float32.
        intervals: By target, the maps' interval ``(lower, upper)`` there, each ``(T, n)`` (ensembles).
    """

    index: npt.NDArray[np.intp]
    types: npt.NDArray[np.uint8]
    sources: dict[str, dict[str, F32]]
    intervals: dict[str, tuple[F32, F32]] = field(default_factory=dict)
    """By target, the maps' interval ``(lower, upper)`` at the pixels, each ``(T, n)`` (ensembles only)."""

    def of(self, maps: F32) -> F32:
        """``(T, y, x)`` maps at the sampled pixels, ``(T, n)``."""
        return np.asarray(maps.reshape(maps.shape[0], -1)[:, self.index], np.float32)


def model_predictions(
    spec: RunSpec,
    plan: RunPlan,
    store: RunStore,
    table: pd.DataFrame,
    index: npt.NDArray[np.intp],
    types: npt.NDArray[np.uint8],
    modelled: Sequence[str],
    progress: Progress | None = None,
) -> dict[str, dict[str, F32]]:
    """Every trained model kind and the tree baseline at the sampled pixels, as predicted (by target, kind).

    The deep models are the checkpoints training wrote, of every mode of ``models.modes`` (``aggregate``
    models as ``aggregate-<kind>``); the tree baseline (never stored) is fitted again on the same
    training cells. A kind missing for some type is left out for that type (NaN).
    """
    from gppscale.io.models import load_type_model, read_record, record_name
    from gppscale.stages.predict import predict_block
    from gppscale.train import AGGREGATE, TREES, fit_trees, type_data

    predictors = list(store.read_json(SAMPLES_JSON)["features"])
    layers = cube_at_pixels(store, predictors, index)
    say = progress or (lambda _m: None)
    kinds: list[tuple[str, str]] = [
        (mode, kind)
        for mode in spec.models.modes
        for kind in (spec.models.aggregate_kinds if mode == AGGREGATE else spec.models.kinds)
    ]
    if TREES in spec.models.baselines:
        kinds.append(("paper", TREES))
    labels = {(mode, kind): f"{AGGREGATE}-{kind}" if mode == AGGREGATE else kind for mode, kind in kinds}
    say(f"validate: {', '.join(labels.values())} at {index.size} sampled forest pixels")
    result: dict[str, dict[str, F32]] = {}
    for target in TARGETS:
        by_kind: dict[str, F32] = {}
        for mode, kind in kinds:
            models: dict[int, Any] = {}
            for name in modelled:
                if kind == TREES:
                    data = type_data(table, name, predictors, target, plan.quarters, spec.split)
                    if data is not None:
                        seed = spec.models.hyper_for(name).seed
                        models[FOREST_TYPE_IDS[name]] = fit_trees(data.x_train, data.y_train, seed)
                elif read_record(store, record_name(mode, name, target, kind)) is not None:
                    models[FOREST_TYPE_IDS[name]] = load_type_model(store, mode, name, target, kind)
            if models:
                by_kind[labels[(mode, kind)]] = predict_block(
                    layers, types, models, predictors, plan.quarters
                )
        result[target] = by_kind
    return result


def pixel_sample(
    spec: RunSpec,
    plan: RunPlan,
    store: RunStore,
    out: xr.Dataset,
    table: pd.DataFrame,
    coarse: GeoBox,
    modelled: Sequence[str],
    *,
    max_per_type: int,
    progress: Progress | None = None,
) -> PixelSample:
    """A seeded sample of each modelled type's forest pixels, with every source's values there."""
    types = np.asarray(out["forest_type"].values)
    forest = np.isfinite(np.asarray(out["gpp"].values)).any(axis=0)
    ids = {name: FOREST_TYPE_IDS[name] for name in modelled}
    index = sample_pixels(types, forest, ids, max_per_type, seed=spec.split.seed)
    sample = PixelSample(index, types.reshape(-1)[index].astype(np.uint8), {})
    models = model_predictions(spec, plan, store, table, index, sample.types, modelled, progress)
    for target in TARGETS:
        maps = {k: sample.of(v) for k, v in _map_sources(out, table, plan, coarse, target).items()}
        sample.sources[target] = {
            "downscaled": maps["downscaled"],
            "uncorrected": maps["uncorrected"],
            **models[target],
            "coarse": maps["coarse"],
        }
        if f"{target}_lower" in out:
            sample.intervals[target] = (
                sample.of(np.asarray(out[f"{target}_lower"].values)),
                sample.of(np.asarray(out[f"{target}_upper"].values)),
            )
    return sample


def _row_type_ids(modelled: Sequence[str]) -> dict[str, int | list[int]]:
    """Row label → forest-type id(s): each modelled type, and all of them together (``all``)."""
    ids: dict[str, int | list[int]] = {t: FOREST_TYPE_IDS[t] for t in modelled}
    ids[ALL_TYPES] = [FOREST_TYPE_IDS[t] for t in modelled]
    return ids


def validate_maps(
    sample: PixelSample,
    observed: Mapping[str, F32],
    plan: RunPlan,
    modelled: Sequence[str],
    *,
    n_boot: int = 200,
) -> pd.DataFrame:
    """Scores of every source against ``observed`` maps (by target, ``(T, y, x)``) at the sampled pixels.

    Rows per forest type and over all modelled types together (``forest_type`` ``"all"``), per quarter
    and pooled over quarters.
    """
    ids = _row_type_ids(modelled)
    frames = []
    for target, obs in observed.items():
        at = sample.of(obs)
        for source, pred in sample.sources[target].items():
            scored = scores_by_type_quarter(pred, at, sample.types, plan.quarters, ids, n_boot=n_boot)
            frames.append(scored.assign(target=target, source=source))
    if not frames:
        return pd.DataFrame()
    columns = ["target", "source", "forest_type", "quarter"]
    result = pd.concat(frames, ignore_index=True)
    return result[columns + [c for c in result.columns if c not in columns]]


def coverage_table(
    sample: PixelSample, observed: Mapping[str, F32], plan: RunPlan, modelled: Sequence[str]
) -> pd.DataFrame:
    """How often ``observed`` (by target, ``(T, y, x)``) is inside the maps' interval, per type and quarter.

    Empty when the maps have no interval (a single model, ``models.ensemble`` 1).
    """
    ids = _row_type_ids(modelled)
    frames = [
        interval_coverage(*sample.intervals[target], sample.of(obs), sample.types, plan.quarters, ids).assign(
            target=target
        )
        for target, obs in observed.items()
        if target in sample.intervals
    ]
    if not frames:
        return pd.DataFrame()
    result = pd.concat(frames, ignore_index=True)
    return result[["target", *(c for c in result.columns if c != "target")]]


def truth_maps(path: str | Path, out: xr.Dataset) -> dict[str, F32]:
    """The synthetic world's 30 m truth on the output's grid (by target)."""
    truth = xr.open_zarr(path, consolidated=False)
    picked = truth.sel(y=out.y, x=out.x, method="nearest", tolerance=1.0).sel(time=out.time)
    return {t: np.asarray(picked[t].values, np.float32) for t in TARGETS if t in picked}


def _quarter_of(item: Mapping[str, Any], quarters: Sequence[Quarter]) -> int | None:
    """The quarter holding the first day an item stands for (:func:`gppscale.io.cube.window_of`)."""
    from gppscale.io.cube import window_of

    start, _ = window_of(item)
    return next((i for i, q in enumerate(quarters) if q.start <= start < q.end), None)


def reference_maps(
    spec: RunSpec, plan: RunPlan, items_by_role: Mapping[str, Sequence[Mapping[str, Any]]]
) -> dict[str, F32]:
    """The reference product's quarterly maps on the run's grid (by target); empty when there is none."""
    import pystac
    from odc.stac import load

    maps: dict[str, F32] = {}
    for target in TARGETS:
        role = f"reference_{target}"
        collection = getattr(spec.collections, role)
        items = list(items_by_role.get(role, []))
        if collection is None or not items:
            continue
        stack = np.full((len(plan.quarters), *plan.geobox.shape), np.nan, np.float32)
        asset = collection.assets["data"]
        for item in items:
            index = _quarter_of(item, plan.quarters)
            if index is None:
                continue
            ds = load(
                [pystac.Item.from_dict(json.loads(json.dumps(item)))],
                bands=[asset],
                geobox=plan.geobox,
                resampling="average",
                dtype="float32",
                nodata=float("nan"),
            )
            stack[index] = np.asarray(ds[asset].values[0], np.float32)
        maps[target] = stack
    return maps


def plot_scores(plots_path: str | Path, out: xr.Dataset, plan: RunPlan, *, n_boot: int = 200) -> pd.DataFrame:
    """Plot annual NPP against the 3 x 3 mean of the summed quarterly 30 m NPP; one row per plot + a summary.

    Raises:
        SpecError: If the plot file lacks ``npp_gc_m2_yr`` or ``year`` for a plot.
    """
    features = json.loads(Path(plots_path).read_text())["features"]
    years = np.array([q.year for q in plan.quarters])
    rows = []
    for feature in features:
        props = feature.get("properties", {})
        pid = props.get("plot_id", feature.get("id"))
        if "npp_gc_m2_yr" not in props or "year" not in props:
            raise SpecError(f"plot {pid!r} in {plots_path} lacks npp_gc_m2_yr or year; add both properties")
        lon, lat = feature["geometry"]["coordinates"][:2]
        in_year = years == int(props["year"])
        if in_year.sum() < 4:
            continue  # the run does not cover the plot's whole year
        row, col = point_pixel(plan.geobox, lon, lat)
        # Annual sums (NaN off forest stays NaN); the interval's ends are summed too, as if the members'
        # errors were fully correlated across quarters (the widest, most cautious reading).
        annual = {
            name: float(window_mean(np.asarray(out[var].values[in_year]).sum(axis=0), row, col))
            for name, var in _interval_vars(out, "npp").items()
        }
        rows.append(
            {
                "plot_id": pid,
                "forest_type": props.get("forest_type"),
                "year": int(props["year"]),
                "observed": float(props["npp_gc_m2_yr"]),
                **annual,
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    summary = bootstrap_scores(table.downscaled.to_numpy(), table.observed.to_numpy(), n_boot=n_boot)
    return pd.concat(
        [_with_coverage(table), pd.DataFrame([{"plot_id": "all", **summary, **_coverage_of(table)}])],
        ignore_index=True,
    )


def _interval_vars(out: xr.Dataset, target: str) -> dict[str, str]:
    """Columns of a point table → the output variables they come from: the map and its interval if any."""
    columns = {"downscaled": target}
    if f"{target}_lower" in out:
        columns.update(lower=f"{target}_lower", upper=f"{target}_upper")
    return columns


def _with_coverage(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``in_interval`` (observed within ``[lower, upper]``) when it has an interval."""
    if "lower" not in table:
        return table
    return table.assign(in_interval=(table.observed >= table.lower) & (table.observed <= table.upper))


def _coverage_of(table: pd.DataFrame) -> dict[str, Any]:
    """``{"interval_coverage": share}`` of the rows with an interval and an observation; {} without one."""
    if "lower" not in table:
        return {}
    ok = table[["observed", "lower", "upper"]].notna().all(axis=1)
    inside = _with_coverage(table).in_interval
    return {"interval_coverage": float(inside[ok].mean()) if ok.any() else float("nan")}


def modes_table(truth: pd.DataFrame, store: RunStore) -> pd.DataFrame:
    """Both training modes side by side, per target and quarter, over all modelled types.

    One row per source of the truth table (``forest_type`` ``all``): the maps, each model kind of each
    mode as predicted, the tree baseline and the coarse value, with their within-quarter R², RMSE and MD
    against the truth, and ``held_out_coarse_rmse``: how far the model's own cell means are from the
    coarse values on the held-out test cells (its consistency before any mass preservation; for the
    paper's per-type models pooled over types, ``sqrt(sum n rmse^2 / sum n)``). The maps' consistency
    after mass preservation is the ``consistency`` table.
    """
    from gppscale.io.models import TRAIN_DIR
    from gppscale.stages.validate import POOLED
    from gppscale.train import AGGREGATE

    rel = f"{TRAIN_DIR}/metrics.json"
    by_name = store.read_json(rel).get("by_quarter", {}) if store.exists(rel) else {}
    rows = truth[(truth.forest_type == ALL_TYPES) & (truth.quarter != POOLED)]
    out = []
    for r in rows.itertuples(index=False):
        source, target, quarter = str(r.source), str(r.target), str(r.quarter)
        if source.startswith(f"{AGGREGATE}-"):
            mode, names = AGGREGATE, [f"{AGGREGATE}/{target}/{source.removeprefix(f'{AGGREGATE}-')}"]
        elif source in ("downscaled", "uncorrected", "coarse"):
            mode, names = "maps" if source != "coarse" else "baseline", []
        else:
            mode = "baseline" if source == "trees" else "paper"
            names = [
                n
                for n in by_name
                if n.split("/")[1:] == [target, source] and not n.startswith(f"{AGGREGATE}/")
            ]
        held = [by_name[n].get(quarter, {}) for n in names]
        held = [h for h in held if h.get("n") and h.get("rmse") is not None]
        n = sum(h["n"] for h in held)
        rmse = float(np.sqrt(sum(h["n"] * h["rmse"] ** 2 for h in held) / n)) if n else None
        out.append(
            {
                "target": target,
                "quarter": quarter,
                "source": source,
                "mode": mode,
                "r2": r.r2,
                "rmse": r.rmse,
                "md": r.md,
                "held_out_coarse_rmse": rmse,
            }
        )
    return pd.DataFrame(out)


def consistency_table(store: RunStore) -> pd.DataFrame:
    """The mass-preservation consistency of ``predict.json`` as rows (target, forest type, errors)."""
    if not store.exists("predict.json"):
        return pd.DataFrame()
    report = store.read_json("predict.json").get("consistency", {})
    return pd.DataFrame(
        [
            {"target": t, "forest_type": ft, **values}
            for t, by_type in report.items()
            for ft, values in by_type.items()
        ]
    )


@dataclass(frozen=True)
class Validation:
    """What validation computed: the tables, and what the figures draw from."""

    tables: dict[str, pd.DataFrame]
    out: xr.Dataset
    observed: dict[str, dict[str, F32]]
    sample: PixelSample | None
    modelled: Sequence[str]
    table: pd.DataFrame
    coarse: GeoBox

    def metrics(self) -> dict[str, Any]:
        """JSON-ready records of every table (``validation/metrics.json``)."""
        return {name: json.loads(t.to_json(orient="records")) for name, t in self.tables.items()}


def validation_tables(
    spec: RunSpec,
    plan: RunPlan,
    store: RunStore,
    items_by_role: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    n_boot: int = 200,
    progress: Progress | None = None,
) -> Validation:
    """Every table the run's inputs allow, with the loaded output, observed maps and pixel sample."""
    say = progress or (lambda _m: None)
    out = xr.open_zarr(store.zarr_store(OUTPUT_REL, read_only=True), consolidated=False).load()
    table = read_samples(store)
    coarse = recorded_coarse_grid(store.read_json(SAMPLES_JSON))
    modelled = [
        t for t in spec.forest_types.modelled if (out["forest_type"].values == FOREST_TYPE_IDS[t]).any()
    ]
    tables: dict[str, pd.DataFrame] = {"consistency": consistency_table(store)}
    observed: dict[str, dict[str, F32]] = {}
    if spec.validation.truth:
        observed["truth"] = truth_maps(spec.validation.truth, out)
    if spec.validation.reference:
        reference = reference_maps(spec, plan, items_by_role)
        if reference:
            observed["reference"] = reference
    sample = None
    if observed and modelled:
        per_type = spec.validation.pixels_per_type
        sample = pixel_sample(
            spec, plan, store, out, table, coarse, modelled, max_per_type=per_type, progress=say
        )
        for name, maps in observed.items():
            say(f"validate: against the {name}")
            tables[name] = validate_maps(sample, maps, plan, modelled, n_boot=n_boot)
            tables[f"coverage_{name}"] = coverage_table(sample, maps, plan, modelled)
        if "truth" in tables:
            tables["modes"] = modes_table(tables["truth"], store)
    if spec.validation.plots:
        say("validate: against the field plots")
        tables["plots"] = plot_scores(spec.validation.plots, out, plan, n_boot=n_boot)
    if spec.validation.towers_sites:
        say("validate: against the flux towers")
        tables["towers"] = tower_scores(spec.validation.towers_sites, out, plan, n_boot=n_boot)
    kept = {k: v for k, v in tables.items() if not v.empty}
    return Validation(kept, out, observed, sample, modelled, table, coarse)


def tower_scores(
    sites_path: str | Path, out: xr.Dataset, plan: RunPlan, *, n_boot: int = 200
) -> pd.DataFrame:
    """Quarterly tower GPP against the 3 x 3 mean of the 30 m GPP around each tower; per quarter + summary.

    Towers without a GPP column are partitioned from NEE (:func:`gppscale.io.towers.partition_nee`);
    quarters below the coverage rule are listed with ``dropped`` and left out of the scores.
    """
    from gppscale.io.towers import partition_nee, read_fluxnet, read_sites, tower_quarterly

    rows = []
    for site in read_sites(sites_path):
        flux = partition_nee(read_fluxnet(site.csv), site.lat, site.lon, site.utc_offset_h)
        quarterly = tower_quarterly(flux, plan.quarters)
        row, col = point_pixel(plan.geobox, site.lon, site.lat)
        model = {
            name: window_mean(out[var].values, row, col) for name, var in _interval_vars(out, "gpp").items()
        }
        records = quarterly.to_dict(orient="index")
        for i, q in enumerate(plan.quarters):
            record = records[q.label]
            rows.append(
                {
                    "site": site.site_id,
                    "forest_type": site.forest_type,
                    "quarter": q.label,
                    "observed": float(record["gpp_gc_m2"]),
                    **{name: float(values[i]) for name, values in model.items()},
                    "coverage": float(record["coverage"]),
                    "dropped": bool(record["dropped"]),
                    "reason": str(record["reason"] or ""),
                }
            )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    kept = table[~table.dropped]
    summary = {
        "site": "all",
        "quarter": "all (pooled: seasonal cycle)",
        **bootstrap_scores(kept.downscaled.to_numpy(), kept.observed.to_numpy(), n_boot=n_boot),
        **_coverage_of(kept),
    }
    return pd.concat([_with_coverage(table), pd.DataFrame([summary])], ignore_index=True)


def _growing_quarter(plan: RunPlan) -> int:
    """Index of the last Q3 of the run (else the last quarter): the one the maps and scatters show."""
    index = [i for i, q in enumerate(plan.quarters) if q.q == 3]
    return index[-1] if index else len(plan.quarters) - 1


def _type_means(
    maps: Mapping[str, F32], types: npt.NDArray[Any], plan: RunPlan, modelled: Sequence[str]
) -> pd.DataFrame:
    rows = []
    for name in modelled:
        mask = types == FOREST_TYPE_IDS[name]
        for i, q in enumerate(plan.quarters):
            row: dict[str, Any] = {"quarter": q.label, "forest_type": name}
            for source, values in maps.items():
                picked = values[i][mask]
                row[source] = float(np.nanmean(picked)) if np.isfinite(picked).any() else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def validation_figures(result: Validation, plan: RunPlan) -> dict[str, bytes]:
    """PNG figures: coarse vs 30 m maps, a scatter per source and comparison, quarterly series per type."""
    from gppscale.io.report import maps_figure, scatter_figure, timeseries_figure

    out = result.out
    i = _growing_quarter(plan)
    label = plan.quarters[i].label
    maps = _map_sources(out, result.table, plan, result.coarse, "gpp")
    figures = {
        f"maps_gpp_{label}": maps_figure(
            maps["coarse"][i],
            maps["downscaled"][i],
            f"GPP {label}: coarse value everywhere vs 30 m downscaled",
        )
    }
    series: dict[str, F32] = {"coarse": maps["coarse"], "downscaled": maps["downscaled"]}
    for name, observed in result.observed.items():
        if "gpp" not in observed:
            continue
        series[name] = observed["gpp"]
        if result.sample is None:
            continue
        obs = result.sample.of(observed["gpp"])[i]
        for source, values in result.sample.sources["gpp"].items():
            figures[f"scatter_gpp_{source}_vs_{name}_{label}"] = scatter_figure(
                values[i],
                obs,
                title=f"GPP {label}: {source} vs {name}",
                label_pred=source,
                label_obs=name,
            )
    for name in ("plots", "towers"):
        t = result.tables.get(name)
        if t is not None and not t.empty:
            points = t[t.downscaled.notna()] if "downscaled" in t else t
            figures[f"scatter_{name}"] = scatter_figure(
                points.downscaled.to_numpy(),
                points["observed"].to_numpy(),
                title=f"30 m vs {name}",
                label_pred="downscaled",
                label_obs=name,
            )
    figures["timeseries_gpp"] = timeseries_figure(
        _type_means(series, np.asarray(out.forest_type.values), plan, result.modelled),
        title="Quarterly GPP per forest type",
    )
    return figures


def _summary(spec: RunSpec, tables: Mapping[str, pd.DataFrame]) -> str:
    lines = [
        f"# Validation of run {spec.name}",
        "",
        "Scores per forest type and quarter (spatial skill within a quarter); rows labelled "
        "*pooled: seasonal cycle* mix quarters and mostly measure the seasonal cycle. "
        "MD is prediction minus observation; intervals are bootstrap 95 %.",
        "",
    ]
    truth = tables.get("truth")
    if truth is not None and not truth.empty:
        growing = truth[
            (truth.target == "gpp")
            & (truth.forest_type == ALL_TYPES)
            & truth.quarter.str.endswith(("Q2", "Q3"))
        ]
        lines.append("Within-quarter R² of 30 m GPP against the truth, all modelled forest types together:")
        lines.append("")
        for source, rows in growing.groupby("source", sort=False):
            quarters = ", ".join(f"{q} {r2:.3f}" for q, r2 in zip(rows.quarter, rows.r2, strict=True))
            lines.append(f"- {source}: {quarters}")
        lines.append("")
    for name in ("truth", "reference"):
        cov = tables.get(f"coverage_{name}")
        if cov is None or cov.empty:
            continue
        rows = cov[(cov.forest_type == ALL_TYPES) & cov.quarter.str.endswith(("Q2", "Q3"))]
        for target, of_target in rows.groupby("target", sort=False):
            shares = ", ".join(
                f"{q} {c:.1%}" for q, c in zip(of_target.quarter, of_target.coverage, strict=True)
            )
            lines.append(
                f"- {str(target).upper()} {name} inside the maps' 90 % interval, all types: {shares}"
            )
        lines.append("")
    for name in ("plots", "towers"):
        t = tables.get(name)
        if t is not None and not t.empty and "r2" in t:
            s = t.iloc[-1]
            inside = (
                f", inside the 90 % interval {s.interval_coverage:.1%}" if "interval_coverage" in t else ""
            )
            lines.append(f"{name}: R² {s.r2:.3f}, RMSE {s.rmse:.1f}, MD {s.md:.1f}, N {int(s.n)}{inside}.")
    return "\n".join(lines) + "\n"


def write_validation(
    spec: RunSpec,
    plan: RunPlan,
    store: RunStore,
    items_by_role: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    n_boot: int = 200,
    progress: Progress | None = None,
) -> dict[str, str]:
    """Every comparison the run allows, its figures, ``validation/metrics.json`` and the report."""
    from gppscale.io.models import json_safe
    from gppscale.io.report import write_report

    say = progress or (lambda _m: None)
    result = validation_tables(spec, plan, store, items_by_role, n_boot=n_boot, progress=say)
    tables = dict(result.tables)
    figures = validation_figures(result, plan)
    store.write_json("validation/metrics.json", json_safe(result.metrics()))
    written = write_report(
        store,
        title=f"gppscale validation: {spec.name}",
        summary_md=_summary(spec, tables),
        tables=tables,
        figures=figures,
    )
    say(f"validate: report {store.join('validation/report.html')}")
    return written
