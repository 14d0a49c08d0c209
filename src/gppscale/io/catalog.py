"""Serve a world folder's STAC collections as a local STAC API with ``rustac serve``.

A world folder (written by ``gppscale world``) holds ``stac/<collection-id>/collection.json`` and
``stac/<collection-id>/items.ndjson``. :func:`serve_catalog` starts ``rustac serve`` (in-memory
backend) on a concrete loopback port with all those files and yields the API's root URL.

What was verified against rustac 0.9 (CLI ``rustac serve``):

* Items in ``items.ndjson`` join the collection of their ``"collection"`` field even when the
  collection and its items come from separate hrefs, in any order (the CLI loads every href first,
  then adds collections, then items). ``--create-collections`` is not needed: an item whose
  collection has no ``collection.json`` gets a generated placeholder collection anyway, so a
  missing ``collection.json`` is not an error at the server, only an odd description.
* Paging works with ``POST /search`` (pystac-client's default): a ``limit`` below the match count
  returns a ``next`` link carrying ``skip`` in its body, and pystac-client follows it. The link
  holds the address given with ``--addr``, which is why the port must be concrete (``:0`` breaks it).
* ``GET /search`` with both ``collections`` and ``limit`` answers 500 "unsupported value"; use POST.
* CQL2 ``filter``/``query`` are ignored (0 items): filter properties such as cloud cover client-side.
* ``numberMatched`` is never returned: do not call ``ItemSearch.matched()`` (it warns).
* A bad href or malformed JSON makes it exit at once with status 1 and the reason on stderr.

Example:
    >>> from gppscale.testing.stac import make_tiny_world_stac
    >>> import tempfile
    >>> from pathlib import Path
    >>> world = make_tiny_world_stac(Path(tempfile.mkdtemp()))
    >>> with serve_catalog(world) as url:  # doctest: +SKIP
    ...     print(url)
    http://127.0.0.1:...
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from gppscale.errors import CatalogError, MissingDependencyError

__all__ = [
    "CatalogServer",
    "find_rustac",
    "free_loopback_port",
    "serve_catalog",
    "world_collection_ids",
    "world_stac_hrefs",
]

_HOST = "127.0.0.1"
_PORT_RETRIES = 3
_STOP_TIMEOUT_S = 5.0
_STDERR_TAIL_CHARS = 2_000


def free_loopback_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The port is found by binding to port 0 and closing the socket again, so another process may take
    it before the caller binds it (a race). :class:`CatalogServer` therefore retries with a fresh port
    when the server reports the address in use.

    Example:
        >>> 0 < free_loopback_port() < 65536
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
    return port


def world_stac_hrefs(world_dir: Path) -> list[Path]:
    """List the STAC files of a world folder: every ``collection.json`` first, then every ``items.ndjson``.

    Args:
        world_dir: A folder written by ``gppscale world`` (it holds ``stac/<collection-id>/...``).

    Returns:
        Absolute paths, sorted by collection id within each group.

    Raises:
        CatalogError: If the folder, its ``stac/`` subfolder or any ``collection.json`` is missing.
    """
    hint = "run `gppscale world --out DIR` first, then pass DIR"
    stac_dir = world_dir / "stac"
    if not world_dir.is_dir():
        raise CatalogError(f"world folder {str(world_dir)!r} does not exist; {hint}")
    if not stac_dir.is_dir():
        raise CatalogError(f"world folder {str(world_dir)!r} has no 'stac/' subfolder; {hint}")
    collections = sorted(stac_dir.resolve().glob("*/collection.json"))
    if not collections:
        raise CatalogError(f"{str(stac_dir)!r} holds no '<collection-id>/collection.json'; {hint}")
    items = sorted(stac_dir.resolve().glob("*/items.ndjson"))
    return [*collections, *items]


def world_collection_ids(hrefs: Sequence[Path]) -> list[str]:
    """Read the ``id`` of every ``collection.json`` among ``hrefs``, in order.

    Raises:
        CatalogError: If a collection file is not JSON or has no string ``id``.
    """
    ids = []
    for href in hrefs:
        if href.name != "collection.json":
            continue
        try:
            doc = json.loads(href.read_text())
        except (OSError, ValueError) as e:
            raise CatalogError(f"cannot read STAC collection {str(href)!r}: {e}") from e
        cid = doc.get("id") if isinstance(doc, dict) else None
        if not isinstance(cid, str):
            raise CatalogError(f"STAC collection {str(href)!r} has no string 'id' (got {cid!r})")
        ids.append(cid)
    return ids


def find_executable(name: str, install: str) -> Path:
    """Locate a command-line tool: next to ``sys.executable`` first (the venv), then on ``PATH``.

    Raises:
        MissingDependencyError: If neither has it; the message says ``install``.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    if found is None:
        raise MissingDependencyError(
            f"the `{name}` executable was not found next to the Python interpreter "
            f"({str(beside.parent)!r}) or on PATH; install it with {install}"
        )
    return Path(found)


