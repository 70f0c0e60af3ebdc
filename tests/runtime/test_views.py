"""What is shown of a run, for a past run read back from its meta file (no process)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from trio_wrapper.core.models import MetaExtraction, RunMeta
from trio_wrapper.core.status import Status
from trio_wrapper.history.runfiles import RunFiles
from trio_wrapper.runtime import views
from trio_wrapper.runtime.agent import Agent

STAMP = "2026-02-10-05-44-30"


def past_run(tmp_path: Path, meta: RunMeta) -> Agent:
    return Agent.from_history(RunFiles(tmp_path / "agents" / "w", STAMP), meta)


def test_a_meta_file_read_back_shows_as_it_was_written(tmp_path: Path) -> None:
    meta = RunMeta(
        name="w",
        status="completed",
        command=["codex", "exec"],
        format="auto",
        pid=42,
        started_at="2026-02-10T05:44:30.000+00:00",
        completed_at="2026-02-10T05:45:00.500+00:00",
        duration_seconds=30.5,
        exit_code=0,
        bytes={"stdout": 100, "stderr": 5},
        lines={"stdout": 10, "stderr": 1},
        total_lines=11,
        extraction=MetaExtraction(
            format="text", total_matches=3, matches_by_type={"error": 1, "metric": 2}
        ),
    )
    agent = past_run(tmp_path, meta)
    assert agent.status is Status.COMPLETED and not agent.is_live
    assert agent.duration_seconds == 30.5
    summary = msgspec.to_builtins(views.summary(agent))
    assert summary == {
        "name": "w",
        "status": "completed",
        "pid": 42,
        "format": "auto",
        "started_at": "2026-02-10T05:44:30.000+00:00",
        "completed_at": "2026-02-10T05:45:00.500+00:00",
        "uptime": "30s",
        "duration_seconds": 30.5,
        "exit_code": 0,
    }
    detail = msgspec.to_builtins(views.detail(agent))
    assert list(detail)[: len(summary)] == list(summary)
    assert detail["streams"] == {
        "stdout": {"bytes": 100, "lines": 10, "lost_bytes": 0, "unprocessed_bytes": 0},
        "stderr": {"bytes": 5, "lines": 1, "lost_bytes": 0, "unprocessed_bytes": 0},
    }
    assert detail["bytes_processed"] == 105 and detail["stdin_open"] is False
    assert detail["extraction"]["matches_by_type"] == {"error": 1, "metric": 2}
    assert "matches" not in detail
    assert "matches" in msgspec.to_builtins(views.detail(agent, 5))
    rewritten = views.run_meta(agent)
    assert (rewritten.status, rewritten.total_lines, rewritten.bytes) == (
        "completed",
        11,
        {"stdout": 100, "stderr": 5},
    )
    assert set(rewritten.logs) == {"stdout", "stderr", "events"}


def test_an_old_or_odd_meta_file_still_reads(tmp_path: Path) -> None:
    agent = past_run(tmp_path, RunMeta(status="exploded", format="yaml", started_at="not a time"))
    assert agent.name == "w"  # the directory's name
    assert agent.status is Status.INTERRUPTED  # an unknown status
    assert agent.extraction.format == "none"  # a format this version lacks
    assert agent.duration_seconds == 0.0
    assert agent.completed_at is None and agent.exit_code is None


def test_a_mapping_is_read_like_the_file(tmp_path: Path) -> None:
    meta = {"name": "m", "status": "failed", "exit_code": 3, "bytes": {"stdout": 7}}
    agent = Agent.from_history(RunFiles(tmp_path, STAMP), meta)
    assert (agent.name, agent.status, agent.exit_code) == ("m", Status.FAILED, 3)
    assert agent.stats["stdout"].bytes == 7 and agent.stats["stderr"].bytes == 0
    encoded = json.loads(msgspec.json.encode(views.run_meta(agent)))
    assert encoded["exit_code"] == 3 and "deleted_at" not in encoded


def test_a_past_interactive_run_keeps_how_to_talk_to_it(tmp_path: Path) -> None:
    meta = RunMeta(
        name="w",
        status="stopped",
        command=["cli"],
        stdin=True,
        pty=True,
        pty_size=[30, 100],
        waiting_pattern="^>$",
        enter="\n",
    )
    agent = past_run(tmp_path, meta)
    spec = agent.spec
    assert (spec.pty_size, spec.waiting_pattern, spec.enter) == ((30, 100), "^>$", "\n")
    shown = views.detail(agent)
    assert shown.pty_size == [30, 100]
    assert shown.messages is None  # a past run takes no message (a restart does)
    assert shown.waiting_since is None
    again = views.run_meta(agent)
    assert (again.pty_size, again.waiting_pattern, again.enter) == ([30, 100], "^>$", "\n")
    # A meta file written while the run waited (its daemon died) says since when.
    waited = past_run(
        tmp_path, RunMeta(name="w", status="waiting", waiting_since="2026-02-10T05:44:31.000+00:00")
    )
    assert views.detail(waited).waiting_since == "2026-02-10T05:44:31.000+00:00"
