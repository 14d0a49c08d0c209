"""The run spec as immutable, typed pydantic models.

Every block rejects unknown keys (``extra="forbid"``) and is frozen; lists become tuples and mappings
become :class:`~gppscale.config._types.FrozenDict`. Units are in the field names (``resolution_m``,
``max_cloud_cover_pct``) or in the field docstrings, which also become the descriptions of
``pipeline/schema.json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar

import pyproj
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    WithJsonSchema,
    model_validator,
)
from pyproj.exceptions import CRSError
from shapely.geometry.base import BaseGeometry

from gppscale.config._geo import BBox, bbox_to_geometry, check_bbox, geojson_to_geometry, utm_epsg_for
from gppscale.config._types import (
    DataPath,
    FrozenDict,
    HttpUrl,
    LocalFolder,
    LocalGlob,
    MemoryLimit,
    NonEmptyStr,
    Quarters,
    SchedulerAddress,
    Slug,
    Years,
    deep_freeze,
    unique_items,
)
from gppscale.errors import SpecError

__all__ = [
    "FOREST_TYPES",
    "AreaSpec",
    "CatalogSpec",
    "ClusterSpec",
    "CoarseCollection",
    "CoarseSpec",
    "CollectionsSpec",
    "ForestType",
    "ForestTypesSpec",
    "GridSpec",
    "HyperParams",
    "HyperSpec",
    "KubernetesSpec",
    "ModelsSpec",
    "OutputSpec",
    "PurityParams",
    "PuritySpec",
    "RunSpec",
    "SplitSpec",
    "ValidationSpec",
]

ForestType = Literal["ENF", "DBF", "MF", "DNF", "EBF"]
"""Forest types of GLC_FCS30: evergreen/deciduous needleleaf, deciduous/evergreen broadleaf, mixed."""

FOREST_TYPES: tuple[ForestType, ...] = ("ENF", "DBF", "MF", "DNF", "EBF")
ModelKind = Literal["dnn", "cnn", "bpnn", "rnn"]
BaselineKind = Literal["trees", "coarse"]
CoarseUnits = Literal["gC m-2 d-1", "gC m-2 8d-1", "kgC m-2 d-1"]

_P = TypeVar("_P", bound=BaseModel)


class _Block(BaseModel):
    """Base of every spec block: unknown keys rejected, frozen, finite floats, docstrings as descriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True)

    def __dask_tokenize__(self) -> tuple[str, str]:
        # A stable token from the content, so that graph layer names such as f"purity-{tokenize(p)}" repeat
        # across processes (dask would otherwise fall back to pickling the object).
        content = self.model_dump(mode="json", by_alias=True)
        return type(self).__qualname__, json.dumps(content, sort_keys=True)


def _check_forest_type(forest_type: str) -> None:
    if forest_type not in FOREST_TYPES:
        raise SpecError(f"unknown forest type {forest_type!r}; choose one of {', '.join(FOREST_TYPES)}")


def _merged(default: _P, override: BaseModel | None) -> _P:
    """``default`` with the fields the override block sets (not None); both were validated already."""
    if override is None:
        return default
    return default.model_copy(update=override.model_dump(exclude_none=True))


# --- area -------------------------------------------------------------------------------------------


def _norm_geojson(value: object) -> object:
    if value is None or (isinstance(value, str) and value.strip()):
        return value
    if isinstance(value, Mapping):
        return deep_freeze(value)
    raise ValueError(f"{value!r} is neither a GeoJSON file path nor an inline GeoJSON geometry mapping")


_GEOJSON_SCHEMA = {
    "anyOf": [
        {"type": "string", "minLength": 1, "description": "path of a GeoJSON file"},
        {"type": "object", "description": "inline GeoJSON geometry, Feature or FeatureCollection"},
        {"type": "null"},
    ]
}


class AreaSpec(_Block):
    """Where to run: exactly one of a lon/lat ``bbox`` or a ``geojson`` area."""

    bbox: Annotated[BBox, AfterValidator(check_bbox)] | None = None
    """[west, south, east, north] in degrees of longitude/latitude (WGS 84)."""

    geojson: Annotated[Any, AfterValidator(_norm_geojson), WithJsonSchema(_GEOJSON_SCHEMA)] = None
    """Path of a GeoJSON file (relative to the spec file) or an inline geometry, in lon/lat degrees."""

    _geometry: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.bbox is None) == (self.geojson is None):
            given = "both" if self.bbox is not None else "neither"
            raise ValueError(
                f"give exactly one of 'bbox' ([west, south, east, north] in degrees) or 'geojson' "
                f"(a file path or an inline geometry); {given} given"
            )
        if self.geojson is not None:
            self._geometry = geojson_to_geometry(self.geojson)
        return self

    def bounds_lonlat(self) -> BBox:
        """The area's (west, south, east, north) in degrees: the bbox, or the bounds of the geometry.

        Example:
            >>> AreaSpec(bbox=(117.0, 41.95, 117.37, 42.23)).bounds_lonlat()
            (117.0, 41.95, 117.37, 42.23)
        """
        if self.bbox is not None:
            return self.bbox
        west, south, east, north = (float(v) for v in self._geometry.bounds)
        return (west, south, east, north)

    def geometry_lonlat(self) -> BaseGeometry:
        """The area as a shapely (Multi)Polygon in lon/lat degrees (a box when only ``bbox`` is given)."""
        if self._geometry is not None:
            return self._geometry
        return bbox_to_geometry(self.bounds_lonlat())


