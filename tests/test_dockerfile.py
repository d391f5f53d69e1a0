"""The worker image's Dockerfile: its build context holds what it copies, the project builds
from that context alone, and ``docker build`` succeeds where a Docker daemon answers."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO_ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves ``path`` out of the context (last matching line wins)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        pattern = pattern[3:] if pattern.startswith("**/") else pattern
        if any(
            fnmatch.fnmatchcase(p, pattern) or fnmatch.fnmatchcase(p.split("/")[-1], pattern)
            for p in prefixes
        ):
            result = not negate
    return result


def context_files() -> list[str]:
    """The repository's tracked files that reach the build context."""
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [path for path in tracked if not ignored(path, patterns)]


def copied_sources() -> list[str]:
    sources = []
    for instruction, args in instructions():
        if instruction == "COPY":
            sources += [s.rstrip("/") for s in args.split()[:-1] if not s.startswith("--")]
    return sources


def test_dockerfile_installs_the_project_as_the_readme_does():
    steps = instructions()
    froms = [args for instruction, args in steps if instruction == "FROM"]
    assert len(froms) == 1 and ":" in froms[0] and not froms[0].endswith(":latest")
    run = " ".join(args for instruction, args in steps if instruction == "RUN")
    assert "python3 -m venv /opt/venv" in run
    extras = re.search(r"pip install '\.\[([a-z0-9,]+)\]'", run)
    assert extras, run
    known = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert set(extras.group(1).split(",")) <= set(known["optional-dependencies"])
    assert any(instruction == "USER" for instruction, _ in steps)


def test_context_holds_what_the_dockerfile_copies_and_builds(tmp_path):
    files = context_files()
    for source in copied_sources():
        assert any(f == source or f.startswith(source + "/") for f in files), source
    assert not any(f.startswith(("tests/", "benchmarks/", ".git")) for f in files)
    # The project builds from the copied files alone (README.md is its readme).
    context = tmp_path / "context"
    for path in files:
        (context / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / path, context / path)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), context],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("plankton_jobs-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "jobs/cli.py" in names and "plankton_store/cluster/_jobqueue.py" in names


def test_docker_build(tmp_path):
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed; the context and build checks above still ran")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        pytest.skip("no Docker daemon answers `docker info`; the context checks above still ran")
    subprocess.run(
        [docker, "build", "-q", "-t", "plankton-jobs:test", str(REPO_ROOT)],
        check=True,
        timeout=1800,
    )
    out = subprocess.run(
        [docker, "run", "--rm", "plankton-jobs:test", "plankton-jobs", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert "build-store" in out.stdout
