"""Presets of the synthetic world: where it lies, how large it is and which years it spans."""

from __future__ import annotations

from dataclasses import dataclass

from gppscale.errors import WorldError

__all__ = ["PRESETS", "WorldPreset", "resolve_preset"]


@dataclass(frozen=True)
class WorldPreset:
    """Size and place of a synthetic world.

    Attributes:
        name: Preset name.
        bbox_lonlat: The area of interest (west, south, east, north), degrees; a run spec's ``area.bbox``.
        years: Calendar years simulated.
        pad_px: Extra 30 m pixels simulated on every side of the area, so that every MODIS cell over the
            area (a sheared parallelogram about 1.1 km wide in UTM at 117 deg E) is fully covered by truth.
        n_towers: Flux towers.
        n_plots: Field plots.
    """

    name: str
    bbox_lonlat: tuple[float, float, float, float]
    years: tuple[int, ...]
    pad_px: int = 40
    n_towers: int = 2
    n_plots: int = 32


PRESETS: dict[str, WorldPreset] = {
    # Upper Luanhe basin (the paper's study area), UTM 50N, MODIS tile h26v04.
    "small": WorldPreset("small", (117.15, 42.06, 117.24, 42.13), (2021,)),
    "demo": WorldPreset("demo", (117.00, 41.95, 117.37, 42.23), (2020, 2021)),
    "basin": WorldPreset("basin", (116.70, 41.70, 118.19, 42.81), (2021,)),
}


def resolve_preset(name: str) -> WorldPreset:
    """Look a preset up by name, with a clear error naming the choices."""
    try:
        return PRESETS[name]
    except KeyError:
        raise WorldError(
            f"unknown world preset {name!r}; choose one of {sorted(PRESETS)} (e.g. --preset small)"
        ) from None
