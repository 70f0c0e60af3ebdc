"""What the formatters read: one consistent picture of the metrics at one moment. Pure.

The model builds a snapshot per request; the Prometheus, JSON and line-protocol
formatters only read it, so all three show the same figures and none keeps state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, Protocol


class AgentFigures(NamedTuple):
    """One listed agent. A NamedTuple because a scrape builds a thousand of them."""

    name: str
    status: str
    started_at: datetime
    completed_at: datetime | None
    log_lines: int
    extractions: int
    code_blocks: int
    errors: int
    stdout_bytes: int
    stderr_bytes: int
    exit_code: int | None
    duration_seconds: float

    @property
    def bytes_processed(self) -> int:
        return self.stdout_bytes + self.stderr_bytes


@dataclass(frozen=True, slots=True)
class SseFigures:
    """What the SSE hub reports; all zero while no hub is registered."""

    clients_by_agent: Mapping[str, int] = field(default_factory=dict)
    dropped_events_total: int = 0
    slow_disconnects_total: int = 0
    events_clients: int = 0  # on /api/events (all agents), counted in the total only

    @property
    def total_clients(self) -> int:
        return sum(self.clients_by_agent.values()) + self.events_clients

    @property
    def agents_with_clients(self) -> int:
        return sum(1 for count in self.clients_by_agent.values() if count > 0)


class SseSource(Protocol):
    """Implemented by the SSE hub; read at each request, so it must be cheap."""

    def sse_figures(self) -> SseFigures: ...


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    version: str
    timestamp_ns: int  # wall clock, for the line protocol
    uptime_seconds: float
    agents_by_status: Mapping[str, int]  # every status, zeros included
    agents_started_total: int
    failed_starts_total: int
    events_total: int
    log_lines_total: int
    state_changes_total: int
    extractions_by_type: Mapping[str, int]
    events_per_second: float
    agents: Sequence[AgentFigures]
    sse: SseFigures = field(default_factory=SseFigures)

    @property
    def extractions_total(self) -> int:
        return sum(self.extractions_by_type.values())

    @property
    def agents_listed(self) -> int:
        return sum(self.agents_by_status.values())
