"""Helpers shared by the tests."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_wrapper.config import Config, load_config

REPO = Path(__file__).resolve().parents[1]
TRANSCRIPTS = REPO / "tests" / "fixtures" / "transcripts"
PY = sys.executable


def make_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    overrides: dict[str, dict[str, Any]] = {
        "server": {"logs_dir": str(tmp_path / "logs")},
        "agents": {"stop_grace_seconds": 2.0},
    }
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return load_config(None, environ={}, overrides=overrides)


async def wait_for(predicate: Callable[[], bool], limit: float = 10.0) -> None:
    """Poll a condition on real time; tests of the daemon's own timers use autojump_clock."""
    with trio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110 - polling state that has no event
            await trio.sleep(0.01)


def need(program: str, package: str | None = None) -> str:
    """The path of ``program``, or the test skips, printing why (``package``: the Debian
    package that brings it)."""
    path = shutil.which(program)
    if path is None:
        reason = f"{program} not installed" + (f" (Debian package {package!r})" if package else "")
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return path
