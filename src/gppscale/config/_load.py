"""Read a run spec into an immutable :class:`~gppscale.config.RunSpec`.

The YAML is read once; overrides are applied, local paths made absolute and credentials refused before
pydantic validates the result.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gppscale.config._errors import Loc, dotted, origin, short_repr, spec_error_from
from gppscale.config._spec import RunSpec
from gppscale.config._types import is_url, thaw, thaw_mapping
from gppscale.errors import SpecError

__all__ = ["load_spec", "parse_override", "parse_spec"]

PATH_KEYS: tuple[Loc, ...] = (
    ("area", "geojson"),
    ("catalog", "world"),
    ("output", "store"),
    ("validation", "towers_sites"),
    ("validation", "towers_dir"),
    ("validation", "plots"),
    ("validation", "truth"),
    ("collections", "coarse_gpp", "files"),
    ("collections", "coarse_npp", "files"),
)
"""Keys that hold a local path or glob (unless a URL), made absolute against the spec file's folder."""

_EXCLUSIVE: dict[Loc, tuple[str, ...]] = {
    ("catalog", "url"): ("world",),
    ("catalog", "world"): ("url",),
    ("area", "bbox"): ("geojson",),
    ("area", "geojson"): ("bbox",),
}
"""An override of one of these keys removes its exclusive siblings from the file's values."""

_CREDENTIAL_KEYS = frozenset(
    {
        "key",
        "secret",
        "token",
        "password",
        "passwd",
        "credentials",
        "access_key",
        "access_key_id",
        "secret_key",
        "secret_access_key",
        "session_token",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "api_key",
        "apikey",
        "sas_token",
        "account_key",
        "client_secret",
        "private_key",
        "subscription_key",
    }
)
_CREDENTIAL_SUFFIXES = ("_secret", "_token", "_password")
_CREDENTIALS_FIX = (
    "gppscale takes credentials only from the environment (AWS_PROFILE or AWS_ACCESS_KEY_ID/"
    "AWS_SECRET_ACCESS_KEY, an instance or pod role, PC_SDK_SUBSCRIPTION_KEY for Planetary Computer); "
    "remove these keys and set the variables where the run and its Dask workers start"
)


def load_spec(path: str | Path, overrides: Mapping[str, Any] | None = None) -> RunSpec:
    """Read, complete and validate a YAML run spec.

    The file is read once. Overrides are dotted keys (``{"output.store": "s3://bucket/run"}``) applied
    before validation; an override of ``catalog.url``/``catalog.world`` or ``area.bbox``/``area.geojson``
    replaces the other one of the pair. Relative local paths (``area.geojson``, ``catalog.world``,
    ``output.store``, ``validation.*``, ``collections.coarse_*.files``) are taken from the spec file's
    folder, and relative paths given in overrides from the current working folder (as a command line
    user expects).

    Args:
        path: The YAML file.
        overrides: Dotted key -> value, e.g. from ``--set KEY=VALUE`` (see :func:`parse_override`).

    Returns:
        The immutable, validated spec; its local paths are absolute.

    Raises:
        SpecError: The file is missing or not YAML (with the line), a key is unknown (with the allowed
            keys and a suggestion), a value is wrong (with the key, line and value), or the spec holds
            credentials.

    Example:
        >>> spec = load_spec("pipeline/small.yaml", {"output.store": "s3://my-bucket/small"})
        >>> spec.name, spec.years, spec.output.store, spec.epsg()
        ('small', (2021,), 's3://my-bucket/small', 32650)
    """
    spec_path = Path(path).expanduser().absolute()
    data, lines = yaml_to_data(_read_text(spec_path), source=str(path))
    return _validated(data, base_dir=spec_path.parent, source=str(path), lines=lines, overrides=overrides)


