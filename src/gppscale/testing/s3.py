"""A real local S3 server for tests: the ``moto_server`` executable from ``moto[server]``.

:func:`moto_server` starts it on a free loopback port and yields its endpoint; :func:`s3_env` gives the
environment variables that point botocore/s3fs and GDAL at it (with dummy credentials), and
:func:`make_bucket` creates a bucket there.

Example:
    >>> with moto_server() as endpoint:  # doctest: +SKIP
    ...     make_bucket(endpoint, "run")
    ...     os.environ.update(s3_env(endpoint))
    ...     RunStore("s3://run/demo").write_json("a.json", {})
"""

from __future__ import annotations

import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from gppscale.errors import StoreError
from gppscale.io.catalog import find_executable, free_loopback_port

__all__ = ["find_moto_server", "make_bucket", "moto_server", "s3_env"]

_STARTUP_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 5.0
_PORT_RETRIES = 3
_TAIL_CHARS = 2_000
# Dummy credentials: moto accepts any; botocore only needs some to sign requests.
_ACCESS_KEY = "testing-access-key"
_SECRET_KEY = "testing-secret-key"


def find_moto_server() -> Path:
    """Locate the ``moto_server`` executable: next to the running Python first, then on ``PATH``.

    Raises:
        MissingDependencyError: If it is not installed.
    """
    return find_executable("moto_server", "`pip install 'gppscale[dev]'` (moto[server])")


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/", timeout=0.5) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _tail(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-_TAIL_CHARS:]


def _wait_ready(proc: subprocess.Popen[bytes], endpoint: str, log: IO[bytes]) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    delay = 0.02
    while not _answers(endpoint):
        if proc.poll() is not None:
            raise StoreError(
                f"`moto_server` for {endpoint} exited with status {proc.returncode}; "
                f"its output:\n{_tail(log)}"
            )
        if time.monotonic() > deadline:
            raise StoreError(f"`moto_server` at {endpoint} did not answer within {_STARTUP_TIMEOUT_S} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start(exe: Path, host: str, log: IO[bytes]) -> tuple[subprocess.Popen[bytes], str]:
    for attempt in range(_PORT_RETRIES):
        port = free_loopback_port()
        endpoint = f"http://{host}:{port}"
        proc = subprocess.Popen(
            [str(exe), "-H", host, "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_ready(proc, endpoint, log)
            return proc, endpoint
        except StoreError:
            _stop(proc)
            # free_loopback_port() races with other processes: retry a fresh port, only for that.
            if "Address already in use" not in _tail(log) or attempt == _PORT_RETRIES - 1:
                raise
        except BaseException:
            _stop(proc)
            raise
    raise AssertionError("unreachable")  # pragma: no cover


@contextmanager
def moto_server(host: str = "127.0.0.1") -> Iterator[str]:
    """Run ``moto_server`` on a free port of ``host`` and yield its endpoint, ``http://HOST:PORT``.

    The server keeps everything in memory and is terminated when the block exits.

    Raises:
        MissingDependencyError: If ``moto_server`` is not installed.
        StoreError: If it exits early or does not answer within 30 s.

    Example:
        >>> with moto_server() as endpoint:  # doctest: +SKIP
        ...     print(endpoint)
        http://127.0.0.1:...
    """
    exe = find_moto_server()
    with tempfile.TemporaryFile(prefix="gppscale-moto-") as log:
        proc, endpoint = _start(exe, host, log)
        try:
            yield endpoint
        finally:
            _stop(proc)


def s3_env(endpoint: str) -> dict[str, str]:
    """Environment variables that point botocore/s3fs and GDAL at ``endpoint`` with dummy credentials.

    Example:
        >>> env = s3_env("http://127.0.0.1:5123")
        >>> env["AWS_ENDPOINT_URL"], env["AWS_S3_ENDPOINT"], env["AWS_HTTPS"]
        ('http://127.0.0.1:5123', '127.0.0.1:5123', 'NO')
    """
    parts = urlsplit(endpoint)
    return {
        "AWS_ACCESS_KEY_ID": _ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": _SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        # GDAL's /vsis3/ wants host:port without scheme, plain HTTP and path-style addressing.
        "AWS_S3_ENDPOINT": parts.netloc,
        "AWS_HTTPS": "YES" if parts.scheme == "https" else "NO",
        "AWS_VIRTUAL_HOSTING": "FALSE",
    }


def make_bucket(endpoint: str, name: str) -> None:
    """Create bucket ``name`` on the moto server at ``endpoint`` (moto accepts unsigned requests).

    Raises:
        StoreError: If the server refuses (an invalid name, say).
    """
    request = urllib.request.Request(f"{endpoint}/{name}", method="PUT")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            resp.read()
    except urllib.error.HTTPError as e:
        body = e.read().decode(errors="replace")[:_TAIL_CHARS]
        raise StoreError(f"creating bucket {name!r} at {endpoint} failed: HTTP {e.code}: {body}") from e
