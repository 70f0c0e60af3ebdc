"""Snapshots made by hand for the pure formatter tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from trio_wrapper.core.status import Status
from trio_wrapper.metrics.snapshot import AgentFigures, MetricsSnapshot, SseFigures

T0 = datetime(2026, 2, 10, 5, 44, 30, tzinfo=timezone(timedelta(hours=-8)))


def agent_figures(name: str = "codex-1", **changes: Any) -> AgentFigures:
    base = AgentFigures(
        name=name,
        status=Status.RUNNING.value,
        started_at=T0,
        completed_at=None,
        log_lines=49,
        extractions=14,
        code_blocks=2,
        errors=0,
        stdout_bytes=52000,
        stderr_bytes=311,
        exit_code=None,
        duration_seconds=630.5,
    )
    return base._replace(**changes)


def snapshot(**changes: Any) -> MetricsSnapshot:
    by_status = dict.fromkeys((s.value for s in Status), 0)
    by_status.update(running=1, completed=1)
    values: dict[str, Any] = {
        "version": "9.9.9",
        "timestamp_ns": 1_770_731_070_123_456_789,
        "uptime_seconds": 54098.21,
        "agents_by_status": by_status,
        "agents_started_total": 3,
        "failed_starts_total": 1,
        "events_total": 145,
        "log_lines_total": 98,
        "state_changes_total": 0,
        "extractions_by_type": {"session": 16, "code_block": 8, "prompt": 2, "response": 21},
        "events_per_second": 0.00268,
        "agents": [
            agent_figures(),
            agent_figures(
                "codex-2",
                status=Status.COMPLETED.value,
                completed_at=T0 + timedelta(minutes=5),
                exit_code=0,
                duration_seconds=300.0,
            ),
        ],
        "sse": SseFigures({"codex-1": 2}, dropped_events_total=7, slow_disconnects_total=1),
    }
    values.update(changes)
    return MetricsSnapshot(**values)
