"""Errors raised by gppscale.

Every error a user can cause derives from :class:`GppscaleError`. A message says what failed, the
offending value, where it happened (file, collection, item, tile, forest type, quarter) and the
argument or action that fixes it.

Example:
    >>> try:
    ...     raise SpecError("area.bbox: west 190.0 is outside [-180, 180]; give longitudes in degrees")
    ... except GppscaleError as e:
    ...     print(e)
    area.bbox: west 190.0 is outside [-180, 180]; give longitudes in degrees
"""

from __future__ import annotations

__all__ = [
    "CatalogError",
    "CheckpointError",
    "DataWarning",
    "GppscaleError",
    "MissingAssetError",
    "MissingDependencyError",
    "NoDataError",
    "SpecError",
    "StoreError",
    "WorldError",
]


class GppscaleError(Exception):
    """Base class of every error gppscale raises on bad input or a failed run."""


class SpecError(GppscaleError, ValueError):
    """A run spec is malformed: unknown key, wrong type, or a value out of range."""


class WorldError(GppscaleError, ValueError):
    """A synthetic-world request cannot be met (unknown preset, bad area, unwritable folder)."""


class CatalogError(GppscaleError, RuntimeError):
    """A STAC catalog could not be served or reached."""


class MissingDependencyError(GppscaleError, ImportError):
    """An optional dependency is missing; the message names the extra that installs it."""


class NoDataError(GppscaleError, RuntimeError):
    """A search or a quarter has no usable data for the run's area and period."""


class MissingAssetError(GppscaleError, KeyError):
    """An item lacks an asset (or its projection metadata) that a stage needs."""

    def __str__(self) -> str:
        # KeyError quotes its message; show it as written.
        return str(self.args[0]) if self.args else ""


class StoreError(GppscaleError, RuntimeError):
    """The run store cannot be read or written, or holds outputs of another run."""


class CheckpointError(GppscaleError, ValueError):
    """A model checkpoint is missing, truncated, tampered with or does not match its metadata."""


class DataWarning(UserWarning):
    """Input data was usable only in part (items skipped, quarters thin); the message says what and why."""
