"""What is shown of an agent, built in one place, as the typed shapes of ``core.models``:
the list entry, the detail, and the meta file. Read-only; called per request (or per
status change for the meta file), never per line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trio_wrapper.core.models import (
    AgentDetail,
    AgentSummary,
    Deleted,
    Extraction,
    MetaExtraction,
    RunMeta,
    RunSummary,
    Stopped,
    StreamFigures,
)
from trio_wrapper.core.timefmt import go_duration, rfc3339

if TYPE_CHECKING:  # the agent writes its meta file through this module
    from trio_wrapper.runtime.agent import Agent

STREAMS = ("stdout", "stderr")


def summary(agent: Agent) -> AgentSummary:
    """One entry of ``GET /api/agents``."""
    duration = agent.duration_seconds
    return AgentSummary(
        name=agent.name,
        status=agent.status,
        pid=agent.pid,
        format=agent.spec.format,
        started_at=rfc3339(agent.started_at),
        completed_at=rfc3339(agent.completed_at),
        uptime=go_duration(duration),
        duration_seconds=round(duration, 3),
        exit_code=agent.exit_code,
    )


def detail(agent: Agent, matches_limit: int | None = None) -> AgentDetail:
    """``GET /api/agents/<name>`` (and the 201 of a create). ``format`` is what ``auto``
    detection decided, once it has; ``matches_limit`` adds the newest records of each kind."""
    duration = agent.duration_seconds
    spec = agent.spec
    store = agent.extraction
    fmt = spec.format
    if fmt == "auto" and store.format != "auto":
        fmt = store.format
    out = AgentDetail(
        name=agent.name,
        status=agent.status,
        pid=agent.pid,
        format=fmt,
        started_at=rfc3339(agent.started_at),
        completed_at=rfc3339(agent.completed_at),
        uptime=go_duration(duration),
        duration_seconds=round(duration, 3),
        exit_code=agent.exit_code,
        command=list(spec.command),
        cwd=spec.cwd,
        profile=spec.profile,
        signal=agent.exit_signal,
        stop_reason=agent.stop_reason,
        error=agent.problem,
        stdin_open=agent.stdin_open,
        pty=spec.pty,
        timeout_seconds=spec.timeout_seconds,
        bytes_processed=agent.bytes_processed,
        streams=streams(agent),
        logs=log_paths(agent),
        extraction=extraction(agent),
        run_id=run_id(agent),
        waiting_since=rfc3339(agent.waiting_since),
        waiting_detail=agent.waiting_detail,
        messages=messages(agent),
        pty_size=list(spec.pty_size) if spec.pty_size is not None else None,
    )
    if matches_limit is not None:
        out.matches = store.matches(matches_limit)
    if agent.orphans:
        orphans = agent.live_orphans()
        if orphans:
            out.orphans = orphans
    resources = agent.resources()
    if resources is not None:
        out.resources = resources
    return out


def messages(agent: Agent) -> str | None:
    """How ``POST .../message`` reaches a live agent ("pty", "stream-json"), or None."""
    interaction = agent.interaction
    if interaction is None or not agent.is_live:
        return None
    return interaction.delivery


def deleted(agent: Agent) -> Deleted:
    """The answer to a DELETE: what it did, including the leftover processes it killed
    (those that escaped the group, or an interrupted run's)."""
    message = "agent stopped"
    if agent.leftovers_killed:
        message += f"; killed {agent.leftovers_killed} leftover process(es)"
    return Deleted(message=message, name=agent.name, status=agent.status, exit_code=agent.exit_code)


def stopped(agent: Agent, was_live: bool) -> Stopped:
    """The answer to a stop: the agent stays listed."""
    message = "agent stopped" if was_live else "agent was not running"
    if agent.leftovers_killed:
        message += f"; killed {agent.leftovers_killed} leftover process(es)"
    return Stopped(message=message, name=agent.name, status=agent.status, exit_code=agent.exit_code)


def run_id(agent: Agent) -> str:
    return f"{agent.name}/{agent.files.stamp}"


def run_summary(agent: Agent, listed: bool) -> RunSummary:
    """One entry of ``GET /api/agents/<name>/runs``."""
    return RunSummary(
        id=run_id(agent),
        name=agent.name,
        stamp=agent.files.stamp,
        listed=listed,
        status=agent.status,
        started_at=rfc3339(agent.started_at),
        completed_at=rfc3339(agent.completed_at),
        duration_seconds=round(agent.duration_seconds, 3),
        exit_code=agent.exit_code,
        signal=agent.exit_signal,
        stop_reason=agent.stop_reason,
        error=agent.problem,
        bytes_processed=agent.bytes_processed,
        streams=streams(agent),
        extraction=extraction(agent),
    )


def streams(agent: Agent) -> dict[str, StreamFigures]:
    return {
        s: StreamFigures(
            bytes=st.bytes,
            lines=st.lines,
            lost_bytes=st.lost_bytes,
            unprocessed_bytes=st.unprocessed_bytes,
        )
        for s, st in agent.stats.items()
    }


def extraction(agent: Agent) -> Extraction:
    store = agent.extraction
    return Extraction(
        format=store.format,
        total_lines=agent.line_num,
        total_matches=store.total,
        in_code_block=store.in_code_block,
        matches_by_type=dict(store.counts),
        unknown_events=dict(store.unknown_events),
    )


def log_paths(agent: Agent) -> dict[str, str]:
    return {s: str(agent.files.log(s)) for s in STREAMS}


def run_meta(agent: Agent) -> RunMeta:
    """The meta file's content, as of now."""
    spec = agent.spec
    mark = agent.mark
    store = agent.extraction
    return RunMeta(
        name=agent.name,
        status=agent.status.value,
        command=list(spec.command),
        cwd=spec.cwd,
        format=spec.format,
        profile=spec.profile,
        stdin=spec.stdin,
        pty=spec.pty,
        timeout_seconds=spec.timeout_seconds,
        pty_size=list(spec.pty_size) if spec.pty_size is not None else None,
        waiting_pattern=spec.waiting_pattern,
        enter=spec.enter,
        waiting_since=rfc3339(agent.waiting_since),
        pid=agent.pid,
        pid_start_ticks=mark.leader_start if mark is not None else None,
        session_id=mark.leader if mark is not None else None,
        boot_id=mark.boot_id if mark is not None else None,
        run_cookie=mark.cookie if mark is not None else None,
        cgroup=mark.cgroup if mark is not None else None,
        cpu_seconds=agent.final_usage.cpu_seconds if agent.final_usage else None,
        memory_peak_bytes=agent.final_usage.memory_peak_bytes if agent.final_usage else None,
        started_at=rfc3339(agent.started_at),
        completed_at=rfc3339(agent.completed_at),
        duration_seconds=round(agent.duration_seconds, 3),
        exit_code=agent.exit_code,
        signal=agent.exit_signal,
        stop_reason=agent.stop_reason,
        error=agent.problem,
        bytes={s: st.bytes for s, st in agent.stats.items()},
        lines={s: st.lines for s, st in agent.stats.items()},
        lost_bytes={s: st.lost_bytes for s, st in agent.stats.items()},
        unprocessed_bytes={s: st.unprocessed_bytes for s, st in agent.stats.items()},
        total_lines=agent.line_num,
        extraction=MetaExtraction(
            format=store.format,
            total_lines=agent.line_num,
            total_matches=store.total,
            in_code_block=store.in_code_block,
            matches_by_type=dict(store.counts),
            unknown_events=dict(store.unknown_events),
        ),
        logs={**log_paths(agent), "events": str(agent.files.events)},
    )
