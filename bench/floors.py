"""Physical floors measured in the same run on the same machine.

* ``cog``: read + decode of every COG window the cube (or samples) stage reads, rasterio/GDAL in a thread
  pool over all cores, no reprojection, no compute.
* ``zarr``: write, then read back, the bytes of a finished Zarr store of the run (same arrays, chunks,
  shards, codecs and fill values), numpy in memory, zarr's own async concurrency.
* ``torch_forward``: the selected models' pure forward pass over in-memory float32 arrays with as many
  pixels of each forest type as the 30 m grid has, all cores (``torch.inference_mode``).
* ``torch_train``: fwd + bwd + Adam step of every trained network, on random in-memory tensors of its
  recorded sample count, batch size and epochs run (1 thread per task, divided by the worker count).
* ``stac_fetch``: start the same local STAC API and page through the same search with plain HTTP + JSON.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from gppscale.config import RunSpec
from gppscale.io.freeze import FrozenSearch, role_assets
from gppscale.plan import RunPlan

Item = dict[str, Any]


# --- COG read + decode -------------------------------------------------------------------------------


def _overlaps(item: Item, lo: np.datetime64, hi: np.datetime64) -> bool:
    from gppscale.io.cube import window_of

    start, end = window_of(item)
    return bool(start < hi and end > lo)


def role_items(spec: RunSpec, plan: RunPlan, frozen: FrozenSearch, role: str) -> list[Item]:
    """The items of ``role`` whose dates overlap the run's quarters (static roles: all; forest: one year)."""
    items = frozen.role(role)
    if role in ("dem",):
        return items
    if role == "forest_type":
        # Private helper on purpose: the floor must read exactly the map year the cube reads.
        from gppscale.io.cube import _pick_map_year

        return _pick_map_year(items, spec.years)
    lo, hi = plan.quarters[0].start, plan.quarters[-1].end
    return [i for i in items if _overlaps(i, np.datetime64(lo, "D"), np.datetime64(hi, "D"))]


def cog_hrefs(spec: RunSpec, plan: RunPlan, frozen: FrozenSearch, roles: Sequence[str]) -> list[str]:
    """Every asset href the stage reads for ``roles`` (one per item and needed asset)."""
    hrefs = []
    for role in roles:
        keys = list(role_assets(spec, role).values())
        hrefs += [i["assets"][k]["href"] for i in role_items(spec, plan, frozen, role) for k in keys]
    return hrefs


def _read_window(href: str, plan: RunPlan) -> int:
    """Decode the part of ``href`` that covers the run's grid; return the bytes decoded."""
    import rasterio
    from rasterio.windows import Window, from_bounds

    with rasterio.open(href) as src:
        bounds = plan.geobox.extent.to_crs(src.crs.to_wkt()).boundingbox
        win = from_bounds(*bounds, transform=src.transform)
        full = Window(0, 0, src.width, src.height)
        try:
            win = win.intersection(full).round_offsets().round_lengths()
        except Exception:
            return 0
        return int(src.read(window=win).nbytes)


def cog_floor(hrefs: Sequence[str], plan: RunPlan) -> dict[str, Any]:
    """Wall time of reading + decoding ``hrefs`` (their windows over the grid) with all cores."""
    start = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        nbytes = sum(pool.map(lambda h: _read_window(h, plan), hrefs))
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "files": len(hrefs),
        "decoded_mb": nbytes / 1e6,
        "mb_per_s": nbytes / 1e6 / seconds,
    }


# --- Zarr write + read -------------------------------------------------------------------------------


def _arrays(path: Path) -> dict[str, tuple[Any, np.ndarray]]:
    import zarr

    group = zarr.open_group(str(path), mode="r")
    return {name: (arr, arr[...]) for name, arr in group.arrays()}


def zarr_floor(src: Path, scratch: Path) -> dict[str, Any]:
    """Write the arrays of ``src`` (in memory) to ``scratch`` with the same encoding, then read them back."""
    import shutil

    import zarr

    arrays = _arrays(src)
    if scratch.exists():
        shutil.rmtree(scratch)
    start = time.perf_counter()
    group = zarr.open_group(str(scratch), mode="w")
    for name, (arr, values) in arrays.items():
        out = group.create_array(
            name,
            shape=arr.shape,
            dtype=arr.dtype,
            chunks=arr.chunks,
            shards=arr.shards,
            compressors=arr.compressors,
            filters=arr.filters,
            fill_value=arr.fill_value,
        )
        out[...] = values
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    back = zarr.open_group(str(scratch), mode="r")
    nbytes = sum(int(a[...].nbytes) for _, a in back.arrays())
    read_s = time.perf_counter() - start
    stored = sum(f.stat().st_size for f in scratch.rglob("*") if f.is_file())
    shutil.rmtree(scratch)
    return {
        "write_s": write_s,
        "read_s": read_s,
        "decoded_mb": nbytes / 1e6,
        "stored_mb": stored / 1e6,
        "arrays": len(arrays),
    }


# --- torch ---------------------------------------------------------------------------------------------


def type_pixel_counts(cube_path: Path) -> dict[str, int]:
    """30 m pixels of each modelled forest type in the cube."""
    import zarr

    from gppscale.stages.forest import FOREST_TYPE_IDS

    types = zarr.open_group(str(cube_path), mode="r")["forest_type"][...]
    return {name: int(np.sum(types == code)) for name, code in FOREST_TYPE_IDS.items()}