def find_rustac() -> Path:
    """Locate the ``rustac`` executable (see :func:`find_executable`)."""
    return find_executable("rustac", "`pip install rustac`")


def collections_ready(url: str, expected: Sequence[str], timeout_s: float = 0.5) -> bool:
    """Whether ``GET {url}/collections`` answers 200 and lists every id in ``expected``.

    Any connection error, non-200 answer or unparsable body counts as "not ready yet".
    """
    # Loopback never goes through a proxy, whatever http_proxy says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/collections", timeout=timeout_s) as resp:
            if resp.status != 200:
                return False
            doc = json.loads(resp.read())
    except (OSError, ValueError):  # URLError, ConnectionError and timeouts are OSErrors
        return False
    listed = {c.get("id") for c in doc.get("collections", []) if isinstance(c, dict)}
    return set(expected) <= listed


def _tail(log: IO[bytes]) -> str:
    log.seek(0)
    text = log.read().decode("utf-8", errors="replace").strip()
    return text[-_STDERR_TAIL_CHARS:] or "(no output)"


class CatalogServer:
    """A ``rustac serve`` subprocess serving one world folder; use it as a context manager.

    Args:
        world_dir: The world folder (see :func:`world_stac_hrefs`).
        port: Loopback port to listen on; ``None`` picks a free one (and retries on a port race).
        startup_timeout_s: How long to wait for the API to list every collection.

    Example:
        >>> with CatalogServer(world) as server:  # doctest: +SKIP
        ...     client = pystac_client.Client.open(server.url)
    """

    def __init__(self, world_dir: Path, *, port: int | None = None, startup_timeout_s: float = 30.0) -> None:
        if startup_timeout_s <= 0:
            raise CatalogError(f"startup_timeout_s={startup_timeout_s!r} must be positive")
        self.world_dir = Path(world_dir)
        self._port_arg = port
        self._startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        """The root URL of the running API, ``http://127.0.0.1:PORT``."""
        if self._port is None:
            raise CatalogError("the catalog server is not started; call start() or use `with`")
        return f"http://{_HOST}:{self._port}"

    @property
    def pid(self) -> int | None:
        """Process id of the ``rustac`` server, or ``None`` when not running."""
        return None if self._proc is None else self._proc.pid

    def start(self) -> str:
        """Start the server and wait until it lists every collection; return its root URL.

        Raises:
            CatalogError: If the world folder is unusable, the server exits early (its output is in
                the message) or does not become ready within ``startup_timeout_s``.
            MissingDependencyError: If the ``rustac`` executable cannot be found.
        """
        if self._proc is not None:
            return self.url
        hrefs = world_stac_hrefs(self.world_dir)
        expected = world_collection_ids(hrefs)
        exe = find_rustac()
        ports_to_try = 1 if self._port_arg is not None else _PORT_RETRIES
        while True:
            port = self._port_arg if self._port_arg is not None else free_loopback_port()
            try:
                proc = self._launch(exe, port, hrefs)
                self._wait_ready(proc, expected)
                return self.url
            except CatalogError as e:
                self.stop()
                ports_to_try -= 1
                # free_loopback_port() races with other processes: retry a fresh port, only for that.
                if "Address already in use" not in str(e) or ports_to_try == 0:
                    raise
            except BaseException:  # Ctrl-C while waiting: __exit__ will not run, so stop here
                self.stop()
                raise

    def _launch(self, exe: Path, port: int, hrefs: Sequence[Path]) -> subprocess.Popen[bytes]:
        # Closed in stop(); a file, not a pipe, so a chatty server never blocks on a full pipe.
        self._log = tempfile.TemporaryFile(prefix="gppscale-rustac-")  # noqa: SIM115
        cmd = [str(exe), "serve", "--addr", f"{_HOST}:{port}", *map(str, hrefs)]
        # A new session keeps a terminal's Ctrl-C away from the server: only stop() ends it, so an
        # interrupted CLI does not mistake the server's own exit for a crash.
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._port = port
        return self._proc

    def _wait_ready(self, proc: subprocess.Popen[bytes], expected: Sequence[str]) -> None:
        deadline = time.monotonic() + self._startup_timeout_s
        delay = 0.02
        while True:
            if proc.poll() is not None:
                raise CatalogError(
                    f"`rustac serve` for {str(self.world_dir)!r} exited with status {proc.returncode} "
                    f"before it was ready (check the files under 'stac/'); its output:\n{self.output_tail()}"
                )
            if collections_ready(self.url, expected):
                return
            if time.monotonic() > deadline:
                raise CatalogError(
                    f"`rustac serve` at {self.url} did not list collections {list(expected)!r} within "
                    f"{self._startup_timeout_s} s; raise startup_timeout_s for a large world. Its output:\n"
                    f"{self.output_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def output_tail(self) -> str:
        """The last lines the server wrote (stdout and stderr), for error messages.

        Reading moves the log's shared file offset, but always to its end, where the server would
        write next anyway.
        """
        return "(not started)" if self._log is None else _tail(self._log)

    def wait(self) -> None:
        """Block until the server exits by itself (or a signal handler raises), then report it.

        Raises:
            CatalogError: When the server process ends; the message holds its output.
        """
        if self._proc is None:
            raise CatalogError("the catalog server is not started; call start() or use `with`")
        code = self._proc.wait()
        raise CatalogError(
            f"`rustac serve` at {self.url} exited with status {code}; its output:\n{self.output_tail()}"
        )

    def stop(self, timeout_s: float = _STOP_TIMEOUT_S) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after ``timeout_s``) and release its log file.

        Safe to call more than once and on a server that already exited.
        """
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@contextmanager
def serve_catalog(
    world_dir: Path, *, port: int | None = None, startup_timeout_s: float = 30
) -> Iterator[str]:
    """Serve a world folder's STAC collections at a local STAC API; yield its root URL.

    The server is stopped when the block exits, also when the block raises.

    Args:
        world_dir: A folder written by ``gppscale world``.
        port: Loopback port; ``None`` picks a free one.
        startup_timeout_s: How long to wait for the API to list every collection.

    Yields:
        The root URL, ``http://127.0.0.1:PORT``.

    Raises:
        CatalogError: If the folder is not a world, or the server cannot start.
        MissingDependencyError: If the ``rustac`` executable cannot be found.

    Example:
        >>> with serve_catalog(world) as url:  # doctest: +SKIP
        ...     items = list(pystac_client.Client.open(url).search(collections=["cop-dem-glo-30"]).items())
    """
    with CatalogServer(world_dir, port=port, startup_timeout_s=startup_timeout_s) as server:
        yield server.url
