"""Ratios, targets, and the written results: JSON (every number), a Markdown table and a PNG plot."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FLOORS = {
    "search": "STAC API start + plain-HTTP paging of the same search",
    "cube": "COG read+decode (all cores) + Zarr write of the cube's bytes",
    "samples": "Zarr read of the cube + COG read of the coarse products",
    "train": "torch fwd+bwd+Adam of the same networks, samples and epochs / workers",
    "predict": "torch pure forward of the selected models (all 30 m forest px) + Zarr write of gpp.zarr",
    "validate": "Zarr read of gpp.zarr",
}
TARGETS = {"search": 2.0, "cube": 2.0, "samples": 2.0, "train": 2.0, "predict": 1.5, "validate": 2.0}


def stage_floors(f: Mapping[str, Any]) -> dict[str, float]:
    """Each stage's floor in seconds, from the measured floors."""
    return {
        "search": f["stac"]["seconds"],
        "cube": f["cog_cube"]["seconds"] + f["zarr_cube"]["write_s"],
        "samples": f["zarr_cube"]["read_s"] + f["cog_coarse"]["seconds"],
        "train": f["torch_train"]["seconds"],
        "predict": f["torch_forward"]["seconds"] + f["zarr_gpp"]["write_s"],
        "validate": f["zarr_gpp"]["read_s"],
    }


