"""The synthetic world: a physically plausible place that follows the data contract, with a known truth.

``make_world("small", Path("out/small/world"), seed=0)`` writes COGs, STAC collections and items, flux
towers, field plots and the 30 m truth. The world never imports the method's stages: it is an independent
implementation, so tests on it check the method instead of mirroring its bugs.
"""

from __future__ import annotations

from gppscale.world.build import make_world
from gppscale.world.layout import COLLECTIONS, read_manifest
from gppscale.world.presets import PRESETS, WorldPreset, resolve_preset

__all__ = ["COLLECTIONS", "PRESETS", "WorldPreset", "make_world", "read_manifest", "resolve_preset"]
