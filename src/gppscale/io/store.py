"""The run store: one root (a local folder or an ``s3://`` prefix) that holds a run's files and Zarr stores.

A :class:`RunStore` holds only its URL string. It is a frozen, picklable dataclass, so it can travel inside
a Dask graph without carrying secrets: each process that touches the store builds its own filesystem from
its own environment (:func:`storage_options_from_env`); botocore then finds credentials itself (environment
variables, a profile, or the instance / pod role). Credentials therefore never appear in options, graphs or
logs.

Local writes are atomic (temporary file, then :func:`os.replace`); an S3 ``PUT`` is atomic per object.

Example:
    >>> import tempfile
    >>> store = RunStore(tempfile.mkdtemp())
    >>> store.write_json("state/plan.json", {"b": 1, "a": 2})
    >>> store.read_json("state/plan.json")
    {'a': 2, 'b': 1}
    >>> store.listdir("state")
    ['plan.json']
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gppscale.errors import StoreError

if TYPE_CHECKING:
    import zarr.abc.store

__all__ = ["CUBE_REL", "RunStore", "storage_options_from_env"]

CUBE_REL = "cube.zarr"
"""The predictor cube's place in a run store."""

_S3 = "s3://"
# botocore's "legacy" retry mode, chosen on purpose: the "standard" and "adaptive" modes draw every retry
# from a client-wide retry quota (500 tokens, 5 per retry) that a sustained 503 storm empties, after which
# they fail at once without retrying. Legacy mode keeps no quota; it retries 5xx and throttling errors with
# exponential backoff (random base times 2^n s). Eight attempts wait about a minute on average (two at most)
# before giving up, long enough to ride out a throttling burst, short enough to surface a real outage.
_RETRIES: dict[str, Any] = {"mode": "legacy", "total_max_attempts": 8}
_CONNECT_TIMEOUT_S = 10
_READ_TIMEOUT_S = 60
# Loggers that print the access key id and session token at DEBUG level.
_SECRET_LOGGERS = ("botocore", "aiobotocore")


