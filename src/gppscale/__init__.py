"""gppscale: downscale coarse GPP/NPP products to 30 m over forests with deep learning.

The public API is re-exported here; see ``ARCHITECTURE.md`` for how the modules map to the stages.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from gppscale.errors import (
    CatalogError,
    GppscaleError,
    MissingDependencyError,
    SpecError,
    WorldError,
)

try:
    __version__ = version("gppscale")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

__all__ = [
    "CatalogError",
    "GppscaleError",
    "MissingDependencyError",
    "SpecError",
    "WorldError",
    "__version__",
]
