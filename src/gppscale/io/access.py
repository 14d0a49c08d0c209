"""How asset hrefs are read: URL signing and requester-pays, applied at read time and never stored.

Planetary Computer asset URLs carry a SAS token valid for about 45 minutes, so they are signed when a
reader is built (odc-stac's ``patch_url``), never when searching: the frozen search keeps bare hrefs.
Requester-pays S3 buckets (the USGS Landsat bucket) need ``AWS_REQUEST_PAYER=requester`` in GDAL's
environment on every process that reads, which odc-stac's ``configure_rio(client=...)`` installs on
Dask workers. Credentials are never part of these settings: each process reads its own environment.

Example:
    >>> resolve_patch_url("none") is None
    True
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import urllib3

from gppscale.errors import MissingDependencyError

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["PatchUrl", "configure_reading", "href_exists", "missing_hrefs", "resolve_patch_url"]

PatchUrl = Callable[[str], str]
"""A function that turns a stored href into a readable URL (e.g. adds a signature)."""


def resolve_patch_url(sign: str) -> PatchUrl | None:
    """The URL-signing function for ``catalog.sign``, or ``None`` for ``"none"``.

    Raises:
        MissingDependencyError: For ``"planetary-computer"`` without the ``planetary-computer`` package.
    """
    if sign == "none":
        return None
    try:
        import planetary_computer
    except ImportError as e:
        raise MissingDependencyError(
            "catalog.sign: planetary-computer needs the planetary-computer package; "
            "install it with: pip install 'gppscale[pc]'"
        ) from e
    sign_url: PatchUrl = planetary_computer.sign_url
    return sign_url


def configure_reading(requester_pays: bool, client: Client | None = None) -> None:
    """Set GDAL's cloud defaults (and requester-pays) in this process and on ``client``'s workers."""
    from odc.stac import configure_rio

    extra: dict[str, Any] = {"AWS_REQUEST_PAYER": "requester"} if requester_pays else {}
    configure_rio(cloud_defaults=True, client=client, **extra)


_HTTP = urllib3.PoolManager(
    retries=urllib3.Retry(total=3, backoff_factor=0.3, status_forcelist=(502, 503, 504))
)


def href_exists(href: str, patch_url: PatchUrl | None = None, *, requester_pays: bool = False) -> bool:
    """Whether an asset href can be found (a stat, an S3 head or an HTTP HEAD; no pixels are read).

    Example:
        >>> href_exists("file:///definitely/not/here.tif")
        False
    """
    url = urlparse(href)
    if url.scheme in ("", "file"):
        return Path(unquote(url.path)).exists()
    if url.scheme == "s3":
        import s3fs

        fs = s3fs.S3FileSystem(requester_pays=requester_pays, skip_instance_cache=True)
        return bool(fs.exists(href))
    if url.scheme in ("http", "https"):
        signed = patch_url(href) if patch_url is not None else href
        try:
            response = _HTTP.request("HEAD", signed, redirect=True, timeout=30.0)
        except urllib3.exceptions.HTTPError:
            return False
        return bool(response.status < 400)
    return False


def missing_hrefs(
    hrefs: list[str], patch_url: PatchUrl | None = None, *, requester_pays: bool = False, threads: int = 16
) -> set[str]:
    """The hrefs of ``hrefs`` that cannot be found, checked ``threads`` at a time."""
    unique = sorted(set(hrefs))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        found = pool.map(lambda h: href_exists(h, patch_url, requester_pays=requester_pays), unique)
        return {h for h, ok in zip(unique, found, strict=True) if not ok}