def stage_rows(stages: Mapping[str, Any], floors: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per stage: wall time, floor, ratio, target, peaks."""
    per_stage = stage_floors(floors)
    rows = []
    for name, t in stages.items():
        floor = per_stage.get(name)
        ratio = t["seconds"] / floor if floor else None
        rows.append(
            {
                "stage": name,
                "seconds": t["seconds"],
                "floor_s": floor,
                "ratio": ratio,
                "target": TARGETS.get(name),
                "meets": None if ratio is None else ratio <= TARGETS[name],
                "driver_gib": t["driver_gib"],
                "max_worker_gib": t["max_worker_gib"],
                "floor": FLOORS.get(name),
            }
        )
    return rows


def _f(value: Any, digits: int = 2) -> str:  # noqa: ANN401 - a number or None
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(_f(c) for c in r) + " |" for r in rows]


def _stages_md(res: Mapping[str, Any]) -> list[str]:
    rows = [
        [r["stage"], r["seconds"], r["floor_s"], r["ratio"], f"≤ {r['target']}", r["meets"], r["driver_gib"],
         r["max_worker_gib"], r["floor"]]
        for r in res["stage_rows"]
    ]  # fmt: skip
    header = ["stage", "wall s", "floor s", "ratio", "target", "met", "driver GiB", "worker GiB", "floor"]
    extra = res["extra_ratios"]
    return [
        "### Stages against their floors",
        "",
        *_table(header, rows),
        "",
        f"predict / pure forward alone: {_f(extra['predict_over_forward'])} (target ≤ 1.5); "
        f"cube / COG read alone: {_f(extra['cube_over_cog'])}; "
        f"inference path (map_blocks, no write) / pure forward: {_f(extra['inference_over_forward'])}.",
        "",
    ]


def _floors_md(f: Mapping[str, Any]) -> list[str]:
    cog, coarse, zc, zg = f["cog_cube"], f["cog_coarse"], f["zarr_cube"], f["zarr_gpp"]
    fwd, tr, stac = f["torch_forward"], f["torch_train"], f["stac"]
    return [
        "### Floors",
        "",
        f"- COG read+decode, cube inputs: {cog['files']} files, {cog['decoded_mb']:.0f} MB in "
        f"{cog['seconds']:.2f} s ({cog['mb_per_s']:.0f} MB/s)",
        f"- COG read+decode, coarse products: {coarse['files']} files in {coarse['seconds']:.2f} s",
        f"- Zarr cube: {zc['decoded_mb']:.0f} MB ({zc['stored_mb']:.0f} MB stored), write "
        f"{zc['write_s']:.2f} s, read {zc['read_s']:.2f} s",
        f"- Zarr gpp: {zg['decoded_mb']:.0f} MB ({zg['stored_mb']:.0f} MB stored), write "
        f"{zg['write_s']:.2f} s, read {zg['read_s']:.2f} s",
        f"- torch forward: {fwd['pixels']} px in {fwd['seconds']:.2f} s ({fwd['px_per_s']:.3g} px/s)",
        f"- torch train: {tr['tasks']} networks, {tr['sample_epochs']} sample-epochs, {tr['serial_s']:.2f} s "
        f"serial ({tr['samples_per_s']:.3g} samples/s)",
        f"- STAC: {stac['items']} items ({stac['mb']:.1f} MB JSON) in {stac['seconds']:.2f} s (server start "
        f"{stac['server_start_s']:.2f} s)",
        "",
    ]


def _loader_md(lo: Mapping[str, Any]) -> str:
    ss = lo.get("stackstac", {})
    if "error" in ss:
        return f"- stackstac failed: {ss['error']}"
    a, odc = lo.get("agreement", {}), lo["odc_stac"]
    return (
        f"- Load {lo['items']} Landsat items x {len(lo['assets'])} assets onto {lo['grid']} px: odc-stac "
        f"{odc['seconds']:.2f} s ({odc['tasks']} tasks), stackstac {ss['seconds']:.2f} s ({ss['tasks']} "
        f"tasks); stackstac / odc-stac = {lo['stackstac_over_odc']:.2f}. Agreement: identical share "
        f"{_f(a.get('identical_share'), 4)}, max |diff| {_f(a.get('max_abs_diff'))}, "
        f"{a.get('px_compared')} values compared."
    )


def _aggregation_md(ag: Mapping[str, Any]) -> str:
    return (
        f"- Aggregate `{ag['variable']}` {ag['fine_shape']} → {ag['coarse_shape']} coarse: aggregate_mean "
        f"{ag['aggregate_mean_s']:.2f} s; xarray coarsen({ag['coarsen_block']}) "
        f"{ag['xarray_coarsen_s']:.2f} s (wrong grid); rioxarray average {ag['rioxarray_average_s']:.2f} s "
        f"(+ {ag['rioxarray_load_s']:.2f} s load), median relative difference to ours "
        f"{_f(ag['rio_vs_ours_median_rel_diff'], 4)} (p95 {_f(ag['rio_vs_ours_p95_rel_diff'], 4)})."
    )


def _peers_md(p: Mapping[str, Any]) -> list[str]:
    inf = p["inference"]
    return [
        "### Peers",
        "",
        _loader_md(p["loader"]),
        _aggregation_md(p["aggregation"]),
        f"- Inference path (map_blocks over the cube, both targets, no write): {inf['seconds']:.2f} s for "
        f"{inf['pixels']} px.",
        "",
    ]


def _scaling_md(sc: Mapping[str, Any]) -> list[str]:
    rows = []
    for name, r in sc["rows"].items():
        w = f"{r['workers']}w"
        rows.append(
            [name, f"{r['graph']['shape_yx'][0]}x{r['graph']['shape_yx'][1]}", r["graph"]["chunks"],
             r["graph"]["cube_tasks_per_chunk"], r["search"]["seconds"], r["cube"]["seconds"],
             r["samples"]["seconds"], r["total_s"], sc["ratios"][w]["time"].get(name),
             r["max_worker_gib"], sc["ratios"][w]["peak_worker_memory"].get(name)]
        )  # fmt: skip
    header = ["run", "px", "chunks", "tasks/chunk", "search s", "cube s", "samples s", "total s",
              "time ratio", "peak worker GiB", "memory ratio"]  # fmt: skip
    lines = [
        "### Scaling with area (search + cube + samples, demo world, 1 year)",
        "",
        *_table(header, rows),
        "",
    ]
    marginal = ", ".join(f"{k}: {v:.0f}" for k, v in sc.get("marginal_tasks_per_chunk", {}).items())
    lines += [
        f"Cube graph: tasks added per added chunk {marginal} (a fixed part is shared by all chunks).",
        "",
    ]
    if "speedup" in sc:
        lines += [
            "Speed-up of 2 workers over 1: " + ", ".join(f"{k} {v:.2f}" for k, v in sc["speedup"].items()),
            "",
        ]
    return lines


def _gpu_md(g: Mapping[str, Any]) -> list[str]:
    header = ["network", "CPU train samples/s", "CPU inference px/s"]
    gpu = g.get("gpu", {})
    if gpu:
        header += ["GPU train samples/s", "GPU inference px/s", "GPU/CPU train", "GPU/CPU inference"]
    rows = []
    for kind, cpu in g.get("cpu", {}).items():
        row = [kind, f"{cpu['train_samples_per_s']:.3g}", f"{cpu['infer_px_per_s']:.3g}"]
        if gpu:
            r = g["gpu_over_cpu"][kind]
            row += [f"{gpu[kind]['train_samples_per_s']:.3g}", f"{gpu[kind]['infer_px_per_s']:.3g}",
                    r["train_samples_per_s"], r["infer_px_per_s"]]  # fmt: skip
        rows.append(row)
    note = g.get("skipped") or f"GPU: {g.get('device')}"
    return ["### GPU", "", note + ".", "", *_table(header, rows), ""]


def markdown(res: Mapping[str, Any]) -> str:
    """The results as Markdown."""
    m, src = res["machine"], res.get("source", {})
    lines = [
        f"## {res['preset']} — {res['date']}",
        "",
        f"Machine: {m['cpu']}, {m['cores_logical']} logical cores, {m['ram_gib']} GiB RAM, {m['os']}; "
        f"Python {m['python']}, torch {m['packages']['torch']}, dask {m['packages']['dask']}, "
        f"GDAL {m['gdal']}; GPU: {m['gpu'] or 'none'}. {res['workers']} worker processes x 1 thread. "
        f"Load average (1/5/15 min) at start {res['load_start']}, at end {res['load_end']} — other work "
        f"ran on this machine, so timings are noisy. Total bench wall time {res['bench_wall_s']:.0f} s. "
        f"Code: gppscale commit {src.get('commit') or '?'} ({src.get('tree', '?')}).",
        "",
        *_stages_md(res),
        *_floors_md(res["floors"]),
        *_peers_md(res["peers"]),
    ]
    if res.get("scaling"):
        lines += _scaling_md(res["scaling"])
    lines += _gpu_md(res["gpu"])
    return "\n".join(lines)


def plot(res: Mapping[str, Any], path: Path) -> None:
    """Stage ratios against targets and, when measured, time/memory ratios against area."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sc = res.get("scaling")
    fig, axes = plt.subplots(1, 2 if sc else 1, figsize=(11 if sc else 6, 4), squeeze=False)
    ax = axes[0][0]
    rows = [r for r in res["stage_rows"] if r["ratio"] is not None]
    ax.bar([r["stage"] for r in rows], [r["ratio"] for r in rows], color="tab:blue")
    ax.scatter(
        [r["stage"] for r in rows], [r["target"] for r in rows], marker="_", s=400, c="red", label="target"
    )
    ax.set_yscale("log")
    ax.set_ylabel("stage wall time / floor")
    ax.set_title(f"{res['preset']}: stages against their floors")
    ax.legend()
    if sc:
        ax = axes[0][1]
        for w, ratios in sc["ratios"].items():
            names = list(ratios["time"])
            scales = [sc["rows"][n]["scale"] for n in names]
            ax.plot(scales, [ratios["time"][n] for n in names], "o-", label=f"time, {w}")
            mem = ratios["peak_worker_memory"]
            ax.plot(scales, [mem.get(n) for n in names], "s--", label=f"peak worker memory, {w}")
        top = max(r["scale"] for r in sc["rows"].values())
        ax.plot([1, top], [1, top], ":", c="grey", label="linear")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("area (x base)")
        ax.set_ylabel("ratio to base")
        ax.set_title("scaling with area")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(res: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Write ``<date>-<preset>.json``, ``.md`` and ``.png``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{res['date']}-{res['preset']}"
    paths = [stem.with_suffix(".json"), stem.with_suffix(".md"), stem.with_suffix(".png")]
    paths[0].write_text(json.dumps(res, indent=1, default=str) + "\n")
    paths[1].write_text(markdown(res) + "\n")
    plot(res, paths[2])
    return paths