# --- catalog and collections -------------------------------------------------------------------------


class CatalogSpec(_Block):
    """Where the inputs come from: exactly one of a STAC API ``url`` or a synthetic ``world`` folder."""

    url: HttpUrl | None = None
    """http(s) URL of a STAC API, e.g. https://planetarycomputer.microsoft.com/api/stac/v1."""

    world: LocalFolder | None = None
    """Local folder of a synthetic world (``gppscale world``); gppscale serves its STAC API itself."""

    max_cloud_cover_pct: float = Field(80.0, ge=0, le=100)
    """Landsat scenes with ``eo:cloud_cover`` above this percentage are skipped (filtered client-side)."""

    sign: Literal["none", "planetary-computer"] = "none"
    """How asset URLs are signed at read time: 'planetary-computer' for Microsoft Planetary Computer."""

    requester_pays: bool = False
    """Whether S3 assets are read with requester-pays (e.g. the USGS Landsat bucket)."""

    check_hrefs: bool = True
    """Whether the search stage checks that every needed asset's href exists (a stat or HEAD per asset);
    items with a broken href are then skipped with a warning instead of failing the cube stage."""

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.url is None) == (self.world is None):
            given = "both" if self.url is not None else "neither"
            raise ValueError(
                "give exactly one of 'url' (a STAC API, e.g. https://earth-search.aws.element84.com/v1) "
                f"or 'world' (a local synthetic-world folder); {given} given"
            )
        if self.world is not None and self.sign != "none":
            raise ValueError(
                f"sign {self.sign!r} applies to a remote catalog; a local world needs sign: none"
            )
        return self

    @property
    def is_world(self) -> bool:
        """Whether the catalog is a local synthetic world."""
        return self.world is not None


class _Assets(_Block):
    """Canonical asset names (the keys) mapped to the asset keys used by the catalog (the values)."""

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        unique_items(tuple(self.as_dict().values()))
        return self

    def as_dict(self) -> dict[str, str]:
        """``{canonical_name: asset_key}`` as a new plain dict."""
        return {name: getattr(self, name) for name in type(self).model_fields}

    def __getitem__(self, canonical_name: str) -> str:
        if canonical_name not in type(self).model_fields:
            raise KeyError(f"{canonical_name!r}; canonical names are {', '.join(type(self).model_fields)}")
        value: str = getattr(self, canonical_name)
        return value


class LandsatAssets(_Assets):
    """Landsat Collection 2 Level-2 surface reflectance bands and the QA band."""

    coastal: NonEmptyStr = "coastal"
    """Band 1, coastal aerosol (0.43-0.45 um)."""
    blue: NonEmptyStr = "blue"
    """Band 2, blue."""
    green: NonEmptyStr = "green"
    """Band 3, green."""
    red: NonEmptyStr = "red"
    """Band 4, red."""
    nir08: NonEmptyStr = "nir08"
    """Band 5, near infrared (0.85 um)."""
    swir16: NonEmptyStr = "swir16"
    """Band 6, shortwave infrared 1.6 um."""
    swir22: NonEmptyStr = "swir22"
    """Band 7, shortwave infrared 2.2 um."""
    qa_pixel: NonEmptyStr = "qa_pixel"
    """QA_PIXEL bit flags (fill, dilated cloud, cirrus, cloud, shadow, snow, clear, water)."""


class MeteorologyAssets(_Assets):
    """Meteorological grids."""

    tmean: NonEmptyStr = "tmean"
    """Mean air temperature, degC."""
    prcp: NonEmptyStr = "prcp"
    """Precipitation, mm d-1."""
    srad: NonEmptyStr = "srad"
    """Shortwave downward radiation, W m-2."""
    vpd: NonEmptyStr = "vpd"
    """Vapour pressure deficit, hPa."""


class DataAssets(_Assets):
    """A single raster asset."""

    data: NonEmptyStr = "data"
    """The raster."""


class ClassificationAssets(_Assets):
    """A land-cover classification raster."""

    classification: NonEmptyStr = "classification"
    """GLC_FCS30 class codes, uint8."""


class LandsatCollection(_Block):
    """Landsat C2 L2 scenes (surface reflectance, QA_PIXEL)."""

    id: NonEmptyStr = "landsat-c2-l2"
    """STAC collection id."""
    assets: LandsatAssets = Field(default_factory=LandsatAssets)
    """Canonical band name -> asset key in the catalog (e.g. nir08: SR_B5)."""


class DemCollection(_Block):
    """Digital elevation model, metres."""

    id: NonEmptyStr = "cop-dem-glo-30"
    """STAC collection id."""
    assets: DataAssets = Field(default_factory=DataAssets)
    """Canonical name -> asset key in the catalog."""


