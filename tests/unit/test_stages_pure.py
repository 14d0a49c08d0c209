"""`gppscale.stages` holds pure computations: no I/O library and no synthetic world inside."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

STAGES = Path(__file__).resolve().parents[2] / "src" / "gppscale" / "stages"
FORBIDDEN = ("fsspec", "s3fs", "pystac_client", "zarr", "odc.stac", "boto3", "gppscale.world", "gppscale.io")


def _imports(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved against gppscale.stages)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = ["gppscale", "stages"][: max(0, 2 - (node.level - 1))]
                base = ".".join([*package, base] if base else package)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _forbidden(names: set[str]) -> list[str]:
    return sorted(n for n in names if any(n == f or n.startswith(f + ".") for f in FORBIDDEN))


MODULES = sorted(STAGES.glob("*.py"))


def test_stage_modules_exist() -> None:
    expected = {"quarters", "qa", "composite", "indices", "terrain", "meteo", "forest"}
    assert {p.stem for p in MODULES} >= expected


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_stage_module_imports_no_io(path: Path) -> None:
    bad = _forbidden(_imports(path))
    assert not bad, f"{path.name} imports {bad}; keep I/O in gppscale.io and the world out of stages"


def test_checker_catches_forbidden_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import zarr\nfrom odc.stac import load\nimport s3fs.core\nfrom ..world import climate\n"
        "from gppscale.io.cube import x\nimport odc.geo\nimport numpy\n",
        encoding="utf-8",
    )
    assert _forbidden(_imports(sample)) == [
        "gppscale.io.cube",
        "gppscale.io.cube.x",
        "gppscale.world",
        "gppscale.world.climate",
        "odc.stac",
        "odc.stac.load",
        "s3fs.core",
        "zarr",
    ]
