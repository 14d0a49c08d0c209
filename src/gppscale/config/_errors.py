"""Turn pydantic's validation errors into one :class:`~gppscale.errors.SpecError` a user can act on.

Each problem names the dotted key (``collections.landsat.assets.nir8``), where it came from (a line of
the spec file, or an override), the value given and the fix; unknown keys get the allowed keys and a
close-match suggestion.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping, Sequence
from typing import get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gppscale.errors import SpecError

__all__ = ["Loc", "dotted", "origin", "short_repr", "spec_error_from", "suggest"]

Loc = tuple[str | int, ...]
_DOCS_HINT = "Every key is described in pipeline/README.md and pipeline/schema.json."


def dotted(loc: Sequence[str | int]) -> str:
    """A location as the user writes it: ``collections.landsat.assets.nir08``, ``years[0]``.

    Example:
        >>> dotted(("years", 0))
        'years[0]'
    """
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


def suggest(word: str, choices: Sequence[str]) -> str:
    """``"did you mean 'x'?"`` for the closest choice, or ``""`` when none is close.

    Example:
        >>> suggest("max_cloud_cover", ["max_cloud_cover_pct", "sign"])
        "did you mean 'max_cloud_cover_pct'?"
    """
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def _sentence(problem: str, hint: str, fix: str) -> str:
    """``"problem; hint Fix."`` or ``"problem; fix"`` when there is no hint."""
    return f"{problem}; {hint} {fix[0].upper()}{fix[1:]}" if hint else f"{problem}; {fix}"


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``X | None`` or ``Annotated[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def allowed_keys(root: type[BaseModel], loc: Loc) -> list[str]:
    """The keys a spec accepts at ``loc`` (a path of keys from ``root``); empty when not a block."""
    model: type[BaseModel] | None = root
    for part in loc:
        fields = {field.alias or name: field for name, field in model.model_fields.items()} if model else {}
        field = fields.get(str(part))
        model = _model_in(field.annotation) if field is not None else None
    return _keys_of(model) if model is not None else []


def _literal_choices(details: ErrorDetails) -> list[str]:
    return re.findall(r"'([^']*)'", str(details.get("ctx", {}).get("expected", "")))


def describe(details: ErrorDetails, root: type[BaseModel]) -> str:
    """One problem in words: what is wrong with which value, and the fix."""
    kind, loc, value = details["type"], tuple(details["loc"]), details.get("input")
    if kind == "extra_forbidden":
        allowed = allowed_keys(root, loc[:-1])
        return _sentence(
            f"unknown key {loc[-1]!r} (value {short_repr(value)})",
            suggest(str(loc[-1]), allowed),
            f"allowed keys here: {', '.join(allowed)}",
        )
    if kind == "missing":
        return "required key is missing; add it"
    if kind == "value_error":
        return str(details.get("ctx", {}).get("error", details["msg"]))
    if kind == "literal_error":
        choices = _literal_choices(details)
        hint = suggest(value, choices) if isinstance(value, str) else ""
        return _sentence(
            f"{short_repr(value)} is not allowed", hint, f"choose one of {', '.join(map(repr, choices))}"
        )
    return f"{details['msg']}; got {short_repr(value)}"


def _key_loc(loc: Loc) -> Loc:
    """Drop pydantic's ``[key]`` marker: a bad mapping key is reported at the key itself."""
    return loc[:-1] if loc and loc[-1] == "[key]" else loc


def origin(loc: Loc, lines: Mapping[Loc, int], overridden: Collection[Loc]) -> str:
    """``" (line 12)"``, ``" (override 'output.store')"`` or ``""``."""
    for key in overridden:
        if loc[: len(key)] == key:
            return f" (override {dotted(key)!r})"
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return f" (line {lines[loc[:end]]})"
    return ""


def spec_error_from(
    error: ValidationError,
    *,
    source: str,
    root: type[BaseModel],
    lines: Mapping[Loc, int] | None = None,
    overridden: Collection[Loc] = (),
) -> SpecError:
    """One :class:`SpecError` listing every problem of ``error``, each with its key, origin and fix.

    Args:
        error: What pydantic raised.
        source: The spec file (or ``"<mapping>"``), named in the message.
        root: The model that was validated (for the allowed keys of each block).
        lines: Line number of each key path in the file.
        overridden: Key paths set by overrides, reported as such instead of a line.

    Returns:
        The error to raise (``raise spec_error_from(e, ...) from e``).
    """
    problems = []
    for details in error.errors(include_url=False):
        loc = _key_loc(tuple(details["loc"]))
        origin_text = origin(loc, lines or {}, overridden)
        problems.append(f"  - {dotted(loc)}{origin_text}: {describe(details, root)}")
    count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
    return SpecError(f"invalid run spec {source}: {count}\n" + "\n".join(problems) + f"\n{_DOCS_HINT}")