class ForestTypeCollection(_Block):
    """Forest-type map with GLC_FCS30 codes."""

    id: NonEmptyStr = "glc-fcs30d"
    """STAC collection id."""
    assets: ClassificationAssets = Field(default_factory=ClassificationAssets)
    """Canonical name -> asset key in the catalog."""


class MeteorologyCollection(_Block):
    """Meteorology (tmean, prcp, srad, vpd), daily or 8-day, about 1 km."""

    id: NonEmptyStr = "meteo-8day"
    """STAC collection id."""
    assets: MeteorologyAssets = Field(default_factory=MeteorologyAssets)
    """Canonical variable name -> asset key in the catalog."""


_FILE_DATE_GROUPS: tuple[frozenset[str], ...] = (
    frozenset({"year", "doy"}),
    frozenset({"year", "month", "day"}),
)
"""The named-group sets a ``file_date`` pattern may use: year + day of year, or year + month + day."""


def _check_file_date(pattern: str) -> str:
    """Refuse a ``file_date`` regex that does not compile or lacks the date's named groups."""
    try:
        groups = frozenset(re.compile(pattern).groupindex)
    except re.error as e:
        raise ValueError(
            f"file_date {pattern!r} is not a regular expression ({e}); write e.g. "
            r"'A(?P<year>\d{4})(?P<doy>\d{3})' for GLASS names such as ...A2021161..."
        ) from e
    matching = [need for need in _FILE_DATE_GROUPS if need <= groups]
    if len(matching) != 1:
        given = ", ".join(sorted(groups)) or "none"
        raise ValueError(
            f"file_date {pattern!r} needs the named groups year and doy, or year, month and day (exactly "
            f"one of the two sets); its groups: {given}. Write e.g. "
            r"'A(?P<year>\d{4})(?P<doy>\d{3})' or '(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})'"
        )
    return pattern


class CoarseCollection(_Block):
    """A coarse product: items from a STAC collection, or from local files when ``files`` is set."""

    assets: DataAssets = Field(default_factory=DataAssets)
    """Canonical name -> asset key in the catalog (also the asset key of items built from files)."""
    files: LocalGlob | None = None
    """Local files instead of the STAC collection: a glob (relative to the spec file) such as
    /data/glass/GLASS_GPP_*.tif or *.hdf, or a folder (all its files). The catalog is then not searched
    for this role; each file is one item whose window starts at the date in its name."""
    file_date: Annotated[str, AfterValidator(_check_file_date)] = r"A(?P<year>\d{4})(?P<doy>\d{3})"
    """Regular expression searched in each file name for its window's first day: named groups year
    and doy (day of year), or year, month and day. The default reads GLASS/MODIS names (A2021161)."""
    window_days: int = Field(8, ge=1)
    """Days each file's values stand for, from its date; clipped at the end of that year (so the last
    8-day window of a year is 5 or 6 days, as in GLASS)."""
    subdataset: NonEmptyStr | None = None
    """For container files (HDF4, HDF5, NetCDF): the variable to read, e.g. GPP; the file's subdataset
    whose GDAL name ends with it (or, for HDF4 datasets named by index, whose description names it) is
    used. Leave unset for GeoTIFF."""

    @model_validator(mode="after")
    def _subdataset_needs_files(self) -> Self:
        if self.subdataset is not None and self.files is None:
            raise ValueError(
                f"subdataset {self.subdataset!r} applies to local files only; set 'files' (e.g. "
                "/data/glass/*.hdf) or remove 'subdataset'"
            )
        return self


class CoarseGppCollection(CoarseCollection):
    """Coarse GPP product (e.g. GLASS V60 GPP, 500 m, 8-day)."""

    id: NonEmptyStr = "glass-gpp"
    """STAC collection id (unused when files is set)."""


class CoarseNppCollection(CoarseCollection):
    """Coarse NPP product (e.g. GLASS V60 NPP)."""

    id: NonEmptyStr = "glass-npp"
    """STAC collection id (unused when files is set)."""


class ReferenceGppCollection(_Block):
    """Reference 30 m quarterly GPP, gC m-2 quarter-1 (validation only)."""

    id: NonEmptyStr = "reference-gpp"
    """STAC collection id."""
    assets: DataAssets = Field(default_factory=DataAssets)
    """Canonical name -> asset key in the catalog."""


class ReferenceNppCollection(_Block):
    """Reference 30 m quarterly NPP, gC m-2 quarter-1 (validation only)."""

    id: NonEmptyStr = "reference-npp"
    """STAC collection id."""
    assets: DataAssets = Field(default_factory=DataAssets)
    """Canonical name -> asset key in the catalog."""


