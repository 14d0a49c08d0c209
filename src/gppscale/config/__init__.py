"""The run spec: one YAML file, read once at the entry point into an immutable, validated object.

:func:`load_spec` reads a YAML file (with dotted-key overrides), :func:`parse_spec` a mapping; both
return a frozen :class:`RunSpec` whose blocks are typed (tuples, read-only mappings), whose local paths
are absolute, and whose per-forest-type settings merge a ``"*"`` block with ``ENF``/``DBF``/``MF``/
``DNF``/``EBF`` overrides (:meth:`PuritySpec.for_type`, :meth:`ModelsSpec.hyper_for`). Every problem
becomes one :class:`~gppscale.errors.SpecError` naming the file, line, dotted key, value and fix.
``pipeline/README.md`` describes every key; ``pipeline/schema.json`` is its JSON Schema
(``python -m gppscale.config --schema``).

Example:
    >>> from gppscale.config import parse_spec
    >>> spec = parse_spec({
    ...     "name": "demo", "area": {"bbox": [117.0, 41.95, 117.37, 42.23]}, "years": [2020, 2021],
    ...     "catalog": {"world": "/data/world"}, "output": {"store": "s3://my-bucket/demo"},
    ...     "purity": {"*": {"fraction": 0.3}, "DNF": {"fraction": 0.4}}})
    >>> spec.epsg(), spec.purity.for_type("DNF").fraction, spec.purity.for_type("ENF").min_cells
    (32650, 0.4, 30)
"""

from __future__ import annotations

from gppscale.config._geo import utm_epsg_for
from gppscale.config._load import PATH_KEYS, load_spec, parse_override, parse_spec
from gppscale.config._schema import SCHEMA_COMMAND, spec_json_schema, spec_json_schema_text
from gppscale.config._spec import (
    FOREST_TYPES,
    AreaSpec,
    BaselineKind,
    CatalogSpec,
    ClassificationAssets,
    ClusterSpec,
    CoarseCollection,
    CoarseGppCollection,
    CoarseNppCollection,
    CoarseSpec,
    CoarseUnits,
    CollectionsSpec,
    CubeSpec,
    DataAssets,
    DemCollection,
    ForestType,
    ForestTypeCollection,
    ForestTypesSpec,
    GridSpec,
    HyperOverride,
    HyperParams,
    HyperSpec,
    KubernetesSpec,
    LandsatAssets,
    LandsatCollection,
    MeteorologyAssets,
    MeteorologyCollection,
    ModelKind,
    ModelsSpec,
    OutputSpec,
    PredictSpec,
    PurityOverride,
    PurityParams,
    PuritySpec,
    ReferenceGppCollection,
    ReferenceNppCollection,
    RunSpec,
    SplitSpec,
    ValidationSpec,
)
from gppscale.config._types import FrozenDict

__all__ = [
    "FOREST_TYPES",
    "PATH_KEYS",
    "SCHEMA_COMMAND",
    "AreaSpec",
    "BaselineKind",
    "CatalogSpec",
    "ClassificationAssets",
    "ClusterSpec",
    "CoarseCollection",
    "CoarseGppCollection",
    "CoarseNppCollection",
    "CoarseSpec",
    "CoarseUnits",
    "CollectionsSpec",
    "CubeSpec",
    "DataAssets",
    "DemCollection",
    "ForestType",
    "ForestTypeCollection",
    "ForestTypesSpec",
    "FrozenDict",
    "GridSpec",
    "HyperOverride",
    "HyperParams",
    "HyperSpec",
    "KubernetesSpec",
    "LandsatAssets",
    "LandsatCollection",
    "MeteorologyAssets",
    "MeteorologyCollection",
    "ModelKind",
    "ModelsSpec",
    "OutputSpec",
    "PredictSpec",
    "PurityOverride",
    "PurityParams",
    "PuritySpec",
    "ReferenceGppCollection",
    "ReferenceNppCollection",
    "RunSpec",
    "SplitSpec",
    "ValidationSpec",
    "load_spec",
    "parse_override",
    "parse_spec",
    "spec_json_schema",
    "spec_json_schema_text",
    "utm_epsg_for",
]