def _forward_batches(model: Any, batch: Any, n: int, batch_px: int, threads: int) -> float:  # noqa: ANN401
    """Seconds to run ``model`` over ``n`` pixels in batches of ``batch_px``, ``threads`` batches at once."""
    import torch

    sizes = [min(batch_px, n - i) for i in range(0, n, batch_px)]
    with torch.inference_mode():
        model(batch[:64])  # warm-up: first-call allocations and kernel selection are not the floor
    start = time.perf_counter()

    def one(size: int) -> None:
        with torch.inference_mode():
            model(batch[:size])

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, sizes))
    return time.perf_counter() - start


def torch_forward_floor(
    store_url: str, pixels: dict[str, int], n_quarters: int, batch_px: int, workers: int
) -> dict[str, Any]:
    """Forward pass of every selected model over as many in-memory pixels as its forest type has.

    Like the predict stage (``workers`` processes x 1 thread): torch runs 1 intra-op thread and
    ``workers`` batches run at once (torch releases the GIL). Batches are capped at 16384 px so that
    every worker has work even on a small grid.
    """
    import torch

    from gppscale.io.models import load_model, read_selection
    from gppscale.io.store import RunStore

    store = RunStore(store_url)
    torch.set_num_threads(1)
    total_s, total_px, per_model = 0.0, 0, {}
    batch_px = min(batch_px, 16384)
    for forest_type, kinds in read_selection(store).items():
        for target, kind in kinds.items():
            n = pixels.get(forest_type, 0)
            if kind in ("trees", "coarse") or n == 0:
                continue
            model = load_model(store, forest_type, target, kind).eval()
            batch = torch.randn(min(batch_px, n), n_quarters, model.n_features)
            seconds = _forward_batches(model, batch, n, batch_px, workers)
            per_model[f"{forest_type}/{target}/{kind}"] = {"pixels": n, "seconds": seconds}
            total_s, total_px = total_s + seconds, total_px + n
    torch.set_num_threads(os.cpu_count() or 1)
    return {
        "seconds": total_s,
        "pixels": total_px,
        "px_per_s": total_px / max(total_s, 1e-9),
        "models": per_model,
    }


def _train_records(run_dir: Path) -> list[dict[str, Any]]:
    skip = {"metrics.json", "selection.json"}
    records = [json.loads(p.read_text()) for p in (run_dir / "train").rglob("*.json") if p.name not in skip]
    return [r for r in records if r.get("kind") not in ("trees", "coarse") and "meta" in r]


def _fit_steps(kind: str, n_features: int, hyper: dict[str, Any], x: Any, epochs: int) -> float:  # noqa: ANN401
    import torch

    from gppscale.config import HyperParams
    from gppscale.models import build_model

    model = build_model(kind, n_features, HyperParams(**hyper))
    opt = torch.optim.Adam(model.parameters(), lr=float(hyper.get("learning_rate", 1e-3)))
    y = torch.rand(x.shape[0], x.shape[1])
    bs = int(hyper.get("batch_size", 256))
    start = time.perf_counter()
    for _ in range(epochs):
        for i in range(0, x.shape[0], bs):
            opt.zero_grad()
            loss = ((model(x[i : i + bs]) - y[i : i + bs]) ** 2).mean()
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def torch_train_floor(run_dir: Path, workers: int) -> dict[str, Any]:
    """fwd + bwd + Adam of every trained network over its recorded samples and epochs (1 thread each)."""
    import torch

    torch.set_num_threads(1)
    serial_s, samples = 0.0, 0
    records = _train_records(run_dir)
    for r in records:
        meta, metrics = r["meta"], r["meta"]["metrics"]
        n = int(metrics.get("n_train_cells", 0))
        epochs = int(metrics.get("epochs_run", meta["hyper"]["epochs"]))
        x = torch.randn(max(n, 1), len(meta["quarters"]), int(meta["n_features"]))
        serial_s += _fit_steps(r["kind"], int(meta["n_features"]), meta["hyper"], x, epochs)
        samples += n * epochs
    torch.set_num_threads(os.cpu_count() or 1)
    parallel = max(1, min(workers, len(records)))
    return {
        "seconds": serial_s / parallel,
        "serial_s": serial_s,
        "tasks": len(records),
        "sample_epochs": samples,
        "samples_per_s": samples / max(serial_s, 1e-9),
    }


# --- STAC fetch ------------------------------------------------------------------------------------------


def _get_json(url: str) -> tuple[dict[str, Any], int]:
    with urllib.request.urlopen(url, timeout=60) as resp:
        body = resp.read()
    return json.loads(body), len(body)


def _page_through(url: str) -> tuple[int, int]:
    items = nbytes = 0
    next_url: str | None = url
    while next_url:
        page, size = _get_json(next_url)
        items, nbytes = items + len(page.get("features", [])), nbytes + size
        next_url = next((link["href"] for link in page.get("links", []) if link.get("rel") == "next"), None)
    return items, nbytes


def stac_floor(spec: RunSpec, world_dir: Path) -> dict[str, Any]:
    """Start the world's STAC API, page through every collection's items in the bbox with plain HTTP."""
    from gppscale.io.catalog import serve_catalog

    start = time.perf_counter()
    with serve_catalog(world_dir) as url:
        started = time.perf_counter() - start
        collections = [c["id"] for c in _get_json(f"{url}/collections")[0]["collections"]]
        bbox = ",".join(str(v) for v in spec.area.bounds_lonlat())
        totals = [_page_through(f"{url}/search?collections={c}&bbox={bbox}&limit=500") for c in collections]
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "server_start_s": started,
        "items": sum(t[0] for t in totals),
        "mb": sum(t[1] for t in totals) / 1e6,
    }