def storage_options_from_env(url: str, *, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Build fsspec storage options for ``url`` from the environment of the calling process.

    For ``s3://`` URLs the options hold the endpoint (``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``;
    set for moto or MinIO), a deliberate botocore retry policy (legacy mode, see the module source),
    timeouts, ``requester_pays=False`` and no listing cache (other processes write to the same prefixes).
    They never hold credentials: botocore reads those from the environment, a profile or an instance role.
    Local paths need no options.

    Args:
        url: A local path or an ``s3://bucket/prefix`` URL.
        environ: The environment to read; defaults to :data:`os.environ`.

    Returns:
        Keyword arguments for ``fsspec.filesystem(protocol, **options)`` or ``storage_options=``.

    Example:
        >>> storage_options_from_env("/tmp/run")
        {}
        >>> opts = storage_options_from_env("s3://b/run", environ={"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"})
        >>> opts["endpoint_url"], opts["requester_pays"]
        ('http://127.0.0.1:5000', False)
    """
    if not url.startswith(_S3):
        return {}
    env = os.environ if environ is None else environ
    options: dict[str, Any] = {
        "requester_pays": False,
        "use_listings_cache": False,
        "config_kwargs": {
            "retries": dict(_RETRIES),
            "connect_timeout": _CONNECT_TIMEOUT_S,
            "read_timeout": _READ_TIMEOUT_S,
        },
    }
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
    return options


def _keep_secret_loggers_quiet() -> None:
    # DESIGN.md: botocore DEBUG logging prints the access key id and session token. Raise those loggers
    # to INFO whenever something (a root DEBUG config, say) would let their DEBUG records through.
    for name in _SECRET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


def _store_error_types() -> tuple[type[BaseException], ...]:
    try:
        from botocore.exceptions import (  # type: ignore[import-untyped,unused-ignore]  # botocore has no types
            BotoCoreError,
            ClientError,
        )
    except ImportError:  # local stores only
        return (OSError,)
    return (OSError, BotoCoreError, ClientError)


def _normalise_url(url: str) -> str:
    if url.startswith(_S3):
        path = url[len(_S3) :].strip("/")
        if not path:
            raise StoreError(f"store URL {url!r} names no bucket; give 's3://bucket/prefix'")
        return _S3 + path
    if "://" in url:
        raise StoreError(
            f"store URL {url!r} has an unsupported scheme; give a local absolute path or 's3://bucket/prefix'"
        )
    if not os.path.isabs(url):
        raise StoreError(f"store path {url!r} is relative; give an absolute path (workers resolve it too)")
    return os.path.normpath(url)


def _check_rel(rel: str) -> str:
    parts = [p for p in rel.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise StoreError(f"store path {rel!r} climbs out of the store with '..'; give a path inside it")
    return "/".join(parts)


@dataclass(frozen=True)
class RunStore:
    """A run's storage root: a local absolute path or ``s3://bucket/prefix``; holds only that URL.

    Every method takes a path relative to the root (``"state/plan.json"``); ``""`` is the root itself.
    The filesystem is created lazily, in the process that calls a method, from that process's environment.

    Args:
        url: Local absolute path or ``s3://bucket/prefix`` (a trailing ``/`` is dropped).

    Raises:
        StoreError: If the URL is relative, has another scheme, or names no bucket.

    Example:
        >>> RunStore("s3://bucket/runs/luanhe/").join("cube.zarr")
        's3://bucket/runs/luanhe/cube.zarr'
        >>> RunStore("/data/run").join("state", "plan.json")
        '/data/run/state/plan.json'
    """

    url: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", _normalise_url(os.fspath(self.url)))

    @property
    def is_s3(self) -> bool:
        """Whether the store lives on S3 (or an S3-compatible server)."""
        return self.url.startswith(_S3)

    def join(self, *parts: str) -> str:
        """Return the full URL (or local path) of ``parts`` under the root.

        Example:
            >>> RunStore("/data/run").join()
            '/data/run'
        """
        rel = _check_rel("/".join(parts))
        return f"{self.url}/{rel}" if rel else self.url

    def _path(self, rel: str) -> str:
        full = self.join(rel)
        return full[len(_S3) :] if self.is_s3 else full

    def _fs(self) -> Any:  # noqa: ANN401 - fsspec ships no types
        import fsspec

        if self.is_s3:
            _keep_secret_loggers_quiet()
            return fsspec.filesystem("s3", **storage_options_from_env(self.url))
        return fsspec.filesystem("file")

    @contextmanager
    def _errors(self, action: str, rel: str) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except FileNotFoundError as e:
            raise StoreError(f"cannot {action} {self.join(rel)!r}: it does not exist ({e})") from e
        except _store_error_types() as e:
            raise StoreError(
                f"cannot {action} {self.join(rel)!r}: {type(e).__name__}: {e}. "
                "Run RunStore.check_writable() for a diagnosis (bucket, credentials, endpoint)"
            ) from e

    def exists(self, rel: str) -> bool:
        """Whether a file or folder (an S3 prefix) exists at ``rel``."""
        with self._errors("check", rel):
            return bool(self._fs().exists(self._path(rel)))

    def read_bytes(self, rel: str) -> bytes:
        """Read a whole file.

        Raises:
            StoreError: If it does not exist or cannot be read.
        """
        with self._errors("read", rel):
            data: bytes = self._fs().cat_file(self._path(rel))
            return data

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write a whole file, replacing it atomically (local: temporary file + rename; S3: one PUT)."""
        with self._errors("write", rel):
            if self.is_s3:
                self._fs().pipe_file(self._path(rel), data)
                return
            target = Path(self._path(rel))
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as f:
                f.write(data)
            os.replace(f.name, target)

    def read_json(self, rel: str) -> Any:  # noqa: ANN401 - any JSON value
        """Read and parse a JSON file.

        Raises:
            StoreError: If it does not exist, cannot be read or is not valid JSON.
        """
        data = self.read_bytes(rel)
        try:
            return json.loads(data)
        except ValueError as e:
            raise StoreError(f"{self.join(rel)!r} is not valid JSON ({e}); remove it and rerun") from e

    def write_json(self, rel: str, obj: Any) -> None:  # noqa: ANN401 - any JSON value
        """Write ``obj`` as JSON (sorted keys, indented), atomically."""
        text = json.dumps(obj, sort_keys=True, indent=2, allow_nan=False) + "\n"
        self.write_bytes(rel, text.encode())

    def listdir(self, rel: str) -> list[str]:
        """Names (not paths) of the entries directly under ``rel``, sorted; ``[]`` when it is absent."""
        with self._errors("list", rel):
            try:
                paths = self._fs().ls(self._path(rel), detail=False)
            except FileNotFoundError:
                return []
        base = self._path(rel).rstrip("/")
        return sorted({p.rstrip("/").rsplit("/", 1)[-1] for p in paths if p.rstrip("/") != base})

    def read_many(self, rels: list[str]) -> dict[str, bytes]:
        """Read several files at once (concurrently on S3); returns ``{rel: bytes}``.

        Raises:
            StoreError: If any of them does not exist or cannot be read.
        """
        if not rels:
            return {}
        paths = {self._path(r): r for r in rels}
        with self._errors("read", rels[0]):
            found: dict[str, bytes] = self._fs().cat(list(paths), on_error="raise")
        return {paths[p]: data for p, data in found.items()}

    def remove(self, rel: str) -> None:
        """Remove a file or a whole folder (prefix); no error when it is absent."""
        with self._errors("remove", rel):
            fs = self._fs()
            path = self._path(rel)
            if fs.exists(path):
                fs.rm(path, recursive=True)

    def upload_file(self, local_path: str | os.PathLike[str], rel: str) -> None:
        """Copy a local file into the store at ``rel`` (atomically, as :meth:`write_bytes`)."""
        with self._errors("upload to", rel):
            if self.is_s3:
                self._fs().put_file(os.fspath(local_path), self._path(rel))
                return
            target = Path(self._path(rel))
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
            shutil.copyfile(local_path, tmp)
            os.replace(tmp, target)

    def download_file(self, rel: str, local_path: str | os.PathLike[str]) -> None:
        """Copy the file at ``rel`` to a local path, replacing it atomically."""
        target = Path(local_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        with self._errors("download", rel):
            try:
                if self.is_s3:
                    self._fs().get_file(self._path(rel), os.fspath(tmp))
                else:
                    shutil.copyfile(self._path(rel), tmp)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)

    def zarr_store(self, rel: str, *, read_only: bool = False) -> zarr.abc.store.Store:
        """A Zarr 3 store at ``rel``: ``LocalStore`` for local paths, ``FsspecStore`` (async s3fs) on S3.

        Example:
            >>> type(RunStore("/data/run").zarr_store("cube.zarr")).__name__
            'LocalStore'
        """
        from zarr.storage import FsspecStore, LocalStore

        if not self.is_s3:
            return LocalStore(self._path(rel), read_only=read_only)
        _keep_secret_loggers_quiet()
        return FsspecStore.from_url(
            self.join(rel), storage_options=storage_options_from_env(self.url), read_only=read_only
        )

    def check_writable(self) -> None:
        """Write and remove a probe file at the root; explain what to fix when that fails.

        Raises:
            StoreError: If the bucket does not exist, credentials are missing or refused, the endpoint
                cannot be reached, or the local folder cannot be created or written.
        """
        probe = f".gppscale-probe-{uuid.uuid4().hex}"
        if not self.is_s3:
            try:
                Path(self.url).mkdir(parents=True, exist_ok=True)
                self.write_bytes(probe, b"")
                self.remove(probe)
            except (OSError, StoreError) as e:
                raise StoreError(
                    f"run store folder {self.url!r} is not writable ({e}); choose a folder you can write "
                    "(output.store) or fix its permissions"
                ) from e
            return
        try:
            fs = self._fs()
            fs.pipe_file(self._path(probe), b"")
            fs.rm(self._path(probe))
        except Exception as e:  # classified below: the point is a message that says what to fix
            raise StoreError(self._s3_diagnosis(e)) from e

    def _s3_diagnosis(self, e: Exception) -> str:
        bucket = self.url[len(_S3) :].split("/", 1)[0]
        name = type(e).__name__
        endpoint = storage_options_from_env(self.url).get("endpoint_url", "AWS S3 (no AWS_ENDPOINT_URL set)")
        if isinstance(e, FileNotFoundError) or "NoSuchBucket" in str(e):
            return (
                f"bucket {bucket!r} of run store {self.url!r} does not exist at {endpoint}; create it "
                f"(`aws s3 mb s3://{bucket}`) or point output.store at an existing bucket"
            )
        if "NoCredentials" in name or isinstance(e, PermissionError):
            return (
                f"run store {self.url!r}: credentials are missing or refused ({name}: {e}); set "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or give the machine a role "
                "that may write to the bucket"
            )
        return (
            f"run store {self.url!r} is not writable ({name}: {e}); check the endpoint {endpoint} "
            "(AWS_ENDPOINT_URL), the network and the bucket policy"
        )
