"""The JSON Schema of a run spec, committed as ``pipeline/schema.json`` for editors and CI."""

from __future__ import annotations

import json
from typing import Any

from gppscale.config._spec import RunSpec

__all__ = ["SCHEMA_COMMAND", "spec_json_schema", "spec_json_schema_text"]

SCHEMA_COMMAND = "python -m gppscale.config --schema > pipeline/schema.json"
"""The command that regenerates ``pipeline/schema.json`` (run from the repository root)."""


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a run spec's YAML, with each field's description and default.

    Example:
        >>> schema = spec_json_schema()
        >>> schema["required"]
        ['name', 'area', 'years', 'catalog', 'output']
    """
    schema = RunSpec.model_json_schema(mode="validation", by_alias=True)
    header = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": f"Generated from gppscale.config.RunSpec; do not edit. Regenerate with: {SCHEMA_COMMAND}",
    }
    return {**header, **schema}


def spec_json_schema_text() -> str:
    """:func:`spec_json_schema` as the exact text of ``pipeline/schema.json``."""
    return json.dumps(spec_json_schema(), indent=2, ensure_ascii=False) + "\n"
