"""Where things live in a world folder, and its ``world.json`` manifest.

```
WORLD/world.json                        manifest: preset, seed, area, grids, collections, files
WORLD/stac/<collection>/collection.json STAC Collection
WORLD/stac/<collection>/items.ndjson    its Items (asset hrefs are file:// URLs)
WORLD/data/<collection>/...             Cloud-Optimized GeoTIFFs
WORLD/towers/sites.geojson, <site>.csv  FLUXNET2015-style half-hourly flux towers
WORLD/plots/plots.geojson               field plots with annual NPP
WORLD/truth/truth.zarr                  30 m quarterly truth and clean composites (scoring only)
WORLD/truth/towers.json                 true quarterly GPP at each tower
```
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gppscale.config import CollectionsSpec
from gppscale.errors import WorldError
from gppscale.world.grids import Grid
from gppscale.world.writers import write_json

__all__ = ["COLLECTIONS", "grid_dict", "read_manifest", "write_manifest"]

WORLD_JSON = "world.json"
STAC_DIR = "stac"
DATA_DIR = "data"
TOWERS_DIR = "towers"
TOWER_SITES = "towers/sites.geojson"
TOWER_TRUTH = "truth/towers.json"
PLOTS = "plots/plots.geojson"
TRUTH_ZARR = "truth/truth.zarr"

#: Run-spec role -> collection id: the data contract's names, which are the run spec's defaults.
COLLECTIONS: dict[str, str] = CollectionsSpec().ids()


def grid_dict(g: Grid) -> dict[str, Any]:
    """JSON form of a grid."""
    return {
        "crs": g.crs,
        "x0": g.x0,
        "y0": g.y0,
        "res_x": g.res_x,
        "res_y": g.res_y,
        "width": g.width,
        "height": g.height,
    }


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Write ``world.json``; it is written last, so its presence marks a complete world."""
    write_json(root / WORLD_JSON, manifest)


def read_manifest(world_dir: Path) -> dict[str, Any]:
    """Read a world's manifest, with a clear error when the folder is not a world."""
    path = Path(world_dir) / WORLD_JSON
    if not path.is_file():
        raise WorldError(
            f"{world_dir} is not a gppscale world ({WORLD_JSON} missing); run `gppscale world --out DIR`"
        )
    data: dict[str, Any] = json.loads(path.read_text())
    return data
