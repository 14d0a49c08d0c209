"""Stage 2, search: every role's items searched once and frozen as stac-geoparquet in the run store.

Later stages read only the frozen items (``search/<role>.parquet``), so a run is reproducible even when
the catalog changes. ``search/search.json`` records the query, the counts, the skipped items with
their reasons and a sha256 of each parquet file.

Client-side rules (``rustac serve`` and some APIs ignore CQL2, so nothing is filtered server-side):

* Landsat scenes above ``catalog.max_cloud_cover_pct`` are dropped.
* An item that lacks a needed asset, projection metadata for it (``proj:code``/``proj:epsg``/
  ``proj:wkt2``/``proj:projjson`` plus ``proj:shape`` and ``proj:transform``, on the item or the asset),
  or whose href cannot be found (``catalog.check_hrefs``) is skipped; one :class:`DataWarning` per role
  lists them.
* A required role left with no item is a :class:`NoDataError` naming collection, bbox and dates.
* A coarse role whose collection sets ``files`` is not searched: its items are built from those local
  files (:func:`gppscale.io.files.file_items`), screened the same way (their hrefs were just opened,
  so they are not checked again), and its manifest entry says ``"source": "files"`` with the glob.

Example:
    >>> item = {"id": "a", "properties": {"proj:code": "EPSG:32650"}, "assets": {"data": {"href": "x.tif"}}}
    >>> for problem in item_problems(item, {"data": "data"}):
    ...     print(problem)
    ('data', 'no proj:shape/proj:transform')
    ('data', "href 'x.tif' has no scheme (file://, s3://, https://, vrt://)")
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import rustac
from pystac_client import Client

from gppscale import __version__
from gppscale.config import CoarseCollection, RunSpec
from gppscale.errors import CatalogError, DataWarning, NoDataError, StoreError
from gppscale.io.access import missing_hrefs, resolve_patch_url
from gppscale.io.files import file_items, files_signature
from gppscale.io.search import _search_dicts, open_client
from gppscale.io.store import RunStore

__all__ = [
    "SEARCH_DIR",
    "FrozenSearch",
    "Skipped",
    "file_roles",
    "item_problems",
    "load_frozen",
    "role_assets",
    "search_fingerprint",
    "search_run",
]

SEARCH_DIR = "search"
"""Folder of the frozen search in the run store."""

_WINDOW_MARGIN = timedelta(days=16)
"""Widening of the date range for windowed roles (8-day products straddle year ends)."""

_CRS_KEYS = ("proj:code", "proj:epsg", "proj:wkt2", "proj:projjson")
_SCHEMES = ("file", "s3", "http", "https", "gs", "az", "vrt")
"""Href schemes GDAL reads; ``vrt://`` wraps a GDAL dataset name such as a subdataset of a local HDF file."""

Item = dict[str, Any]


@dataclass(frozen=True)
class Skipped:
    """An item left out of the run and why."""

    role: str
    item: str
    asset: str
    reason: str


@dataclass(frozen=True)
class FrozenSearch:
    """The frozen items of a run, per role, and the manifest that describes them."""

    items: Mapping[str, list[Item]]
    manifest: Mapping[str, Any] = field(default_factory=dict)

    def role(self, role: str) -> list[Item]:
        """The items of ``role`` ([] for an optional role without items)."""
        return list(self.items.get(role, []))


def role_assets(spec: RunSpec, role: str) -> dict[str, str]:
    """Canonical name -> catalog asset key of every asset a role needs."""
    collection = getattr(spec.collections, role)
    assets: dict[str, str] = collection.assets.as_dict()
    return assets


def _has_any(mapping: Mapping[str, Any], keys: Iterable[str]) -> bool:
    return any(mapping.get(k) not in (None, "") for k in keys)


