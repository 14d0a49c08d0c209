"""Building blocks of the run spec: a read-only mapping and the constrained scalar types.

Every validator here raises ``ValueError`` with a message that names the value and the fix; pydantic
wraps it and :mod:`gppscale.config._errors` adds the dotted key and the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Annotated, Any, NoReturn, TypeVar
from urllib.parse import SplitResult, urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

__all__ = [
    "DataPath",
    "FrozenDict",
    "HttpUrl",
    "LocalFolder",
    "LocalGlob",
    "MemoryLimit",
    "NonEmptyStr",
    "Quarters",
    "SchedulerAddress",
    "Slug",
    "Years",
    "deep_freeze",
    "is_url",
    "redact_url",
    "thaw",
    "thaw_mapping",
    "unique_items",
]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")


class FrozenDict(dict[K, V]):
    """A read-only ``dict``: hashable, picklable and serialised by pydantic like any mapping.

    Example:
        >>> codes = FrozenDict({"ENF": (71, 72)})
        >>> codes["ENF"]
        (71, 72)
        >>> codes["DBF"] = (61,)
        Traceback (most recent call last):
        ...
        TypeError: a run spec is immutable; build a new one with load_spec(path, overrides=...)
    """

    __slots__ = ()

    def _read_only(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("a run spec is immutable; build a new one with load_spec(path, overrides=...)")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _read_only

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple[Callable[..., FrozenDict[K, V]], tuple[dict[K, V]]]:
        # dict subclasses unpickle through __setitem__, which is blocked: rebuild from a plain dict.
        return (FrozenDict, (dict(self),))


def deep_freeze(value: object) -> object:
    """Turn nested mappings into :class:`FrozenDict` and lists into tuples.

    Example:
        >>> deep_freeze({"type": "Point", "coordinates": [1, 2]})
        {'type': 'Point', 'coordinates': (1, 2)}
    """
    if isinstance(value, Mapping):
        return FrozenDict({k: deep_freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(deep_freeze(v) for v in value)
    return value


def thaw(value: object) -> object:
    """Deep-copy nested mappings and sequences into plain dicts and lists (the raw form of a spec).

    Example:
        >>> thaw(FrozenDict({"years": (2020, 2021)}))
        {'years': [2020, 2021]}
    """
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


def thaw_mapping(data: Mapping[str, object]) -> dict[str, Any]:
    """:func:`thaw` of a whole spec: a new plain dict the loader may complete in place."""
    return {key: thaw(value) for key, value in data.items()}


def is_url(value: str) -> bool:
    """Whether ``value`` has a URL scheme (``s3://``, ``https://``, ``file://``)."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value) is not None


def redact_url(url: str | SplitResult) -> str:
    """``url`` with any ``user:password@`` part replaced by ``***@``, so that messages never show secrets.

    Example:
        >>> redact_url("s3://AKIA:secret@bucket/run")
        's3://***@bucket/run'
    """
    parts = urlsplit(url) if isinstance(url, str) else url
    if "@" not in parts.netloc:
        return parts.geturl()
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()


def _no_userinfo(parts: SplitResult) -> None:
    if "@" in parts.netloc:
        raise ValueError(
            f"{redact_url(parts)!r} carries credentials in the URL; remove them: gppscale reads "
            "credentials only from the environment (AWS_PROFILE, AWS_ACCESS_KEY_ID, a pod role)"
        )


def norm_http_url(value: str) -> str:
    """Check an ``http(s)://host/...`` URL without credentials; returned unchanged."""
    parts = urlsplit(value)
    _no_userinfo(parts)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"{redact_url(value)!r} is not an http(s) URL of a STAC API; give e.g. "
            "'https://planetarycomputer.microsoft.com/api/stac/v1', or use 'world' for a local folder"
        )
    return value


