"""A summary of what a STAC API holds for a run: items and date range per role.

The full search stage (frozen stac-geoparquet, asset checks) comes later; this module only counts.
Searches use pystac-client's default ``POST /search`` (``rustac serve`` fails ``GET`` with both
``collections`` and ``limit``) and no CQL2 ``filter``/``query`` (``rustac`` ignores them).

Example:
    >>> years_to_datetime((2019, 2020))
    '2019-01-01T00:00:00Z/2020-12-31T23:59:59Z'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime as dt_datetime
from typing import Any

from pystac_client import Client
from pystac_client.stac_api_io import StacApiIO
from urllib3.util.retry import Retry

from gppscale.errors import CatalogError

__all__ = [
    "RETRY_STATUSES",
    "RoleSummary",
    "item_time_range",
    "open_client",
    "stac_retry",
    "summarize_search",
    "years_to_datetime",
]

RETRY_STATUSES: tuple[int, ...] = (429, 502, 503, 504)
"""HTTP statuses retried with backoff; pystac-client's default ``max_retries=5`` retries none of them."""

_PAGE_LIMIT = 250


@dataclass(frozen=True)
class RoleSummary:
    """What a search found for one role of a run.

    Attributes:
        role: The run's name for the input (``landsat``, ``dem``, ``coarse_gpp``...).
        collection: The STAC collection id searched.
        items: Number of items that matched.
        start: Earliest item time (``datetime`` or ``start_datetime``), ``None`` when no item has one.
        end: Latest item time (``datetime`` or ``end_datetime``), ``None`` when no item has one.
        static: Whether the role was searched without a datetime filter.
    """

    role: str
    collection: str
    items: int
    start: dt_datetime | None
    end: dt_datetime | None
    static: bool = False


def years_to_datetime(years: Sequence[int]) -> str:
    """An RFC 3339 interval from 1 January of the first year to the end of the last year.

    Raises:
        CatalogError: If ``years`` is empty.
    """
    if not years:
        raise CatalogError("no years given; a run needs at least one year to search")
    return f"{min(years)}-01-01T00:00:00Z/{max(years)}-12-31T23:59:59Z"


def stac_retry(total: int = 5, backoff_factor: float = 0.5) -> Retry:
    """The urllib3 ``Retry`` for STAC API requests.

    It retries connection errors and :data:`RETRY_STATUSES` for every method, POST included:
    a STAC search is a read even when sent as POST, and urllib3 retries no POST by default.
    After the last try the response is returned, so pystac-client reports the server's own message.
    """
    return Retry(
        total=total,
        backoff_factor=backoff_factor,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=None,
        raise_on_status=False,
        respect_retry_after_header=True,
    )


def open_client(url: str, retry: Retry | None = None) -> Client:
    """Open a STAC API with pystac-client, retrying :data:`RETRY_STATUSES` (see :func:`stac_retry`).

    Raises:
        CatalogError: If the API cannot be reached or its landing page is not a STAC catalog.
    """
    stac_io = StacApiIO(max_retries=retry if retry is not None else stac_retry())
    try:
        return Client.open(url, stac_io=stac_io)
    except Exception as e:  # requests, pystac and pystac-client raise unrelated types
        raise CatalogError(f"cannot open the STAC API at {url!r}: {e}") from e


def _parse_time(value: object) -> dt_datetime | None:
    if not isinstance(value, str):
        return None
    return dt_datetime.fromisoformat(value)


def item_time_range(item: Mapping[str, Any]) -> tuple[dt_datetime | None, dt_datetime | None]:
    """The time span of an item dict: ``start_datetime``/``end_datetime`` if given, else ``datetime``.

    Example:
        >>> item_time_range({"properties": {"datetime": "2020-03-15T00:00:00Z"}})[0].isoformat()
        '2020-03-15T00:00:00+00:00'
    """
    props = item.get("properties", {})
    instant = _parse_time(props.get("datetime"))
    start = _parse_time(props.get("start_datetime")) or instant
    end = _parse_time(props.get("end_datetime")) or instant
    return start, end


def summarize_items(
    role: str, collection: str, items: Iterable[Mapping[str, Any]], *, static: bool = False
) -> RoleSummary:
    """Count ``items`` and find their overall time range."""
    count = 0
    starts: list[dt_datetime] = []
    ends: list[dt_datetime] = []
    for item in items:
        count += 1
        start, end = item_time_range(item)
        starts += [start] if start is not None else []
        ends += [end] if end is not None else []
    return RoleSummary(role, collection, count, min(starts, default=None), max(ends, default=None), static)


def _search_dicts(
    client: Client, collection: str, bbox: tuple[float, float, float, float], datetime: str | None
) -> Iterable[Mapping[str, Any]]:
    search = client.search(
        collections=[collection], bbox=list(bbox), datetime=datetime, max_items=None, limit=_PAGE_LIMIT
    )
    items: Iterable[Mapping[str, Any]] = search.items_as_dicts()
    return items


def _available(client: Client) -> list[str]:
    try:
        return sorted(c.id for c in client.get_collections())
    except Exception:  # only used to improve an error message
        return []


def summarize_search(
    url: str,
    collections: Mapping[str, str],
    bbox: tuple[float, float, float, float],
    datetime: str | None,
    static_roles: frozenset[str],
    *,
    optional_roles: frozenset[str] = frozenset(),
) -> list[RoleSummary]:
    """Search every role's collection at a STAC API and summarise what matched.

    Args:
        url: Root URL of the STAC API.
        collections: Role to collection id, e.g. ``{"landsat": "landsat-c2-l2"}``.
        bbox: West, south, east, north in degrees.
        datetime: RFC 3339 interval for time-varying roles (see :func:`years_to_datetime`), or ``None``.
        static_roles: Roles searched without a datetime filter (DEM, forest type: their dates need not
            overlap the run's years).
        optional_roles: Roles that may match nothing; every other role must match at least one item.

    Returns:
        One summary per role, in the order of ``collections``.

    Raises:
        CatalogError: If the API cannot be reached or a search fails, or a required role matches no item
            (the message names the collection, bbox, datetime and the collections the API has).
    """
    client = open_client(url)
    summaries = []
    for role, collection in collections.items():
        static = role in static_roles
        when = None if static else datetime
        try:
            summary = summarize_items(
                role, collection, _search_dicts(client, collection, bbox, when), static=static
            )
        except Exception as e:  # requests and pystac-client raise unrelated types
            raise CatalogError(
                f"search of collection {collection!r} (role {role!r}) at {url} failed for "
                f"bbox={list(bbox)!r} datetime={when!r}: {e}"
            ) from e
        if summary.items == 0 and role not in optional_roles:
            raise CatalogError(
                f"collection {collection!r} (role {role!r}) at {url} has no items for bbox={list(bbox)!r} "
                f"datetime={when!r}; collections there: {_available(client)!r}. Check the collection id "
                "in the run spec, its area and years, or mark the role as static if its dates are fixed"
            )
        summaries.append(summary)
    return summaries