class CollectionsSpec(_Block):
    """The STAC collection of each input role and how its assets are named."""

    landsat: LandsatCollection = Field(default_factory=LandsatCollection)
    """Landsat C2 L2 surface reflectance."""
    dem: DemCollection = Field(default_factory=DemCollection)
    """Elevation, metres."""
    forest_type: ForestTypeCollection = Field(default_factory=ForestTypeCollection)
    """GLC_FCS30 forest types."""
    meteorology: MeteorologyCollection = Field(default_factory=MeteorologyCollection)
    """Temperature, precipitation, shortwave radiation, VPD."""
    coarse_gpp: CoarseGppCollection = Field(default_factory=CoarseGppCollection)
    """Coarse GPP to downscale."""
    coarse_npp: CoarseNppCollection = Field(default_factory=CoarseNppCollection)
    """Coarse NPP to downscale."""
    reference_gpp: ReferenceGppCollection | None = Field(default_factory=ReferenceGppCollection)
    """Reference 30 m GPP for validation; null when the catalog has none."""
    reference_npp: ReferenceNppCollection | None = Field(default_factory=ReferenceNppCollection)
    """Reference 30 m NPP for validation; null when the catalog has none."""

    STATIC_ROLES: ClassVar[frozenset[str]] = frozenset({"dem", "forest_type"})
    """Roles whose items carry no run-year dates: search them without a datetime filter."""
    OPTIONAL_ROLES: ClassVar[frozenset[str]] = frozenset({"reference_gpp", "reference_npp"})
    """Roles a run can do without (validation against a reference product is then skipped)."""

    def ids(self) -> dict[str, str]:
        """Role -> collection id of every role that is set, in declaration order."""
        roles = ((role, getattr(self, role)) for role in type(self).model_fields)
        return {role: coll.id for role, coll in roles if coll is not None}


# --- grid and coarse product -------------------------------------------------------------------------


def _norm_crs(value: str) -> str:
    """``"auto"``, or any CRS pyproj understands, normalised to ``"EPSG:nnnn"``."""
    if value == "auto":
        return value
    try:
        crs = pyproj.CRS.from_user_input(value)
    except CRSError as e:
        raise ValueError(
            f"{value!r} is not a CRS pyproj understands ({e}); write 'auto' or e.g. 'EPSG:32650'"
        ) from e
    units = {axis.unit_name for axis in crs.axis_info}
    if not crs.is_projected or not units <= {"metre", "meter"}:
        raise ValueError(
            f"{value!r} is not a projected CRS in metres (resolution_m is in metres); "
            "write 'auto' for the UTM zone of the area or e.g. 'EPSG:32650'"
        )
    epsg = crs.to_epsg()
    if epsg is None:
        raise ValueError(f"{value!r} has no EPSG code; gppscale needs one: write e.g. 'EPSG:32650' or 'auto'")
    return f"EPSG:{epsg}"


class GridSpec(_Block):
    """The 30 m target grid."""

    crs: Annotated[str, AfterValidator(_norm_crs)] = "auto"
    """'auto' (WGS 84 UTM zone of the area centre) or a projected CRS in metres with an EPSG code."""

    resolution_m: float = Field(30.0, gt=0, le=10_000)
    """Pixel size, metres."""

    chunk_px: int = Field(512, ge=64, le=4096, multiple_of=64)
    """Side of a square Dask/Zarr chunk, pixels (a multiple of 64 from 64 to 4096)."""

    def resolve_epsg(self, bounds_lonlat: BBox) -> int:
        """EPSG code of the target grid for an area with these (west, south, east, north) degrees.

        Example:
            >>> GridSpec().resolve_epsg((117.0, 41.95, 117.37, 42.23))
            32650
            >>> GridSpec(crs="EPSG:3857").resolve_epsg((117.0, 41.95, 117.37, 42.23))
            3857
        """
        if self.crs != "auto":
            return int(self.crs.split(":")[1])
        west, south, east, north = bounds_lonlat
        return utm_epsg_for((west + east) / 2.0, (south + north) / 2.0)


_UNIT_TO_GC_M2_D: dict[str, float] = {"gC m-2 d-1": 1.0, "gC m-2 8d-1": 1.0 / 8.0, "kgC m-2 d-1": 1000.0}
_MAX_VALID_DEFAULT = 30.0  # gC m-2 d-1: above any forest's daily GPP


class CoarseSpec(_Block):
    """How stored values of the coarse GPP/NPP product become physical ones: value = raw * scale + offset."""

    scale: float = Field(0.01, gt=0)
    """Multiplier applied to the stored integer."""
    offset: float = 0.0
    """Added after scaling."""
    nodata: int = 65535
    """Stored value that means no data."""
    units: CoarseUnits = "gC m-2 d-1"
    """Meaning of a scaled value: a mean daily rate over the item's start/end window ('d-1'), or its total
    over 8 days ('8d-1')."""
    max_valid: float = Field(_MAX_VALID_DEFAULT, gt=0)
    """Sanity ceiling in ``units``; larger scaled values are treated as no data. Default: 30 gC m-2 d-1
    expressed in ``units`` (30, 240 or 0.03)."""

    @model_validator(mode="before")
    @classmethod
    def _default_max_valid_in_units(cls, data: object) -> object:
        if isinstance(data, Mapping) and "max_valid" not in data and data.get("units") in _UNIT_TO_GC_M2_D:
            return {**data, "max_valid": _MAX_VALID_DEFAULT / _UNIT_TO_GC_M2_D[data["units"]]}
        return data

    @property
    def to_gc_m2_d(self) -> float:
        """Factor that turns a scaled value into gC m-2 d-1 (1, 1/8 or 1000)."""
        return _UNIT_TO_GC_M2_D[self.units]