_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _norm_s3_url(value: str) -> str:
    parts = urlsplit(value)
    _no_userinfo(parts)
    if not _S3_BUCKET.match(parts.netloc):
        raise ValueError(
            f"{value!r}: {parts.netloc!r} is not a valid S3 bucket name (3-63 lowercase letters, "
            "digits, '.', '-'); write s3://bucket/prefix"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{redact_url(value)!r}: an S3 location takes no '?query' or '#fragment'")
    return value


def norm_data_path(value: str) -> str:
    """Check a local path or an ``s3://bucket/prefix`` location; other schemes are refused.

    Example:
        >>> norm_data_path("s3://my-bucket/runs/demo")
        's3://my-bucket/runs/demo'
        >>> norm_data_path("gs://b/x")
        Traceback (most recent call last):
        ...
        ValueError: 'gs://b/x': scheme 'gs' is not supported; give a local path or s3://bucket/prefix
    """
    if not is_url(value):
        return value
    scheme = urlsplit(value).scheme.lower()
    if scheme != "s3":
        raise ValueError(
            f"{redact_url(value)!r}: scheme {scheme!r} is not supported; give a local path or s3://bucket/prefix"
        )
    return _norm_s3_url(value)


def norm_local_folder(value: str) -> str:
    """Check a local folder path (not a URL); the loader has already made it absolute."""
    if is_url(value):
        raise ValueError(
            f"{redact_url(value)!r} is a URL; 'world' is a local folder of a synthetic world. "
            "For a STAC API give catalog.url instead"
        )
    return value


def norm_local_glob(value: str) -> str:
    """Check a local file pattern or folder (not a URL); the loader has already made it absolute.

    Example:
        >>> norm_local_glob("/data/glass/GLASS_GPP_*.tif")
        '/data/glass/GLASS_GPP_*.tif'
    """
    if is_url(value):
        raise ValueError(
            f"{redact_url(value)!r} is a URL; 'files' takes local paths only (a glob such as "
            "/data/glass/*.hdf, or a folder). For remote data publish a STAC collection and set 'id'"
        )
    return value


def unique_items(values: tuple[T, ...]) -> tuple[T, ...]:
    """Refuse repeated entries in a list, keeping the order given."""
    repeated = sorted({repr(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{list(values)!r} repeats {', '.join(repeated)}; list each entry once")
    return values


def sorted_unique(values: Iterable[int]) -> tuple[int, ...]:
    """Sort and de-duplicate integers (years, quarters)."""
    return tuple(sorted(set(values)))


def scalar_to_tuple(value: object) -> object:
    """Let ``years: 2021`` stand for ``years: [2021]``."""
    return (value,) if isinstance(value, int) and not isinstance(value, bool) else value


def norm_memory_limit(value: str) -> str:
    """Check a Dask memory limit: ``"auto"``, a byte count or a size such as ``"4GiB"``/``"500 MB"``."""
    if value == "auto" or re.fullmatch(r"\d+(\.\d+)?\s*([kMGT]i?B|[kKMGT]B?|B)?", value.strip()):
        return value
    raise ValueError(f"{value!r} is not a memory size; write 'auto' or a size such as '4GiB' or '500MB'")


def norm_scheduler_address(value: str) -> str:
    """Check a Dask scheduler address such as ``tcp://127.0.0.1:8786``."""
    parts = urlsplit(value)
    _no_userinfo(parts)
    if parts.scheme not in ("tcp", "tls", "ws", "wss", "ucx") or not parts.hostname or parts.port is None:
        raise ValueError(
            f"{redact_url(value)!r} is not a Dask scheduler address; write e.g. 'tcp://127.0.0.1:8786' "
            "(scheme tcp, tls, ws, wss or ucx, a host and a port)"
        )
    return value


def norm_path_text(value: str) -> str:
    """Refuse empty paths; normalise separators (``a/./b/../c`` becomes ``a/c``) for local paths."""
    if not value.strip():
        raise ValueError("the path is empty; give a file or folder path")
    return value if is_url(value) else os.path.normpath(value)


NonEmptyStr = Annotated[str, Field(min_length=1)]
"""A string with at least one character."""


def norm_slug(value: str) -> str:
    """Check a run name: 1-64 letters, digits, ``-`` or ``_``."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
        raise ValueError(
            f"{value!r} is not a run name: use 1-64 letters, digits, '-' or '_' "
            "(it names folders and STAC ids)"
        )
    return value


Slug = Annotated[
    str, AfterValidator(norm_slug), WithJsonSchema({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"})
]
"""A run name: 1-64 letters, digits, ``-`` or ``_`` (used in paths and STAC ids)."""

DataPath = Annotated[str, AfterValidator(norm_path_text), AfterValidator(norm_data_path)]
"""A local path (made absolute by the loader) or an ``s3://bucket/prefix`` location."""

LocalFolder = Annotated[str, AfterValidator(norm_path_text), AfterValidator(norm_local_folder)]
"""A local folder path (made absolute by the loader)."""

LocalGlob = Annotated[str, AfterValidator(norm_path_text), AfterValidator(norm_local_glob)]
"""A local file pattern (``*``, ``?``, ``[...]``, ``**``) or folder path (made absolute by the loader)."""

HttpUrl = Annotated[str, AfterValidator(norm_http_url)]
"""An ``http(s)://`` URL without credentials."""

MemoryLimit = Annotated[str, AfterValidator(norm_memory_limit)]
"""A Dask memory limit."""

SchedulerAddress = Annotated[str, AfterValidator(norm_scheduler_address)]
"""A Dask scheduler address."""

Years = Annotated[
    tuple[Annotated[int, Field(ge=1982, le=2100)], ...],
    BeforeValidator(scalar_to_tuple),
    Field(min_length=1),
    AfterValidator(sorted_unique),
]
"""Calendar years, sorted and de-duplicated."""

Quarters = Annotated[
    tuple[Annotated[int, Field(ge=1, le=4)], ...],
    BeforeValidator(scalar_to_tuple),
    Field(min_length=1),
    AfterValidator(sorted_unique),
]
"""Calendar quarters 1 (Jan-Mar) to 4 (Oct-Dec), sorted and de-duplicated."""
