"""`rustac serve` over a tiny world: collections, search filters, paging, shutdown, errors, retries."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import xarray as xr
from pystac_client import Client
from pystac_client.exceptions import APIError

from gppscale import cli
from gppscale.config import CollectionsSpec
from gppscale.errors import CatalogError, MissingDependencyError
from gppscale.io import catalog
from gppscale.io.catalog import CatalogServer, serve_catalog, world_stac_hrefs
from gppscale.io.search import summarize_search, years_to_datetime
from gppscale.testing.stac import TINY_BBOX, TINY_COLLECTIONS, TINY_DEM_TILES

pytestmark = pytest.mark.integration

LANDSAT = TINY_COLLECTIONS["landsat"]
DEM = TINY_COLLECTIONS["dem"]
WEST_OF_MIDDLE = (116.7, 41.8, 116.9, 41.9)  # inside the even Landsat items and DEM tile N41E116 only
YEAR = years_to_datetime([2020])


def _count(url: str, **search: object) -> int:
    return sum(1 for _ in Client.open(url).search(max_items=None, **search).items_as_dicts())


def _port_closed(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) != 0


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_world_hrefs_list_collections_before_items(tiny_world: Path) -> None:
    names = [(p.parent.name, p.name) for p in world_stac_hrefs(tiny_world)]
    assert names == [
        (DEM, "collection.json"),
        (LANDSAT, "collection.json"),
        (DEM, "items.ndjson"),
        (LANDSAT, "items.ndjson"),
    ]


def test_items_join_the_collections_given_as_separate_files(tiny_stac_url: str) -> None:
    client = Client.open(tiny_stac_url)
    assert sorted(c.id for c in client.get_collections()) == sorted(TINY_COLLECTIONS.values())
    assert len(list(client.get_collection(LANDSAT).get_items())) == 5
    assert client.get_collection(DEM).description.startswith("Tiny Copernicus DEM")  # ours, not generated


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ({"collections": [LANDSAT]}, 5),
        ({"collections": [DEM]}, TINY_DEM_TILES),
        ({"collections": [LANDSAT], "bbox": list(WEST_OF_MIDDLE)}, 3),  # items 0, 2, 4
        ({"collections": [DEM], "bbox": list(WEST_OF_MIDDLE)}, 1),
        ({"collections": [LANDSAT], "datetime": "2020-01-01/2020-03-31"}, 3),  # January to March
        ({"collections": [LANDSAT], "datetime": "2019"}, 0),
        ({"collections": [DEM], "datetime": YEAR}, 0),  # static: dated 2021, search it without datetime
    ],
)
def test_search_filters(tiny_stac_url: str, search: dict[str, object], expected: int) -> None:
    assert _count(tiny_stac_url, **search) == expected


def test_paging_follows_next_links(tiny_stac_url: str) -> None:
    search = Client.open(tiny_stac_url).search(collections=[LANDSAT], limit=2, max_items=None)
    pages = [len(page["features"]) for page in search.pages_as_dicts()]
    assert pages == [2, 2, 1]


def test_summarize_search_counts_roles_and_searches_static_roles_without_datetime(tiny_stac_url: str) -> None:
    summaries = summarize_search(tiny_stac_url, TINY_COLLECTIONS, TINY_BBOX, YEAR, frozenset({"dem"}))
    assert [(s.role, s.collection, s.items, s.static) for s in summaries] == [
        ("landsat", LANDSAT, 5, False),
        ("dem", DEM, TINY_DEM_TILES, True),
    ]
    landsat = summaries[0]
    assert landsat.start is not None and landsat.end is not None
    assert (landsat.start.month, landsat.end.month) == (1, 5)


def test_summarize_search_names_the_empty_collection(tiny_stac_url: str) -> None:
    with pytest.raises(CatalogError, match=r"'cop-dem-glo-30' \(role 'dem'\).*no items.*bbox=.*datetime="):
        summarize_search(tiny_stac_url, TINY_COLLECTIONS, TINY_BBOX, YEAR, frozenset())


def test_summarize_search_allows_empty_optional_roles(tiny_stac_url: str) -> None:
    roles = {"landsat": LANDSAT, "reference_gpp": "reference-gpp"}
    summaries = summarize_search(
        tiny_stac_url, roles, TINY_BBOX, YEAR, frozenset(), optional_roles=frozenset({"reference_gpp"})
    )
    assert [s.items for s in summaries] == [5, 0]


def test_server_is_gone_after_the_block(tiny_world: Path, rustac_exe: Path) -> None:
    with CatalogServer(tiny_world) as server:
        pid, url = server.pid, server.url
        assert pid is not None and not _gone(pid)
    assert _gone(pid) and _port_closed(url)


def test_server_is_gone_when_the_block_raises(tiny_world: Path, rustac_exe: Path) -> None:
    urls = []
    with pytest.raises(RuntimeError, match="boom"), serve_catalog(tiny_world) as url:
        urls.append(url)
        raise RuntimeError("boom")
    assert _port_closed(urls[0])


def test_given_port_is_used(tiny_world: Path, rustac_exe: Path) -> None:
    port = catalog.free_loopback_port()
    with serve_catalog(tiny_world, port=port) as url:
        assert url == f"http://127.0.0.1:{port}"


def test_busy_port_reports_the_servers_message(tiny_world: Path, rustac_exe: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with (
            pytest.raises(CatalogError, match="Address already in use"),
            serve_catalog(tiny_world, port=port),
        ):
            pass


@pytest.fixture
def world_copy(tiny_world: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_world / "stac", tmp_path / "world" / "stac")).parent


def test_folder_without_stac_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"no 'stac/' subfolder.*gppscale world --out DIR"):
        world_stac_hrefs(tmp_path)


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist"), serve_catalog(tmp_path / "nope"):
        pass


def test_malformed_collection_is_named(world_copy: Path) -> None:
    (world_copy / "stac" / DEM / "collection.json").write_text("{not json")
    match = r"cannot read STAC collection .*cop-dem-glo-30/collection.json"
    with pytest.raises(CatalogError, match=match), serve_catalog(world_copy):
        pass


def test_malformed_items_stop_the_server_with_its_output(world_copy: Path, rustac_exe: Path) -> None:
    (world_copy / "stac" / DEM / "items.ndjson").write_text("garbage\n")
    match = r"exited with status 1 before it was ready(.|\n)*ERROR"
    with pytest.raises(CatalogError, match=match), serve_catalog(world_copy):
        pass


def test_missing_rustac_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingDependencyError, match="pip install rustac"):
        catalog.find_rustac()


@pytest.fixture
def flaky_proxy(tiny_stac_url: str) -> Iterator[str]:
    """A proxy in front of the API that answers every odd-numbered search with 503."""
    searches = [0]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _reply(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _forward(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else None
            if self.path.startswith("/search"):
                searches[0] += 1
                if searches[0] % 2:
                    return self._reply(503)
            req = urllib.request.Request(tiny_stac_url + self.path, data=body, method=method)
            req.add_header("content-type", "application/json")
            with urllib.request.urlopen(req) as resp:
                data = resp.read()
            proxy = f"http://127.0.0.1:{self.server.server_port}"
            return self._reply(200, data.replace(tiny_stac_url.encode(), proxy.encode()))

        def do_GET(self) -> None:
            self._forward("GET")

        def do_POST(self) -> None:
            self._forward("POST")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_search_retries_503(flaky_proxy: str) -> None:
    with pytest.raises(APIError):  # pystac-client's default retries skip 503: the trap in DESIGN.md
        _count(flaky_proxy, collections=[LANDSAT], limit=2)
    summaries = summarize_search(flaky_proxy, {"landsat": LANDSAT}, TINY_BBOX, YEAR, frozenset())
    assert summaries[0].items == 5


def test_cli_serve_stops_on_sigterm(tiny_world: Path, rustac_exe: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gppscale.cli", "catalog", "serve", str(tiny_world)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("STAC API at http://127.0.0.1:"), (
            line + proc.stderr.read() if proc.stderr else ""
        )
        url = line.split()[3]
        assert _count(url, collections=[DEM]) == TINY_DEM_TILES
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert _port_closed(url)


@pytest.mark.slow
def test_demo_searches_every_role_and_builds_the_cube(
    small_world: Path, rustac_exe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = Path(__file__).resolve().parents[2] / "pipeline" / "small.yaml"
    roles = CollectionsSpec().ids()
    (tmp_path / "world").symlink_to(small_world, target_is_directory=True)
    assert cli.main(["demo", "--preset", "small", "--out", str(tmp_path), "--spec", str(spec)]) == 0
    out, err = capsys.readouterr()
    assert "reusing world 'small' (seed 0)" in out
    assert "warning: purity of " in err  # data warnings are shown as lines, never raised
    rows = [line.split("] search: ", 1)[1].split() for line in out.splitlines() if "] search: " in line]
    searched = {row[0]: int(row[2]) for row in rows if len(row) > 2 and row[2].isdigit()}
    assert sorted(searched) == sorted(roles)
    assert all(n > 0 for n in searched.values())
    assert "cube: 1/1 regions written (100 %)" in out
    cube = xr.open_zarr(tmp_path / "run" / "cube.zarr", consolidated=False)
    assert int(cube.n_clear.max()) > 0
    # a second demo reuses the world, the frozen search and every written region
    assert cli.main(["demo", "--preset", "small", "--out", str(tmp_path), "--spec", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "reusing the frozen search" in out and "0 regions written, 1 already done" in out