# --- forest types, purity, split, models -------------------------------------------------------------

Code = Annotated[int, Field(ge=0, le=255)]
_DEFAULT_CODES: dict[str, tuple[int, ...]] = {
    "ENF": (71, 72),
    "DBF": (61, 62),
    "MF": (91, 92),
    "DNF": (81, 82),
    "EBF": (51, 52),
}


class ForestTypesSpec(_Block):
    """Which forest-type map codes make each forest type, and which types get models."""

    codes: Annotated[Mapping[ForestType, tuple[Code, ...]], AfterValidator(FrozenDict)] = Field(
        default=_DEFAULT_CODES, validate_default=True
    )
    """Forest type -> GLC_FCS30 codes (0-255). Replaces the whole default mapping when given."""
    fill: tuple[Code, ...] = (0, 250)
    """Codes that mean no data."""
    modelled: Annotated[tuple[ForestType, ...], Field(min_length=1), AfterValidator(unique_items)] = (
        "ENF",
        "DBF",
        "MF",
        "DNF",
    )
    """Forest types that get their own models and 30 m predictions."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        owner: dict[int, str] = dict.fromkeys(self.fill, "fill")
        for forest_type, codes in self.codes.items():
            if not codes:
                raise ValueError(f"codes.{forest_type} is empty; give its codes or leave the type out")
            for code in codes:
                if code in owner:
                    raise ValueError(
                        f"code {code} is listed under both {owner[code]} and {forest_type}; keep one"
                    )
                owner[code] = forest_type
        missing = [t for t in self.modelled if t not in self.codes]
        if missing:
            raise ValueError(
                f"modelled types {missing} have no codes; add them under 'codes' (which replaces the "
                "whole default mapping) or drop them from 'modelled'"
            )
        return self

    def code_to_type(self) -> dict[int, ForestType]:
        """Map each code to its forest type.

        Example:
            >>> ForestTypesSpec().code_to_type()[81]
            'DNF'
        """
        return {code: forest_type for forest_type, codes in self.codes.items() for code in codes}


Fraction = Annotated[float, Field(gt=0, le=1)]


class PurityParams(_Block):
    """How pure coarse cells are chosen for training, for one forest type."""

    fraction: Fraction = 0.30
    """Fraction of cells kept: those with the lowest coefficient of variation of 30 m NDVI, (0, 1]."""
    min_type_fraction: Fraction = 0.9
    """Least share of a coarse cell's area covered by the forest type, (0, 1]."""
    min_cells: int = Field(30, ge=1)
    """Fewest pure cells needed to train the type's models."""
    fallback: Literal["skip", "relax"] = "relax"
    """When fewer than min_cells qualify: 'skip' the type, or 'relax' min_type_fraction until enough do."""


class PurityOverride(_Block):
    """Per-forest-type changes to the "*" purity block; a field left out (or null) inherits from "*"."""

    fraction: Fraction | None = None
    """See PurityParams.fraction."""
    min_type_fraction: Fraction | None = None
    """See PurityParams.min_type_fraction."""
    min_cells: Annotated[int, Field(ge=1)] | None = None
    """See PurityParams.min_cells."""
    fallback: Literal["skip", "relax"] | None = None
    """See PurityParams.fallback."""


class PuritySpec(_Block):
    """Pure-pixel selection: a "*" default block plus per-forest-type overrides."""

    default: PurityParams = Field(default_factory=PurityParams, alias="*")
    """Defaults for every forest type (write the key quoted: "*")."""
    ENF: PurityOverride | None = None
    """Evergreen needleleaf forest overrides."""
    DBF: PurityOverride | None = None
    """Deciduous broadleaf forest overrides."""
    MF: PurityOverride | None = None
    """Mixed forest overrides."""
    DNF: PurityOverride | None = None
    """Deciduous needleleaf forest (larch) overrides."""
    EBF: PurityOverride | None = None
    """Evergreen broadleaf forest overrides."""

    def for_type(self, forest_type: str) -> PurityParams:
        """The purity parameters of one forest type: its overrides merged onto "*".

        Example:
            >>> spec = PuritySpec.model_validate({"*": {"fraction": 0.3}, "DNF": {"fraction": 0.5}})
            >>> spec.for_type("DNF").fraction, spec.for_type("ENF").fraction
            (0.5, 0.3)
        """
        _check_forest_type(forest_type)
        return _merged(self.default, getattr(self, forest_type))


class SplitSpec(_Block):
    """Spatially blocked train/test split of the coarse cells."""

    test_fraction: float = Field(0.3, gt=0, lt=1)
    """Share of blocks held out for testing, (0, 1)."""
    block_cells: int = Field(4, ge=1)
    """Side of a square block, in coarse cells; a block is wholly train or wholly test."""
    seed: int = Field(42, ge=0)
    """Random seed of the block assignment."""


