"""The run index across daemon restarts: kept, reused without reading the runs again,
rebuilt from the run files when its file is deleted."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from tests.daemon import Daemon, poll
from tests.e2e.test_daemon import GRACE, stop, wait_status
from tests.helpers import TRANSCRIPTS

CLAUDE = TRANSCRIPTS / "claude" / "gleam_golden_basic_query_2.1.7.jsonl"
# The result line of that transcript.
TOKENS = {
    "input": 10,
    "output": 25,
    "cache_read": 0,
    "cache_write": 21570,
    "reasoning": 0,
    "other": 0,
}


def indexed_runs(http: httpx.Client, count: int) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        runs: list[dict[str, Any]] = http.get("/api/runs").json()["runs"]
        ended = [r for r in runs if r["status"] == "completed"]
        return runs if len(ended) >= count else None

    return poll(enough, 20, f"the index never held {count} ended runs")


def sync_line(daemon: Daemon) -> re.Match[str]:
    return poll(
        lambda: re.search(r"run index (rebuilt|synced): (\d+) runs read, (\d+) events", daemon.log),
        20,
        lambda: f"no sync line in the daemon log:\n{daemon.log}",
    )


def test_index_survives_restarts_and_is_rebuilt(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, env=GRACE)
    daemon.start()
    try:
        with daemon.client() as http:
            body = {"name": "c1", "command": ["cat", str(CLAUDE)], "format": "claude-stream-json"}
            assert http.post("/api/agents", json=body).status_code == 201
            wait_status(http, "c1", {"completed"})
            (run,) = indexed_runs(http, 1)
            assert run["tokens"] == TOKENS
            first_id = run["id"]
    finally:
        stop(daemon)

    # Restarted: the index is reused; the run's files are not read again for usage.
    daemon = Daemon(tmp_path, env=GRACE)
    daemon.start()
    try:
        assert sync_line(daemon).group(1, 3) == ("synced", "0")
        with daemon.client() as http:
            (run,) = indexed_runs(http, 1)
            assert (run["id"], run["tokens"]) == (first_id, TOKENS)
    finally:
        stop(daemon)

    # The index file deleted: rebuilt from the run files at start, same answer.
    for path in (tmp_path / "logs").glob("index.sqlite3*"):
        path.unlink()
    daemon = Daemon(tmp_path, env=GRACE)
    daemon.start()
    try:
        assert sync_line(daemon).group(1, 2, 3) == ("rebuilt", "1", "1")
        with daemon.client() as http:
            (run,) = indexed_runs(http, 1)
            assert (run["id"], run["tokens"]) == (first_id, TOKENS)
            usage = http.get("/api/usage", params={"group_by": "model"}).json()
            assert usage["total"]["tokens"] == TOKENS
    finally:
        stop(daemon)
