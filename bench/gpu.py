"""Optional GPU section: training samples/s and inference px/s of the run's own networks, CPU vs GPU.

Skipped, with the reason, when torch sees no CUDA device; the CPU numbers are measured either way so that
a later GPU run has its baseline in the same file format.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

TRAIN_SAMPLES = 4096
INFER_PX = 65536
BATCH_PX = 16384


def _networks(run_dir: Path) -> list[dict[str, Any]]:
    """One trained record per network kind (its meta: features, quarters, hyper-parameters)."""
    from bench.floors import _train_records

    by_kind: dict[str, dict[str, Any]] = {}
    for record in _train_records(run_dir):
        by_kind.setdefault(record["kind"], record)
    return [by_kind[k] for k in sorted(by_kind)]


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _train_rate(record: dict[str, Any], device: str) -> float:
    """fwd + bwd + Adam samples per second of a fresh network of the record's kind and size."""
    import torch

    from gppscale.config import HyperParams
    from gppscale.models import build_model

    meta = record["meta"]
    hyper = HyperParams(**meta["hyper"])
    model = build_model(record["kind"], int(meta["n_features"]), hyper).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=hyper.learning_rate)
    x = torch.randn(TRAIN_SAMPLES, len(meta["quarters"]), int(meta["n_features"]), device=device)
    y = torch.rand(TRAIN_SAMPLES, len(meta["quarters"]), device=device)
    bs = hyper.batch_size
    _sync(device)
    start = time.perf_counter()
    for i in range(0, TRAIN_SAMPLES, bs):
        opt.zero_grad()
        ((model(x[i : i + bs]) - y[i : i + bs]) ** 2).mean().backward()
        opt.step()
    _sync(device)
    return TRAIN_SAMPLES / (time.perf_counter() - start)


def _infer_rate(record: dict[str, Any], device: str) -> float:
    """Forward px per second of the record's network kind, batches of :data:`BATCH_PX`."""
    import torch

    from gppscale.config import HyperParams
    from gppscale.models import build_model

    meta = record["meta"]
    model = build_model(record["kind"], int(meta["n_features"]), HyperParams(**meta["hyper"])).to(device)
    model.eval()
    x = torch.randn(BATCH_PX, len(meta["quarters"]), int(meta["n_features"]), device=device)
    with torch.inference_mode():
        model(x[:64])
        _sync(device)
        start = time.perf_counter()
        for _ in range(INFER_PX // BATCH_PX):
            model(x)
        _sync(device)
    return INFER_PX / (time.perf_counter() - start)


def device_rates(run_dir: Path, device: str) -> dict[str, dict[str, float]]:
    """Training samples/s and inference px/s per network kind on ``device``."""
    return {
        r["kind"]: {"train_samples_per_s": _train_rate(r, device), "infer_px_per_s": _infer_rate(r, device)}
        for r in _networks(run_dir)
    }


def gpu_section(run_dir: Path) -> dict[str, Any]:
    """CPU rates always; GPU rates and GPU/CPU ratios when a CUDA device is present."""
    import os

    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    out: dict[str, Any] = {"cpu": device_rates(run_dir, "cpu")}
    if not torch.cuda.is_available():
        out["skipped"] = (
            "GPU section skipped: torch sees no CUDA device on this machine (torch.cuda.is_available() is "
            "False); the CPU rates in this section are the baseline a GPU machine is compared with"
        )
        return out
    out["device"] = torch.cuda.get_device_name(0)
    out["gpu"] = device_rates(run_dir, "cuda")
    out["gpu_over_cpu"] = {
        kind: {k: out["gpu"][kind][k] / v for k, v in rates.items()} for kind, rates in out["cpu"].items()
    }
    return out
