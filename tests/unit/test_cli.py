"""The command line: help, version, error reporting and the demo's small pure helpers."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gppscale import __version__, cli
from gppscale.errors import WorldError


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("world", "catalog", "search", "cube", "demo"):
        assert command in out


@pytest.mark.parametrize(
    "argv",
    [
        ["world", "--help"],
        ["catalog", "serve", "--help"],
        ["search", "--help"],
        ["cube", "--help"],
        ["demo", "--help"],
    ],
)
def test_subcommand_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 0
    assert "usage: gppscale" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"gppscale {__version__}"


@pytest.mark.parametrize("argv", [[], ["world"], ["world", "--out", "x", "--preset", "huge"], ["catalog"]])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    assert "usage: gppscale" in capsys.readouterr().err


def test_gppscale_error_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(args: argparse.Namespace) -> int:
        raise WorldError(f"preset {args.preset!r} is not known")

    monkeypatch.setattr(cli, "_cmd_world", fail)
    assert cli.main(["world", "--preset", "basin", "--out", "x"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: preset 'basin' is not known\n"
    assert "Traceback" not in captured.err


def test_missing_world_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert cli.main(["catalog", "serve", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: world folder ")
    assert str(missing) in err and "gppscale world --out DIR" in err


def test_world_dir_without_stac(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["catalog", "serve", str(tmp_path)]) == 2
    assert "no 'stac/' subfolder" in capsys.readouterr().err


def test_demo_missing_spec_fails_before_making_a_world(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "absent.yaml"
    assert cli.main(["demo", "--preset", "small", "--out", str(tmp_path / "out"), "--spec", str(spec)]) == 2
    assert f"run spec {str(spec)!r} not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_demo_default_spec_is_under_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["demo", "--preset", "small", "--out", str(tmp_path / "out")]) == 2
    assert str(tmp_path / "pipeline" / "small.yaml") in capsys.readouterr().err


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"preset": "small", "seed": 3}, True),
        ({"preset": "small", "seed": 4}, False),
        ({"preset": "demo", "seed": 3}, False),
        (None, False),
    ],
)
def test_world_matches(tmp_path: Path, meta: dict[str, object] | None, expected: bool) -> None:
    if meta is not None:
        (tmp_path / "world.json").write_text(json.dumps(meta))
    assert cli.world_matches(tmp_path, "small", 3) is expected


def test_world_matches_ignores_a_broken_file(tmp_path: Path) -> None:
    (tmp_path / "world.json").write_text("{")
    assert not cli.world_matches(tmp_path, "small", 0)


class FakeMakeWorld:
    """Stands in for gppscale.world.make_world: records calls, reports progress, writes world.json."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Path, int]] = []

    def __call__(
        self, preset: str, out_dir: Path, *, seed: int = 0, progress: Callable[[str], None] | None = None
    ) -> Path:
        self.calls.append((preset, out_dir, seed))
        if progress is not None:
            progress("step one")
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "world.json").write_text(json.dumps({"preset": preset, "seed": seed}))
        return out_dir


@pytest.fixture
def fake_make_world(monkeypatch: pytest.MonkeyPatch) -> FakeMakeWorld:
    fake = FakeMakeWorld()
    monkeypatch.setattr("gppscale.world.make_world", fake)
    return fake


def test_world_command_prints_progress_and_elapsed_time(
    fake_make_world: FakeMakeWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["world", "--preset", "demo", "--out", str(tmp_path / "w"), "--seed", "7"]) == 0
    assert fake_make_world.calls == [("demo", tmp_path / "w", 7)]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[") and lines[0].endswith("s] step one")
    assert lines[1].startswith(f"world 'demo' (seed 7) written to {tmp_path / 'w'} in ")


@pytest.mark.parametrize(
    ("existing", "remade"),
    [(None, True), ({"preset": "small", "seed": 1}, True), ({"preset": "small", "seed": 0}, False)],
)
def test_ensure_world_remakes_only_another_world(
    fake_make_world: FakeMakeWorld, tmp_path: Path, existing: dict[str, object] | None, remade: bool
) -> None:
    if existing is not None:
        (tmp_path / "world.json").write_text(json.dumps(existing))
    cli._ensure_world(tmp_path, "small", 0)
    assert fake_make_world.calls == ([("small", tmp_path, 0)] if remade else [])
