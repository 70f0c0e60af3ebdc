"""The repository stands alone: nothing in it reads or links a path outside the clone.

A stranger clones only this repository. CI runs with the team's folder beside the clone,
so a test or bench that reaches outside would pass there and fail for everybody else;
these checks fail instead, wherever they run.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO

# Paths that leave the clone: a parent directory's sibling, or this machine's absolute layout.
# The team folder beside a clone, and this machine's root: spelled in pieces so that this
# file, which must name them to find them, is not itself a reference to them.
_TEAM = "sha" + "red"
_ROOT = "/" + "work" + "/"
_OUTSIDE = re.compile(
    rf"\.\./(?:\.\./)*{_TEAM}\b"  # the team folder, one or more levels up
    rf"|{_ROOT}"  # this machine's absolute layout
    rf"|\b{_TEAM}/(?:spec|seed|transcripts|design|hooks)\b"
    rf"|\.parents?\b[^\n]*/\s*[\"']{_TEAM}[\"']"  # REPO.parent / <team folder>
)
_TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".ini", ".sh", ".conf", ".json", ".yml"}
# The real transcripts are verbatim third-party output: what they say is not ours to check.
_VERBATIM = REPO / "tests" / "fixtures" / "transcripts"


_NOT_OURS = {
    ".git",
    ".venv",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "logs",
    "out",
    "node_modules",
}


def _tracked_files() -> list[Path]:
    """The repository's files: git's list in a clone, a walk of the tree in an export."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode == 0:
        files = [REPO / name for name in listed.stdout.split()]
    else:
        files = [
            f
            for f in REPO.rglob("*")
            if not _NOT_OURS.intersection(f.relative_to(REPO).parts)
            and not f.name.endswith(".egg-info")
            and not any(part.endswith(".egg-info") for part in f.relative_to(REPO).parts)
        ]
    return [f for f in files if f.is_file() and _VERBATIM not in f.parents]


def _text_files() -> list[Path]:
    return [
        f
        for f in _tracked_files()
        if f.suffix in _TEXT_SUFFIXES or f.name in {"Makefile", "run", "before-stop"}
    ]


def test_no_file_names_a_path_outside_the_repository() -> None:
    offenders = []
    for path in _text_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if _OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []


def _climbs(node: ast.expr) -> int | None:
    """How many directories above ``__file__``'s folder an expression climbs, if it is a
    chain of ``.parent`` / ``.parents[N]`` on ``Path(__file__)`` (resolved or not)."""
    steps = 0
    while True:
        if isinstance(node, ast.Attribute) and node.attr == "parent":
            steps += 1
            node = node.value
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "parents"
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, int)
        ):
            steps += node.slice.value + 1
            node = node.value.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr not in {"resolve", "absolute"}:
                return None
            node = node.func.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id != "Path" or len(node.args) != 1:
                return None
            node = node.args[0]
        elif isinstance(node, ast.Name) and node.id == "__file__":
            # Path(__file__).parent is the file's own folder: no climb yet.
            return steps - 1
        else:
            return None


def test_no_module_builds_a_path_above_the_repository() -> None:
    offenders = []
    for path in _tracked_files():
        if path.suffix != ".py":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.expr):
                continue
            climb = _climbs(node)
            if climb is None or climb < 0:
                continue
            target = path.parent
            for _ in range(climb):
                target = target.parent
            if target != REPO and REPO not in target.parents:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} climbs to {target}")
    assert offenders == []


@pytest.mark.parametrize(
    ("source", "climb"),
    [
        ("Path(__file__).parent", 0),
        ("Path(__file__).resolve().parents[1]", 1),
        ("Path(__file__).resolve().parents[2] / 'x'", None),
        ("Path(__file__).parent.parent.parent", 2),
        ("Path('x').parent", None),
    ],
)
def test_the_climb_check_reads_path_chains(source: str, climb: int | None) -> None:
    """The check above would miss nothing it claims to see: a chain it cannot read is None."""
    expr = ast.parse(source, mode="eval").body
    assert _climbs(expr) == climb


def test_the_outside_pattern_catches_what_it_must() -> None:
    assert _OUTSIDE.search(f"see ../{_TEAM}/spec/API.md")
    assert _OUTSIDE.search(f'REPO.parent / "{_TEAM}" / "transcripts"')
    assert _OUTSIDE.search(f"{_ROOT}{_TEAM}/transcripts/codex")
    assert _OUTSIDE.search(f"{_TEAM} memory between two processes") is None
