"""Helpers shared by the tests."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
