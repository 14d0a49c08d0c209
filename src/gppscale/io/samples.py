"""Stage 4, samples: the cube aggregated to the coarse grid, joined to its labels, pure cells flagged.

Reads the finished predictor cube (``cube.zarr``) and the frozen coarse items; writes to the run store

* ``samples.parquet``: one row per coarse cell (any the 30 m grid reaches) and quarter, with the
  area-weighted means of every predictor, NDVI spread, forest-type mix, ``coverage``, the coarse labels
  ``gpp``/``npp`` (gC m-2 quarter-1) and the ``pure``/``test`` flags (:mod:`gppscale.stages.samples`);
* ``samples.json``: fingerprints, the coarse grid, the feature and label columns, per-type counts and the
  purity reports.

The table is written atomically (a failed run leaves the previous one). A rerun with the same cube,
coarse items and settings reuses it; one with only other purity or split settings re-flags the stored
rows without aggregating again.

Example:
    >>> from gppscale.io.store import RunStore
    >>> read_samples(RunStore("out/small/run")).columns[:4].tolist()  # doctest: +SKIP
    ['quarter', 'year', 'q', 'cell']
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyproj
import xarray as xr
from odc.geo.geobox import GeoBox

from gppscale import __version__
from gppscale.compute import compute
from gppscale.config import RunSpec
from gppscale.errors import CatalogError, StoreError
from gppscale.io.access import PatchUrl
from gppscale.io.coarse import coarse_grid, coarse_quarterly
from gppscale.io.freeze import FrozenSearch
from gppscale.io.regions import FINGERPRINT_ATTR
from gppscale.io.store import RunStore
from gppscale.plan import RunPlan
from gppscale.stages.aggregate import aggregate_stats
from gppscale.stages.purity import PurityReport
from gppscale.stages.samples import STAT_COLUMNS, cells_table, flag_samples, type_counts

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "LABELS",
    "SAMPLES_JSON",
    "SAMPLES_REL",
    "SamplesResult",
    "aggregation_fingerprint",
    "coarse_labels",
    "feature_columns",
    "flags_fingerprint",
    "read_samples",
    "recorded_coarse_grid",
    "write_samples",
]

SAMPLES_REL = "samples.parquet"
"""The sample table's place in the run store."""

SAMPLES_JSON = "samples.json"
"""Its description."""

LABELS = {"gpp": "coarse_gpp", "npp": "coarse_npp"}
"""Label column -> coarse role."""

SKIPPED_VARS = ("land_cover", "n_clear")
"""Cube variables not averaged: a categorical code, and a count that says how good a composite is."""

