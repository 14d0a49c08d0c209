"""Pure computations over xarray/dask objects; I/O lives in :mod:`gppscale.io` (see ARCHITECTURE.md).

Each module pairs a NumPy kernel with a thin xarray wrapper that keeps dask inputs lazy:

* :mod:`~gppscale.stages.quarters`: calendar quarters, day overlaps of product windows with them.
* :mod:`~gppscale.stages.qa`: Landsat C2 QA_PIXEL masks, ``raster:bands`` scale/offset.
* :mod:`~gppscale.stages.composite`: quarterly median composites with the clear-observation count.
* :mod:`~gppscale.stages.indices`: NDVI, kNDVI, EVI, NDWI (McFeeters), NDMI (Gao).
* :mod:`~gppscale.stages.terrain`: slope, northness, eastness (Horn).
* :mod:`~gppscale.stages.meteo`: quarterly meteorology, lapse rate, terrain radiation factor.
* :mod:`~gppscale.stages.forest`: forest-type ids from land-cover codes.
* :mod:`~gppscale.stages.aggregate`: fine→coarse area weights, weighted means, NDVI CV, forest-type mix.
* :mod:`~gppscale.stages.coarse`: coarse GPP/NPP decoding and quarterly sums on the product's grid.
* :mod:`~gppscale.stages.purity`: pure coarse cells per forest type, spatially blocked split.
"""

from gppscale.stages.aggregate import (
    aggregate_chunk,
    aggregate_mean,
    aggregate_stats,
    fine_to_coarse_chunk,
)
from gppscale.stages.coarse import QUARTER_SUM_UNITS, RATE_UNITS, decode_coarse, quarterly_sums
from gppscale.stages.composite import median_composite_kernel, quarterly_composite
from gppscale.stages.forest import FOREST_TYPE_FILL, FOREST_TYPE_IDS, forest_type, forest_type_kernel
from gppscale.stages.indices import add_indices, evi, kndvi, ndmi, ndvi, ndwi
from gppscale.stages.meteo import (
    DIFFUSE_FRACTION,
    LAPSE_RATE_K_PER_M,
    quarterly_meteo,
    radiation_terrain_factor,
    temperature_at_elevation,
    temperature_to_sea_level,
)
from gppscale.stages.purity import PurityReport, blocked_split, select_pure
from gppscale.stages.qa import (
    DEFAULT_MASKED,
    QA_BITS,
    apply_scale_offset,
    clear_kernel,
    clear_mask,
    mask_bits,
)
from gppscale.stages.quarters import Quarter, overlap_days, quarters_of
from gppscale.stages.terrain import terrain, terrain_kernel

__all__ = [
    "DEFAULT_MASKED",
    "DIFFUSE_FRACTION",
    "FOREST_TYPE_FILL",
    "FOREST_TYPE_IDS",
    "LAPSE_RATE_K_PER_M",
    "QA_BITS",
    "QUARTER_SUM_UNITS",
    "RATE_UNITS",
    "PurityReport",
    "Quarter",
    "add_indices",
    "aggregate_chunk",
    "aggregate_mean",
    "aggregate_stats",
    "apply_scale_offset",
    "blocked_split",
    "clear_kernel",
    "clear_mask",
    "decode_coarse",
    "evi",
    "fine_to_coarse_chunk",
    "forest_type",
    "forest_type_kernel",
    "kndvi",
    "mask_bits",
    "median_composite_kernel",
    "ndmi",
    "ndvi",
    "ndwi",
    "overlap_days",
    "quarterly_composite",
    "quarterly_meteo",
    "quarterly_sums",
    "quarters_of",
    "radiation_terrain_factor",
    "select_pure",
    "temperature_at_elevation",
    "temperature_to_sea_level",
    "terrain",
    "terrain_kernel",
]