def item_problems(item: Mapping[str, Any], assets: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(asset key, reason)`` for every needed asset of ``item`` that cannot be loaded. Pure."""
    props = item.get("properties", {})
    problems: list[tuple[str, str]] = []
    for key in assets.values():
        asset = item.get("assets", {}).get(key)
        if asset is None:
            problems.append((key, "asset missing"))
            continue
        if not (_has_any(asset, _CRS_KEYS) or _has_any(props, _CRS_KEYS)):
            problems.append((key, "no CRS (proj:code, proj:epsg, proj:wkt2 or proj:projjson)"))
        if not (_has_any(asset, ("proj:transform",)) or _has_any(props, ("proj:transform",))) or not (
            _has_any(asset, ("proj:shape",)) or _has_any(props, ("proj:shape",))
        ):
            problems.append((key, "no proj:shape/proj:transform"))
        href = str(asset.get("href", ""))
        if urlparse(href).scheme not in _SCHEMES:
            problems.append((key, f"href {href!r} has no scheme (file://, s3://, https://, vrt://)"))
    return problems


def _role_datetime(spec: RunSpec, role: str) -> str | None:
    if role in spec.collections.STATIC_ROLES:
        return None
    start = datetime(min(spec.years), 1, 1, tzinfo=UTC)
    end = datetime(max(spec.years) + 1, 1, 1, tzinfo=UTC) - timedelta(seconds=1)
    if role != "landsat":
        start, end = start - _WINDOW_MARGIN, end + _WINDOW_MARGIN
    return f"{start:%Y-%m-%dT%H:%M:%SZ}/{end:%Y-%m-%dT%H:%M:%SZ}"


def _without_links(item: Mapping[str, Any]) -> Item:
    """The item without its links.

    Links name the API's address, not the data, and would make two searches of the same items at two
    addresses differ.
    """
    return {k: v for k, v in item.items() if k != "links"}


def _cloud_ok(item: Mapping[str, Any], max_pct: float) -> bool:
    cover = item.get("properties", {}).get("eo:cloud_cover")
    return cover is None or float(cover) <= max_pct


def file_roles(spec: RunSpec) -> dict[str, CoarseCollection]:
    """Role -> collection settings of every role whose items come from local files (``files`` set)."""
    roles = {role: getattr(spec.collections, role) for role in spec.collections.ids()}
    return {role: c for role, c in roles.items() if isinstance(c, CoarseCollection) and c.files is not None}


def search_fingerprint(spec: RunSpec, url: str) -> str:
    """A digest of everything that decides what the search returns, local files' sizes and times included."""
    # A world is served on a new port each time: name it by its folder, not by the server's address.
    source = str(spec.catalog.world) if spec.catalog.world is not None else url
    query = {
        "catalog": source,
        "bbox": spec.area.bounds_lonlat(),
        "years": list(spec.years),
        "collections": spec.collections.model_dump(mode="json"),
        "max_cloud_cover_pct": spec.catalog.max_cloud_cover_pct,
        "files": {role: files_signature(str(c.files)) for role, c in file_roles(spec).items()},
    }
    return hashlib.sha256(json.dumps(query, sort_keys=True).encode()).hexdigest()[:16]


def _screen(
    spec: RunSpec, role: str, found: list[Item], check_hrefs: bool
) -> tuple[list[Item], list[Skipped]]:
    """Items of ``role`` that can be loaded, and the skipped ones with reasons."""
    assets = role_assets(spec, role)
    kept: list[Item] = []
    skipped: list[Skipped] = []
    for item in found:
        problems = item_problems(item, assets)
        skipped += [Skipped(role, item["id"], asset, reason) for asset, reason in problems]
        if not problems:
            kept.append(item)
    if check_hrefs and kept:
        hrefs = {(item["id"], k): item["assets"][k]["href"] for item in kept for k in assets.values()}
        missing = missing_hrefs(
            list(hrefs.values()),
            resolve_patch_url(spec.catalog.sign),
            requester_pays=spec.catalog.requester_pays,
        )
        broken = [(iid, k) for (iid, k), href in hrefs.items() if href in missing]
        skipped += [Skipped(role, iid, k, f"href not found: {hrefs[(iid, k)]}") for iid, k in broken]
        bad_ids = {iid for iid, _ in broken}
        kept = [item for item in kept if item["id"] not in bad_ids]
    return kept, skipped


def _warn_skipped(role: str, collection: str, skipped: Sequence[Skipped]) -> None:
    if not skipped:
        return
    lines = "\n".join(f"  {s.item} / {s.asset}: {s.reason}" for s in skipped[:50])
    more = f"\n  ... and {len(skipped) - 50} more" if len(skipped) > 50 else ""
    warnings.warn(
        f"{collection!r} (role {role}): skipped {len({s.item for s in skipped})} item(s) that cannot be "
        f"loaded:\n{lines}{more}",
        DataWarning,
        stacklevel=3,
    )


def _write_parquet(store: RunStore, rel: str, items: list[Item]) -> str:
    """Write ``items`` as stac-geoparquet at ``rel``; returns the file's sha256."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "items.parquet"
        rustac.write_sync(str(local), items)
        digest = hashlib.sha256(local.read_bytes()).hexdigest()
        store.upload_file(str(local), rel)
    return digest


def _parquet_to_items(data: bytes) -> list[Item]:
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "items.parquet"
        local.write_bytes(data)
        collection = rustac.read_sync(str(local))
    items: list[Item] = collection.get("features", [])
    return items


def _search_role(
    spec: RunSpec, client: Client, url: str, role: str, collection: str
) -> tuple[list[Item], dict[str, Any]]:
    """The screened items of one role from the STAC API, and its manifest entry (without sha256)."""
    bbox = spec.area.bounds_lonlat()
    when = _role_datetime(spec, role)
    try:
        found = [_without_links(i) for i in _search_dicts(client, collection, bbox, when)]
    except Exception as e:  # requests and pystac-client raise unrelated types
        raise CatalogError(
            f"search of {collection!r} (role {role}) at {url} failed for bbox={list(bbox)} "
            f"datetime={when}: {e}"
        ) from e
    cloudy = 0
    if role == "landsat":
        clear = [i for i in found if _cloud_ok(i, spec.catalog.max_cloud_cover_pct)]
        cloudy, found = len(found) - len(clear), clear
    kept, skipped = _screen(spec, role, found, spec.catalog.check_hrefs)
    _warn_skipped(role, collection, skipped)
    if not kept and role not in spec.collections.OPTIONAL_ROLES:
        raise NoDataError(
            f"no usable items in collection {collection!r} (role {role}) at {url} for "
            f"bbox={list(bbox)} datetime={when or 'any'} ({len(found) + cloudy} found, {cloudy} above "
            f"max_cloud_cover_pct={spec.catalog.max_cloud_cover_pct}, "
            f"{len({s.item for s in skipped})} unloadable). Check the collection id, area and years "
            "in the run spec"
        )
    entry = {
        "source": "stac",
        "collection": collection,
        "datetime": when,
        "found": len(found) + cloudy,
        "cloudy": cloudy,
        "kept": len(kept),
        "skipped": [s.__dict__ for s in skipped],
    }
    return kept, entry


def _files_role(spec: RunSpec, role: str, settings: CoarseCollection) -> tuple[list[Item], dict[str, Any]]:
    """The screened items of one role built from local files, and its manifest entry (without sha256)."""
    found = file_items(settings, spec.years, role=role, margin=_WINDOW_MARGIN)
    # The files were opened to build the items: no href check.
    kept, skipped = _screen(spec, role, found, check_hrefs=False)
    _warn_skipped(role, f"files {settings.files}", skipped)
    if not kept:
        raise NoDataError(
            f"none of the {len(found)} file(s) of collections.{role}.files {settings.files!r} can be "
            "loaded (see the warning above for why)"
        )
    entry = {
        "source": "files",
        "files": settings.files,
        "datetime": _role_datetime(spec, role),
        "found": len(found),
        "cloudy": 0,
        "kept": len(kept),
        "skipped": [s.__dict__ for s in skipped],
    }
    return kept, entry


def search_run(
    spec: RunSpec,
    url: str,
    store: RunStore,
    *,
    refresh: bool = False,
    progress: Callable[[str], None] | None = None,
) -> FrozenSearch:
    """Search every role of ``spec`` at the STAC API ``url`` and freeze the result in ``store``.

    A frozen search of the same query already in the store is reused (``refresh=False``), so resumed
    runs read exactly the items of the first one. Coarse roles whose collection sets ``files`` take
    their items from those local files instead (see :mod:`gppscale.io.files`); adding, removing or
    changing such a file makes the query new.

    Raises:
        CatalogError: If the API cannot be reached, a search fails or a local file cannot be read.
        NoDataError: If a required role has no usable item for the area and years.
        MissingDependencyError: If local files are HDF4 and GDAL has no HDF4 driver.
    """
    say = progress or (lambda _m: None)
    fingerprint = search_fingerprint(spec, url)
    manifest_rel = f"{SEARCH_DIR}/search.json"
    if not refresh and store.exists(manifest_rel):
        old = store.read_json(manifest_rel)
        if old.get("fingerprint") == fingerprint:
            say(f"search: reusing the frozen search of {old.get('created')}")
            return load_frozen(store)
    client = open_client(url)
    from_files = file_roles(spec)
    roles: dict[str, Any] = {}
    frozen: dict[str, list[Item]] = {}
    for role, collection in spec.collections.ids().items():
        if role in from_files:
            kept, entry = _files_role(spec, role, from_files[role])
            say(f"search: {role:<14} {'(local files)':<20} {len(kept):5d} items from {entry['files']}")
        else:
            kept, entry = _search_role(spec, client, url, role, collection)
            counts = f"{len(kept):5d} items ({len(entry['skipped'])} skipped, {entry['cloudy']} cloudy)"
            say(f"search: {role:<14} {collection:<20} {counts}")
        frozen[role] = kept
        sha = _write_parquet(store, f"{SEARCH_DIR}/{role}.parquet", kept) if kept else None
        roles[role] = {**entry, "sha256": sha}
    manifest = {
        "fingerprint": fingerprint,
        "catalog": url,
        "bbox": list(spec.area.bounds_lonlat()),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "gppscale": __version__,
        "roles": roles,
    }
    store.write_json(manifest_rel, manifest)
    return FrozenSearch(frozen, manifest)


def load_frozen(store: RunStore) -> FrozenSearch:
    """The frozen search of a run store.

    Raises:
        StoreError: If the store holds no frozen search (run ``gppscale search SPEC`` first) or a parquet
            file does not match its recorded checksum.
    """
    manifest_rel = f"{SEARCH_DIR}/search.json"
    if not store.exists(manifest_rel):
        raise StoreError(f"no frozen search in {store.join(SEARCH_DIR)}; run `gppscale search SPEC` first")
    manifest = store.read_json(manifest_rel)
    items: dict[str, list[Item]] = {}
    for role, info in manifest["roles"].items():
        if info.get("sha256") is None:
            items[role] = []
            continue
        rel = f"{SEARCH_DIR}/{role}.parquet"
        data = store.read_bytes(rel)
        digest = hashlib.sha256(data).hexdigest()
        if digest != info["sha256"]:
            raise StoreError(
                f"{store.join(rel)} changed since it was frozen (sha256 {digest[:12]} != "
                f"{info['sha256'][:12]}); rerun `gppscale search SPEC --refresh`"
            )
        items[role] = _parquet_to_items(data)
    return FrozenSearch(items, manifest)