class HyperParams(_Block):
    """Training hyper-parameters of one forest type's models."""

    epochs: int = Field(200, ge=1)
    """Most passes over the training samples."""
    batch_size: int = Field(256, ge=1)
    """Samples per optimiser step."""
    learning_rate: float = Field(1e-3, gt=0, le=1)
    """Adam learning rate."""
    hidden: Annotated[tuple[Annotated[int, Field(ge=1)], ...], Field(min_length=1)] = (64, 64)
    """Width of each hidden layer (units or channels)."""
    dropout: float = Field(0.1, ge=0, lt=1)
    """Dropout probability, [0, 1)."""
    patience: int = Field(20, ge=1)
    """Epochs without validation improvement before stopping early."""
    seed: int = Field(0, ge=0)
    """Random seed of weights and batches."""


class HyperOverride(_Block):
    """Per-forest-type changes to the "*" hyper-parameters; a field left out (or null) inherits from "*"."""

    epochs: Annotated[int, Field(ge=1)] | None = None
    """See HyperParams.epochs."""
    batch_size: Annotated[int, Field(ge=1)] | None = None
    """See HyperParams.batch_size."""
    learning_rate: Annotated[float, Field(gt=0, le=1)] | None = None
    """See HyperParams.learning_rate."""
    hidden: Annotated[tuple[Annotated[int, Field(ge=1)], ...], Field(min_length=1)] | None = None
    """See HyperParams.hidden."""
    dropout: Annotated[float, Field(ge=0, lt=1)] | None = None
    """See HyperParams.dropout."""
    patience: Annotated[int, Field(ge=1)] | None = None
    """See HyperParams.patience."""
    seed: Annotated[int, Field(ge=0)] | None = None
    """See HyperParams.seed."""


class HyperSpec(_Block):
    """Hyper-parameters: a "*" default block plus per-forest-type overrides."""

    default: HyperParams = Field(default_factory=HyperParams, alias="*")
    """Defaults for every forest type (write the key quoted: "*")."""
    ENF: HyperOverride | None = None
    """Evergreen needleleaf forest overrides."""
    DBF: HyperOverride | None = None
    """Deciduous broadleaf forest overrides."""
    MF: HyperOverride | None = None
    """Mixed forest overrides."""
    DNF: HyperOverride | None = None
    """Deciduous needleleaf forest (larch) overrides."""
    EBF: HyperOverride | None = None
    """Evergreen broadleaf forest overrides."""
    aggregate: HyperOverride | None = None
    """Overrides for the aggregate-mode models (one per target and kind, every pixel of every covered
    cell: an epoch costs far more than one of a forest type's paper models)."""


class ModelsSpec(_Block):
    """Which models are trained per forest type and how the one used for the 30 m maps is chosen."""

    kinds: Annotated[tuple[ModelKind, ...], Field(min_length=1), AfterValidator(unique_items)] = (
        "dnn",
        "cnn",
        "bpnn",
        "rnn",
    )
    """Deep models trained for each forest type."""
    baselines: Annotated[tuple[BaselineKind, ...], AfterValidator(unique_items)] = ("trees", "coarse")
    """Reference models scored beside them: a tree ensemble, and the coarse value everywhere."""
    modes: Annotated[
        tuple[Literal["paper", "aggregate"], ...], Field(min_length=1), AfterValidator(unique_items)
    ] = ("paper",)
    """Training modes; the first makes the 30 m maps, the others are trained and validated beside it.
    'paper': per forest type on the aggregates of pure coarse cells (Yu et al. 2022). 'aggregate': one
    model for every 30 m pixel, conditioned on its land-cover class, fit so that each covered coarse
    cell's area-weighted mean of its pixels matches the coarse value (all covered cells, pure or not;
    hyper-parameters from "*", a step taking batch_size / 8 cells, at least 8)."""
    aggregate_kinds: Annotated[tuple[ModelKind, ...], Field(min_length=1), AfterValidator(unique_items)] = (
        "dnn",
    )
    """Deep models trained in the 'aggregate' mode (each sees every pixel of every covered cell, so an
    epoch costs far more than in the 'paper' mode; all four kinds work)."""
    select: Literal["auto", "dnn", "cnn", "bpnn", "rnn"] = "auto"
    """Model used for prediction: 'auto' takes the best test score per forest type."""
    ensemble: int = Field(5, ge=1, le=20)
    """Members of the deep ensemble that makes the maps: the selected model of each forest type and
    target (of the first mode) is trained again with seeds seed+1 ... seed+ensemble-1; the maps are the
    members' mean, with their standard deviation and a 90 % interval beside them. 1: one model, no
    uncertainty layers."""
    hyper: HyperSpec = Field(default_factory=HyperSpec)
    """Training hyper-parameters."""

    @model_validator(mode="after")
    def _select_is_trained(self) -> Self:
        if self.select != "auto" and self.select not in self.kinds:
            raise ValueError(
                f"select {self.select!r} is not among kinds {list(self.kinds)}; add it or use 'auto'"
            )
        return self

    def hyper_for(self, forest_type: str) -> HyperParams:
        """The hyper-parameters of one forest type: its overrides merged onto "*".

        Example:
            >>> models = ModelsSpec.model_validate({"hyper": {"DNF": {"epochs": 50}}})
            >>> models.hyper_for("DNF").epochs, models.hyper_for("ENF").epochs
            (50, 200)
        """
        _check_forest_type(forest_type)
        return _merged(self.hyper.default, getattr(self.hyper, forest_type))

    def hyper_for_aggregate(self) -> HyperParams:
        """The hyper-parameters of the aggregate-mode models: the "aggregate" overrides merged onto "*".

        Example:
            >>> models = ModelsSpec.model_validate({"hyper": {"aggregate": {"epochs": 20}}})
            >>> models.hyper_for_aggregate().epochs, models.hyper_for_aggregate().batch_size
            (20, 256)
        """
        return _merged(self.hyper.default, self.hyper.aggregate)