def parse_spec(data: Mapping[str, Any], base_dir: Path | None = None) -> RunSpec:
    """Validate a run spec given as a mapping (the YAML structure).

    Args:
        data: The spec; it is not modified.
        base_dir: Folder that relative local paths are taken from; the current folder when None.

    Returns:
        The immutable, validated spec; its local paths are absolute.

    Raises:
        SpecError: As :func:`load_spec`.

    Example:
        >>> spec = parse_spec({
        ...     "name": "demo", "area": {"bbox": [117.0, 41.95, 117.37, 42.23]}, "years": [2021, 2020],
        ...     "catalog": {"world": "/data/world"}, "output": {"store": "/data/run"}})
        >>> spec.years, spec.quarters, spec.collections.landsat.assets["nir08"]
        ((2020, 2021), (1, 2, 3, 4), 'nir08')
    """
    if not isinstance(data, Mapping):
        raise SpecError(
            f"a run spec is a mapping of keys (name, area, years, ...); got {type(data).__name__}"
        )
    folder = Path.cwd() if base_dir is None else Path(base_dir)
    return _validated(data, base_dir=folder, source="<mapping>", lines={}, overrides=None)


def parse_override(text: str) -> tuple[str, Any]:
    """Split a command-line override ``KEY=VALUE`` into the dotted key and the YAML-parsed value.

    Example:
        >>> parse_override("years=[2020, 2021]")
        ('years', [2020, 2021])
        >>> parse_override("output.store=s3://bucket/run")
        ('output.store', 's3://bucket/run')
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise SpecError(
            f"override {text!r} is not KEY=VALUE; write e.g. output.store=s3://bucket/run or years=[2021]"
        )
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise SpecError(f"override {text!r}: the value is not valid YAML ({e}); put it in quotes") from e


# --- reading YAML -----------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise SpecError(
            f"run spec {str(path)!r} not found; examples are pipeline/demo.yaml and pipeline/small.yaml"
        ) from e
    except IsADirectoryError as e:
        raise SpecError(f"run spec {str(path)!r} is a folder; give the YAML file") from e
    except UnicodeDecodeError as e:
        raise SpecError(f"run spec {str(path)!r} is not UTF-8 text (bad byte at offset {e.start})") from e
    except OSError as e:
        raise SpecError(f"cannot read run spec {str(path)!r}: {e.strerror or e}") from e


def _yaml_hint(problem: str) -> str:
    if "alias" in problem:
        return ' (a key "*" must be quoted: write "*":)'
    if "'\\t'" in problem:
        return " (indent with spaces, not tabs)"
    return ""


def _yaml_where(error: yaml.MarkedYAMLError, source: str) -> tuple[str, str]:
    """``("file:line:col", snippet)`` of a YAML error."""
    mark = error.problem_mark or error.context_mark
    if mark is None:
        return source, ""
    snippet = mark.get_snippet() or ""
    return f"{source}:{mark.line + 1}:{mark.column + 1}", snippet if snippet.strip() else ""


def _yaml_message(error: yaml.MarkedYAMLError, source: str) -> str:
    where, snippet = _yaml_where(error, source)
    problem = error.problem or error.context or "unreadable YAML"
    if error.context and error.problem:
        start, end = error.context_mark, error.problem_mark
        at = f" that starts at line {start.line + 1}" if start and end and start.line != end.line else ""
        problem += f" ({error.context}{at})"
    text = f"{where}: YAML syntax error: {problem}{_yaml_hint(problem)}"
    return f"{text}\n{snippet}" if snippet else text


def yaml_to_data(text: str, source: str) -> tuple[dict[str, Any], dict[Loc, int]]:
    """Parse YAML once into its data and the line number of every key path.

    Raises:
        SpecError: On a syntax error (with line and column), a key given twice, or a top level that is
            not a mapping.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines = key_lines(node, source) if node is not None else {}
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        raise SpecError(_yaml_message(e, source)) from e
    except yaml.YAMLError as e:
        raise SpecError(f"{source}: not valid YAML: {e}") from e
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise SpecError(
            f"{source}: the top level must be a mapping of keys (name:, area:, years:, ...); got "
            f"{type(data).__name__}; start from pipeline/small.yaml"
        )
    return data, lines


def _key_positions(node: yaml.Node, prefix: Loc, ancestors: frozenset[int]) -> Iterator[tuple[Loc, int]]:
    if id(node) in ancestors:  # a recursive YAML alias (&a [*a]): pydantic reports it later
        return
    inner = ancestors | {id(node)}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            loc = (*prefix, str(key_node.value))
            yield loc, key_node.start_mark.line + 1
            yield from _key_positions(value_node, loc, inner)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield (*prefix, index), item.start_mark.line + 1
            yield from _key_positions(item, (*prefix, index), inner)


