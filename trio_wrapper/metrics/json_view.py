"""``GET /api/metrics``: the seed's JSON shape with snake_case keys (contract section 5).

The Structs are the shape (msgspec encodes them and quart-schema documents them); the
key order is the seed's. Pure.
"""

from __future__ import annotations

import msgspec

from trio_wrapper.metrics.snapshot import MetricsSnapshot
from trio_wrapper.status import Status
from trio_wrapper.timefmt import rfc3339

# The seed's "running_agents - Currently active": an agent still owning its process.
ACTIVE = frozenset({Status.STARTING.value, Status.RUNNING.value, Status.STOPPING.value})


class SystemMetrics(msgspec.Struct):
    """Daemon-wide figures. ``total_agents`` = agents listed (live and past runs);
    ``total_events`` = log lines + extractions + state changes since the daemon started."""

    uptime_seconds: float
    total_agents: int
    running_agents: int
    completed_agents: int
    failed_agents: int
    total_events: int
    total_logs: int
    total_extractions: int
    events_per_second: float
    extractions_by_type: dict[str, int]


class AgentMetrics(msgspec.Struct):
    """One listed agent; ``bytes_processed`` is stdout plus stderr."""

    name: str
    status: str
    started_at: str
    completed_at: str | None
    log_lines: int
    extractions: int
    code_blocks: int
    errors: int
    bytes_processed: int
    exit_code: int | None
    duration_seconds: float


class SseMetrics(msgspec.Struct):
    """``total_agents`` = agents with at least one SSE client."""

    total_agents: int
    total_clients: int
    agents: dict[str, int]


class MetricsDocument(msgspec.Struct):
    """All metrics as JSON."""

    version: str
    system: SystemMetrics
    agents: list[AgentMetrics]
    sse: SseMetrics


_encoder = msgspec.json.Encoder()


def metrics_document(snap: MetricsSnapshot) -> MetricsDocument:
    by_status = snap.agents_by_status
    system = SystemMetrics(
        uptime_seconds=round(snap.uptime_seconds, 3),
        total_agents=snap.agents_listed,
        running_agents=sum(by_status.get(s, 0) for s in ACTIVE),
        completed_agents=by_status.get(Status.COMPLETED.value, 0),
        failed_agents=by_status.get(Status.FAILED.value, 0),
        total_events=snap.events_total,
        total_logs=snap.log_lines_total,
        total_extractions=snap.extractions_total,
        events_per_second=round(snap.events_per_second, 6),
        extractions_by_type=dict(snap.extractions_by_type),
    )
    agents = [
        AgentMetrics(
            a.name,
            a.status,
            rfc3339(a.started_at) or "",
            rfc3339(a.completed_at),
            a.log_lines,
            a.extractions,
            a.code_blocks,
            a.errors,
            a.stdout_bytes + a.stderr_bytes,
            a.exit_code,
            round(a.duration_seconds, 3),
        )
        for a in snap.agents
    ]
    sse = SseMetrics(
        total_agents=snap.sse.agents_with_clients,
        total_clients=snap.sse.total_clients,
        agents=dict(snap.sse.clients_by_agent),
    )
    return MetricsDocument(version=snap.version, system=system, agents=agents, sse=sse)


def render_json(snap: MetricsSnapshot) -> bytes:
    return _encoder.encode(metrics_document(snap))