# --- predictor cube ----------------------------------------------------------------------------------

QaFlag = Literal["fill", "dilated_cloud", "cirrus", "cloud", "shadow", "snow", "water"]


class CubeSpec(_Block):
    """How the 30 m predictor cube is built from the inputs."""

    qa_mask: Annotated[tuple[QaFlag, ...], AfterValidator(unique_items)] = (
        "fill",
        "dilated_cloud",
        "cirrus",
        "cloud",
        "shadow",
        "snow",
    )
    """Landsat QA_PIXEL flags whose observations are left out of the quarterly composites."""
    lapse_rate_k_per_km: float = Field(6.5, ge=0, le=15)
    """Temperature lapse rate used to bring coarse temperature to the 30 m elevation, K km-1."""
    diffuse_fraction: float = Field(0.3, ge=0, le=1)
    """Share of shortwave radiation taken as isotropic diffuse in the terrain factor."""


class PredictSpec(_Block):
    """How the 30 m maps are predicted and made consistent with the coarse product."""

    mass_preservation: bool = True
    """Scale each coarse cell's 30 m values so that their area-weighted mean equals the coarse value,
    in cells that are almost all forest (see min_forest_fraction); the uncorrected maps are kept too."""
    min_forest_fraction: Fraction = 0.9
    """Least share of a coarse cell's area covered by modelled forest pixels for it to be corrected; in
    other cells the coarse value also holds other land covers, and the 30 m values are left as
    predicted."""
    iterations: int = Field(3, ge=1, le=10)
    """Correction passes: pixels straddling two cells take a blend of their factors, so a few passes
    bring every corrected cell's mean to its coarse value."""
    batch_px: int = Field(65536, ge=256)
    """Pixels per model forward pass (lower it for the CNN on small GPUs)."""


# --- output, cluster, validation ---------------------------------------------------------------------


class OutputSpec(_Block):
    """Where the run writes its Zarr stores, models, STAC collection and report."""

    store: DataPath
    """Local folder (relative to the spec file) or s3://bucket/prefix. Credentials come from the
    environment only."""
    overwrite: bool = False
    """Replace an existing run of another spec at the same store (a resumed run of the same spec is fine)."""

    @property
    def is_remote(self) -> bool:
        """Whether the store is on object storage (``s3://``)."""
        return self.store.startswith("s3://")


