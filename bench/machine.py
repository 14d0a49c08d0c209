"""What the numbers were measured on: CPU, cores, memory, load, package versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

PACKAGES = (
    "gppscale", "numpy", "dask", "distributed", "xarray", "zarr", "torch", "odc-stac", "stackstac",
    "rasterio", "rioxarray",
)  # fmt: skip


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what :mod:`platform` says."""
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def gpu() -> str | None:
    """The CUDA device's name, or None."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def describe() -> dict[str, Any]:
    """CPU model, cores, RAM, OS, Python, GDAL and package versions."""
    import rasterio

    return {
        "cpu": cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "ram_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "gdal": rasterio.__gdal_version__,
        "gpu": gpu(),
        "packages": {p: _version(p) for p in PACKAGES},
    }


def source(repo: Path) -> dict[str, Any]:
    """Which code ran: the git commit and whether ``src/`` had uncommitted changes.

    Outside a git checkout (e.g. a ``git archive`` snapshot) the commit comes from ``BENCH_SOURCE_COMMIT``.
    """
    import subprocess

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": os.environ.get("BENCH_SOURCE_COMMIT"), "tree": "snapshot (git archive)"}
    dirty = git("status", "--porcelain", "--", "src", "pipeline")
    return {"commit": commit, "tree": "dirty src/ or pipeline/" if dirty else "clean"}


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (other work on the machine skews timings)."""
    return [round(x, 2) for x in os.getloadavg()]