_BOOKKEEPING = (
    "quarter",
    "year",
    "q",
    "cell",
    "row",
    "col",
    "lon",
    "lat",
    "forest_type",
    "type_fraction",
    "coverage",
    "pure",
    "test",
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SamplesResult:
    """What the samples stage did."""

    url: str
    rows: int
    cells: int
    counts: Mapping[str, Mapping[str, int]]
    reports: tuple[PurityReport, ...]
    status: str  # "written", "re-flagged" or "reused"


def _digest(obj: Any) -> str:  # noqa: ANN401 - any JSON value
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def aggregation_fingerprint(spec: RunSpec, cube_fingerprint: str, frozen: FrozenSearch) -> str:
    """A digest of what decides the aggregated rows: the cube, the coarse items and their decoding."""
    roles = frozen.manifest.get("roles", {})
    return _digest(
        {
            "cube": cube_fingerprint,
            "coarse": {role: roles.get(role, {}).get("sha256") for role in LABELS.values()},
            "collections": {
                role: getattr(spec.collections, role).model_dump(mode="json") for role in LABELS.values()
            },
            "decode": spec.coarse.model_dump(mode="json"),
            "skipped": SKIPPED_VARS,
        }
    )


def flags_fingerprint(spec: RunSpec) -> str:
    """A digest of what decides the ``pure``/``test`` flags."""
    return _digest(
        {
            "purity": spec.purity.model_dump(mode="json", by_alias=True),
            "split": spec.split.model_dump(mode="json"),
            "modelled": list(spec.forest_types.modelled),
        }
    )


def feature_columns(table: pd.DataFrame) -> list[str]:
    """The model features of a sample table: every aggregated predictor, in table order."""
    labels = set(LABELS)
    return [c for c in table.columns if c not in labels and c not in STAT_COLUMNS and c not in _BOOKKEEPING]


def coarse_labels(
    spec: RunSpec, plan: RunPlan, frozen: FrozenSearch, patch_url: PatchUrl | None
) -> tuple[GeoBox, dict[str, xr.DataArray]]:
    """The coarse grid window over the run and the lazy quarterly GPP/NPP sums on it.

    Raises:
        CatalogError: If GPP and NPP are on different grids.
        NoDataError: If a coarse role has no items or does not cover the area.
    """
    grids = {role: coarse_grid(spec, plan, frozen.role(role), role) for role in LABELS.values()}
    gpp_grid, npp_grid = grids["coarse_gpp"], grids["coarse_npp"]
    if gpp_grid != npp_grid:
        raise CatalogError(
            f"coarse GPP ({spec.collections.coarse_gpp.id!r}) and NPP ({spec.collections.coarse_npp.id!r}) "
            f"are on different grids ({gpp_grid.crs} {gpp_grid.shape} vs {npp_grid.crs} {npp_grid.shape}); "
            "gppscale needs both on one grid: choose collections of the same product"
        )
    labels = {
        name: coarse_quarterly(spec, plan, frozen.role(role), role, patch_url)
        for name, role in LABELS.items()
    }
    return gpp_grid, labels


def _crs_label(grid: GeoBox) -> str:
    """A short name of the grid's CRS for messages: its EPSG code or its projection method."""
    crs = grid.crs
    if crs is None:
        return "no CRS"
    if crs.epsg is not None:
        return f"EPSG:{crs.epsg}"
    operation = pyproj.CRS.from_wkt(crs.to_wkt()).coordinate_operation
    return f"{operation.method_name} projection" if operation is not None else crs.to_wkt()[:60]


def _grid_json(grid: GeoBox) -> dict[str, Any]:
    crs = grid.crs
    return {
        "crs": None if crs is None else crs.to_wkt(),
        "epsg": None if crs is None else crs.epsg,
        "shape": list(grid.shape),
        "transform": list(grid.transform)[:6],
    }


def _table_bytes(table: pd.DataFrame, meta: Mapping[str, Any]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), b"gppscale": json.dumps(meta)})
    buffer = io.BytesIO()
    pq.write_table(arrow, buffer, compression="zstd")
    return buffer.getvalue()


def read_samples(store: RunStore) -> pd.DataFrame:
    """The sample table of a run store.

    Raises:
        StoreError: If there is none (run ``gppscale samples SPEC``) or it does not match its checksum.
    """
    import pyarrow.parquet as pq

    if not store.exists(SAMPLES_JSON) or not store.exists(SAMPLES_REL):
        raise StoreError(f"no sample table in {store.join('')}; run `gppscale samples SPEC` first")
    data = store.read_bytes(SAMPLES_REL)
    want = store.read_json(SAMPLES_JSON).get("sha256")
    if hashlib.sha256(data).hexdigest() != want:
        raise StoreError(
            f"{store.join(SAMPLES_REL)} does not match the checksum in {SAMPLES_JSON} (changed or half "
            "copied); rerun `gppscale samples SPEC`"
        )
    table: pd.DataFrame = pq.read_table(io.BytesIO(data)).to_pandas()
    return table


def _aggregate(
    spec: RunSpec,
    plan: RunPlan,
    cube: xr.Dataset,
    frozen: FrozenSearch,
    patch_url: PatchUrl | None,
    client: Client | None,
    progress: Progress,
) -> tuple[pd.DataFrame, GeoBox]:
    grid, labels = coarse_labels(spec, plan, frozen, patch_url)
    stats = aggregate_stats(cube, plan.geobox, grid, skip=SKIPPED_VARS)
    progress(
        f"samples: aggregating {len(cube.data_vars)} cube variables x {len(plan.quarters)} quarters onto "
        f"{grid.shape.y} x {grid.shape.x} coarse cells ({_crs_label(grid)})"
    )
    stats_np, *label_np = compute(stats, *labels.values(), client=client, progress=progress, what="samples")
    table = cells_table(stats_np, dict(zip(labels, label_np, strict=True)), plan.quarters, plan.geobox, grid)
    return table, grid