def _dns_label(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", value):
        raise ValueError(
            f"{value!r} is not a Kubernetes namespace (lowercase letters, digits and '-', <= 63)"
        )
    return value


class KubernetesSpec(_Block):
    """A Dask cluster created by the dask-kubernetes operator (mode: kubernetes)."""

    namespace: Annotated[str, AfterValidator(_dns_label)] = "default"
    """Kubernetes namespace of the DaskCluster."""
    image: NonEmptyStr | None = None
    """Container image of scheduler and workers; null uses the gppscale image of this version."""
    cpu_workers: int = Field(4, ge=0)
    """Workers in the CPU worker group."""
    gpu_workers: int = Field(0, ge=0)
    """Workers in the GPU worker group (each with Dask resource GPU=1)."""
    worker_cpu: NonEmptyStr = "2"
    """CPU request and limit of each worker (a Kubernetes quantity, e.g. "2" or "1500m")."""
    worker_memory: NonEmptyStr = "8Gi"
    """Memory request and limit of each worker (e.g. "8Gi")."""
    gpu_node_selector: Annotated[Mapping[str, str], AfterValidator(FrozenDict)] = Field(
        default_factory=lambda: FrozenDict({"nvidia.com/gpu.present": "true"})
    )
    """Node labels the GPU workers must run on."""
    service_account: NonEmptyStr | None = None
    """ServiceAccount of the pods (workload identity, e.g. IRSA on EKS); null uses the namespace default."""


class ClusterSpec(_Block):
    """Which Dask cluster runs the work."""

    mode: Literal["local", "address", "kubernetes"] = "local"
    """'local': a LocalCluster on this machine; 'address': connect to a running scheduler; 'kubernetes':
    create a DaskCluster."""
    workers: int = Field(2, ge=1)
    """Local worker processes (mode local)."""
    threads_per_worker: int = Field(1, ge=1)
    """Threads per local worker (mode local)."""
    memory_limit: MemoryLimit = "auto"
    """Memory per local worker: 'auto' or a size such as '4GiB' (mode local)."""
    address: SchedulerAddress | None = None
    """Scheduler address such as tcp://127.0.0.1:8786; required in mode address, refused otherwise."""
    kubernetes: KubernetesSpec = Field(default_factory=KubernetesSpec)
    """Settings of mode kubernetes."""

    @model_validator(mode="after")
    def _address_iff_mode(self) -> Self:
        if self.mode == "address" and self.address is None:
            raise ValueError("mode 'address' needs 'address', e.g. address: tcp://127.0.0.1:8786")
        if self.mode != "address" and self.address is not None:
            raise ValueError(
                f"'address' {self.address!r} is only used with mode: address; remove it or set the mode"
            )
        if self.mode == "kubernetes" and self.kubernetes.cpu_workers + self.kubernetes.gpu_workers == 0:
            raise ValueError("mode 'kubernetes' needs kubernetes.cpu_workers or kubernetes.gpu_workers >= 1")
        return self


class ValidationSpec(_Block):
    """Independent data the 30 m maps are checked against; paths are relative to the spec file."""

    towers_sites: DataPath | None = None
    """GeoJSON of flux-tower sites (point per site, property 'site_id')."""
    towers_dir: DataPath | None = None
    """Folder of FLUXNET2015-style half-hourly CSV files, one per site."""
    plots: DataPath | None = None
    """GeoJSON of field plots with annual NPP, gC m-2 yr-1."""
    reference: bool = True
    """Compare with the reference 30 m product (collections.reference_gpp / reference_npp) when present."""
    truth: DataPath | None = None
    """Zarr store of a synthetic world's 30 m truth."""
    pixels_per_type: Annotated[int, Field(ge=100)] = 20_000
    """Forest pixels per type (seeded sample) at which every model, the tree baseline and the coarse
    baseline are judged against the truth and the reference product."""

    @model_validator(mode="after")
    def _towers_together(self) -> Self:
        if (self.towers_sites is None) != (self.towers_dir is None):
            raise ValueError(
                "give both 'towers_sites' (site GeoJSON) and 'towers_dir' (CSV folder), or neither"
            )
        return self


# --- the run spec ------------------------------------------------------------------------------------


class RunSpec(_Block):
    """A whole run: what to downscale, where, from which catalog, with which settings, to which store.

    Build it with :func:`gppscale.config.load_spec` (YAML file) or :func:`gppscale.config.parse_spec`
    (mapping). Local paths in a RunSpec are absolute.
    """

    name: Slug
    """Run name: 1-64 letters, digits, '-' or '_'."""
    area: AreaSpec
    """Area of interest."""
    years: Years
    """Calendar years to map, 1982-2100."""
    quarters: Quarters = (1, 2, 3, 4)
    """Calendar quarters to map: 1 = Jan-Mar ... 4 = Oct-Dec."""
    catalog: CatalogSpec
    """Input catalog."""
    collections: CollectionsSpec = Field(default_factory=CollectionsSpec)
    """STAC collection ids and asset names of each input role."""
    grid: GridSpec = Field(default_factory=GridSpec)
    """Target grid."""
    cube: CubeSpec = Field(default_factory=CubeSpec)
    """Predictor cube settings."""
    predict: PredictSpec = Field(default_factory=PredictSpec)
    """30 m prediction and mass preservation."""
    coarse: CoarseSpec = Field(default_factory=CoarseSpec)
    """Encoding and units of the coarse GPP/NPP product."""
    forest_types: ForestTypesSpec = Field(default_factory=ForestTypesSpec)
    """Forest-type codes."""
    purity: PuritySpec = Field(default_factory=PuritySpec)
    """Pure-pixel selection."""
    split: SplitSpec = Field(default_factory=SplitSpec)
    """Train/test split."""
    models: ModelsSpec = Field(default_factory=ModelsSpec)
    """Models and hyper-parameters."""
    output: OutputSpec
    """Output store."""
    cluster: ClusterSpec = Field(default_factory=ClusterSpec)
    """Dask cluster."""
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    """Validation data."""

    def epsg(self) -> int:
        """EPSG code of the 30 m target grid (``grid.crs``, or the UTM zone of the area centre).

        Example:
            >>> spec = RunSpec.model_validate({
            ...     "name": "x", "area": {"bbox": [117.0, 41.95, 117.37, 42.23]}, "years": 2021,
            ...     "catalog": {"url": "https://example.com/stac"}, "output": {"store": "s3://bucket/run"}})
            >>> spec.epsg()
            32650
        """
        return self.grid.resolve_epsg(self.area.bounds_lonlat())

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-compatible data ("*" keys included) that :func:`parse_spec` reads back."""
        return self.model_dump(mode="json", by_alias=True)