def key_lines(node: yaml.Node, source: str) -> dict[Loc, int]:
    """Line (1-based) of every key path of a composed YAML document; a key given twice is an error."""
    lines: dict[Loc, int] = {}
    for loc, line in _key_positions(node, (), frozenset()):
        if loc in lines and loc[-1] != "<<":
            raise SpecError(
                f"{source}:{line}: key {dotted(loc)!r} is given twice (first at line {lines[loc]}); keep one"
            )
        lines.setdefault(loc, line)
    return lines


# --- completing the raw data -------------------------------------------------------------------------


def _absolute(value: str, base_dir: Path) -> str:
    """``value`` taken from ``base_dir`` unless it is a URL, absolute or empty; ``~`` is expanded."""
    if is_url(value) or not value.strip():
        return value
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))


def _make_paths_absolute(raw: dict[str, Any], base_dir: Path) -> None:
    for loc in PATH_KEYS:
        block: object = raw
        for part in loc[:-1]:
            block = block.get(str(part)) if isinstance(block, dict) else None
        key = str(loc[-1])
        if isinstance(block, dict) and isinstance(block.get(key), str):
            block[key] = _absolute(block[key], base_dir)


def _override_loc(key: object) -> tuple[str, ...]:
    parts = tuple(key.split(".")) if isinstance(key, str) else ()
    if not parts or not all(parts):
        raise SpecError(
            f"override key {key!r} is not a dotted key such as 'output.store' or 'purity.*.fraction'"
        )
    return parts


def _parent_block(raw: dict[str, Any], loc: tuple[str, ...]) -> dict[str, Any]:
    block = raw
    for depth, part in enumerate(loc[:-1]):
        child = block.get(part)
        if child is None:
            child = block[part] = {}
        if not isinstance(child, dict):
            where = dotted(loc[: depth + 1])
            raise SpecError(
                f"override {dotted(loc)!r}: {where} holds {short_repr(child)}, not a block of keys; "
                f"override {where!r} itself instead"
            )
        block = child
    return block


def _apply_overrides(raw: dict[str, Any], overrides: Mapping[str, Any]) -> tuple[Loc, ...]:
    """Set each dotted key in ``raw`` (in place); returns the key paths that were set."""
    locs = []
    for key, value in overrides.items():
        loc = _override_loc(key)
        block = _parent_block(raw, loc)
        if value is not None:
            for sibling in _EXCLUSIVE.get(loc, ()):
                block.pop(sibling, None)
        is_path = loc in PATH_KEYS and isinstance(value, str)
        block[loc[-1]] = _absolute(value, Path.cwd()) if is_path else thaw(value)
        locs.append(loc)
    return tuple(locs)


def _is_credential(key: object) -> bool:
    name = str(key).lower().replace("-", "_")
    return name in _CREDENTIAL_KEYS or name.endswith(_CREDENTIAL_SUFFIXES)


def _key_paths(value: object, prefix: Loc = ()) -> Iterator[Loc]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, str(key))
            yield from _key_paths(child, (*prefix, str(key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _key_paths(child, (*prefix, index))


def _reject_credentials(
    raw: dict[str, Any], source: str, lines: Mapping[Loc, int], overridden: tuple[Loc, ...]
) -> None:
    found = [loc for loc in _key_paths(raw) if _is_credential(loc[-1])]
    if found:
        keys = ", ".join(dotted(loc) + origin(loc, lines, overridden) for loc in found)
        raise SpecError(f"run spec {source} must not hold credentials, but has {keys}. {_CREDENTIALS_FIX}")


def _validated(
    data: Mapping[str, Any],
    *,
    base_dir: Path,
    source: str,
    lines: Mapping[Loc, int],
    overrides: Mapping[str, Any] | None,
) -> RunSpec:
    raw = thaw_mapping(data)
    _make_paths_absolute(raw, base_dir)
    overridden = _apply_overrides(raw, overrides or {})
    _reject_credentials(raw, source, lines, overridden)
    try:
        return RunSpec.model_validate(raw)
    except ValidationError as e:
        raise spec_error_from(e, source=source, root=RunSpec, lines=lines, overridden=overridden) from e