def _reusable(store: RunStore, agg_fp: str, overwrite: bool) -> dict[str, Any] | None:
    """The stored description when its rows can be reused; raises if it may not be replaced."""
    if not store.exists(SAMPLES_JSON):
        return None
    old: dict[str, Any] = store.read_json(SAMPLES_JSON)
    if old.get("aggregation_fingerprint") == agg_fp:
        return old
    if not overwrite:
        raise StoreError(
            f"{store.join(SAMPLES_REL)} was made from another cube or coarse product (fingerprint "
            f"{old.get('aggregation_fingerprint')!r}, now {agg_fp!r}); set output.overwrite: true to "
            "replace it, or write the run to a new output.store"
        )
    return None


def write_samples(
    spec: RunSpec,
    plan: RunPlan,
    store: RunStore,
    cube: xr.Dataset,
    frozen: FrozenSearch,
    *,
    patch_url: PatchUrl | None = None,
    client: Client | None = None,
    progress: Progress | None = None,
) -> SamplesResult:
    """Aggregate, label, flag and write the sample table (or reuse / re-flag a stored one).

    Raises:
        StoreError: If a table made from other inputs exists and ``output.overwrite`` is false.
        CatalogError, NoDataError: If the coarse product cannot be placed over the run.
    """
    say = progress or (lambda _m: None)
    agg_fp = aggregation_fingerprint(spec, str(cube.attrs.get(FINGERPRINT_ATTR)), frozen)
    flag_fp = flags_fingerprint(spec)
    old = _reusable(store, agg_fp, spec.output.overwrite)
    stored = _stored_table(store, say) if old is not None else None
    if old is not None and stored is not None and old.get("flags_fingerprint") == flag_fp:
        say(f"samples: reusing {store.join(SAMPLES_REL)} ({len(stored)} rows)")
        return _result(store, stored, old["reports"], "reused")
    if old is not None and stored is not None:
        table = stored.drop(columns=["pure", "test"])
        grid_json, status = old["coarse_grid"], "re-flagged"
        say("samples: purity/split settings changed; re-flagging the stored rows")
    else:
        table, grid = _aggregate(spec, plan, cube, frozen, patch_url, client, say)
        grid_json, status = _grid_json(grid), "written"
    flagged, reports = flag_samples(table, spec.purity, spec.forest_types.modelled, spec.split)
    meta = {
        "aggregation_fingerprint": agg_fp,
        "flags_fingerprint": flag_fp,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "gppscale": __version__,
        "coarse_grid": grid_json,
        "quarters": [q.label for q in plan.quarters],
        "features": feature_columns(flagged),
        "labels": dict.fromkeys(LABELS, "gC m-2 quarter-1"),
        "counts": type_counts(flagged),
        "reports": [r.__dict__ for r in reports],
    }
    data = _table_bytes(flagged, meta)
    store.write_bytes(SAMPLES_REL, data)
    store.write_json(SAMPLES_JSON, {**meta, "rows": len(flagged), "sha256": hashlib.sha256(data).hexdigest()})
    say(f"samples: wrote {store.join(SAMPLES_REL)}: {len(flagged)} rows, {flagged.cell.nunique()} cells")
    return _result(store, flagged, meta["reports"], status)


def _stored_table(store: RunStore, say: Progress) -> pd.DataFrame | None:
    """The stored table, or None when it is damaged (e.g. a run killed between its two writes)."""
    try:
        return read_samples(store)
    except StoreError as e:
        say(f"samples: cannot reuse the stored table ({e}); aggregating again")
        return None


def _result(
    store: RunStore, table: pd.DataFrame, reports: list[dict[str, Any]], status: str
) -> SamplesResult:
    return SamplesResult(
        store.join(SAMPLES_REL),
        len(table),
        int(table.cell.nunique()),
        type_counts(table),
        tuple(PurityReport(**r) for r in reports),
        status,
    )


def recorded_coarse_grid(described: Mapping[str, Any]) -> GeoBox:
    """The coarse grid recorded in ``samples.json`` (the dict :data:`SAMPLES_JSON` holds)."""
    from affine import Affine

    grid = described["coarse_grid"]
    return GeoBox(tuple(grid["shape"]), Affine(*grid["transform"]), grid["crs"])
