"""The metrics model: fed by the agents as things happen, read by the three formatters.

It is an ``AgentObserver``, so it sees every batch of lines, every status change and
every DELETE, in order and on the trio thread (no locking). It keeps only what nobody
else keeps:

- the daemon-wide counters (events, log lines, state changes, extractions by type),
  which must never go down while the daemon runs, even when the agents that produced
  them are DELETEd;
- each listed agent's extraction counts (the extractor reports them here);
- the sliding window behind ``events_per_second``.

Everything else is read from the supervisor when a snapshot is taken: the agents and
their status, bytes, lines, duration and exit code, and the started / failed-start
counters. Agents read back from history are listed (so they count in the gauges) but
were not started by this daemon, so they do not count as started.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol

from trio_wrapper.core.lines import LineBatch
from trio_wrapper.core.status import Status
from trio_wrapper.extract.found import Found
from trio_wrapper.metrics.rate import SlidingRate
from trio_wrapper.metrics.snapshot import (
    AgentColumns,
    AgentRows,
    MetricsSnapshot,
    SseFigures,
    SseSource,
)

# Extraction types with their own per-agent series (the seed's code_blocks and errors).
CODE_BLOCK = "code_block"
ERROR = "error"

_NO_SSE = SseFigures()


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class _Counted(Protocol):
    @property
    def bytes(self) -> int: ...


class _Extracted(Protocol):
    @property
    def counts(self) -> Mapping[str, int]: ...

    @property
    def total(self) -> int: ...

    @property
    def format(self) -> str: ...

    @property
    def unknown_events(self) -> Mapping[str, int]: ...


class Agent(Protocol):
    """What the model reads of one run (read-only): the runtime's agent satisfies it, so
    the metrics package needs nothing from the trio side."""

    @property
    def spec(self) -> _Named: ...

    @property
    def status(self) -> Status: ...

    @property
    def started_at(self) -> datetime | None: ...

    @property
    def completed_at(self) -> datetime | None: ...

    @property
    def line_num(self) -> int: ...

    @property
    def extraction(self) -> _Extracted: ...

    @property
    def stats(self) -> Mapping[str, _Counted]: ...

    @property
    def exit_code(self) -> int | None: ...

    def duration_at(self, now: float) -> float: ...


class AgentRegistry(Protocol):
    """What the model reads from the supervisor (read-only, hence properties)."""

    @property
    def agents(self) -> Mapping[str, Agent]: ...

    @property
    def started_total(self) -> int: ...

    @property
    def failed_starts(self) -> int: ...


class MetricsModel:
    def __init__(
        self,
        registry: AgentRegistry,
        *,
        version: str,
        started_mono: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._registry = registry
        self._version = version
        self._monotonic = monotonic
        self._wall_clock_ns = wall_clock_ns
        self._started = monotonic() if started_mono is None else started_mono
        self._rate = SlidingRate(self._started)
        self._log_lines = 0
        self._state_changes = 0
        self._extractions: Counter[str] = Counter()
        # Keyed by the Agent object, not its name: after a DELETE the name may be reused
        # at once, and the old run's late news must not land on the new one.
        self._sse: SseSource | None = None
        self._tasks: Callable[[], int] | None = None

    # ---- fed by the agents (AgentObserver) and the extractor ------------------------

    def on_lines(self, agent: Agent, stream: str, first_line_num: int, batch: LineBatch) -> None:
        count = len(batch.lines)
        self._log_lines += count
        self._rate.add(count, self._monotonic())

    def on_status(self, agent: Agent, old: Status | None, new: Status) -> None:
        self._state_changes += 1
        self._rate.add(1, self._monotonic())

    def on_removed(self, agent: Agent) -> None:
        # The agent's own series go with it (they are read from the agent); the daemon-wide
        # counters keep what it contributed.
        pass

    def on_records(self, agent: Agent, found: Found, counts_by_type: Mapping[str, int]) -> None:
        self.on_extractions(agent, counts_by_type)

    def on_extractions(self, agent: Agent, counts_by_type: Mapping[str, int]) -> None:
        """The daemon-wide counts of what an agent's extractor just found. (Per-agent
        counts are read from the agent's own extraction store: no second copy here.)"""
        added = 0
        for kind, count in counts_by_type.items():
            if count > 0:
                self._extractions[kind] += count
                added += count
        if added:
            self._rate.add(added, self._monotonic())

    def register_sse(self, source: SseSource | None) -> None:
        """The SSE hub registers here; until then the SSE figures are true zeros."""
        self._sse = source

    def register_tasks(self, count: Callable[[], int] | None) -> None:
        """What counts the daemon's tasks (``runtime.tasks``); until then 0."""
        self._tasks = count

    # ---- read by the formatters -----------------------------------------------------

    @property
    def events_total(self) -> int:
        """The contract's ``total_events``: log lines + extractions + state changes."""
        return self._log_lines + self._extractions.total() + self._state_changes

    def unknown_events(self) -> list[tuple[tuple[str, str], int]]:
        """``((agent, format), count)`` of every listed agent whose output held event types
        its format does not know, by name: the ``<ns>_agent_unknown_events_total`` series."""
        rows: list[tuple[tuple[str, str], int]] = []
        for agent in self._registry.agents.values():
            extraction = agent.extraction
            unknown = extraction.unknown_events
            if unknown:
                rows.append(((agent.spec.name, extraction.format), sum(unknown.values())))
        rows.sort()
        return rows

    def snapshot(self) -> MetricsSnapshot:
        now = self._monotonic()
        registry = self._registry
        # The loop below is most of a scrape's fixed cost with 1,000 agents: it only reads,
        # into one flat list (see AgentRows), and the statuses are counted afterwards in C.
        flat: list[object] = []
        extend = flat.extend
        for agent in registry.agents.values():
            extraction = agent.extraction
            counts = extraction.counts
            stats = agent.stats
            extend(
                (  # in AgentFigures' order
                    agent.spec.name,
                    # Status is a StrEnum: the member is its own label, no .value needed.
                    agent.status,
                    agent.started_at,
                    agent.completed_at,
                    agent.line_num,
                    extraction.total,
                    counts.get(CODE_BLOCK, 0),
                    counts.get(ERROR, 0),
                    stats["stdout"].bytes,
                    stats["stderr"].bytes,
                    agent.exit_code,
                    agent.duration_at(now),
                )
            )
        agents = AgentRows(tuple(flat))
        by_status = dict.fromkeys((s.value for s in Status), 0)
        for status, count in Counter(AgentColumns.of(agents).status).items():
            by_status[status] += count
        return MetricsSnapshot(
            version=self._version,
            timestamp_ns=self._wall_clock_ns(),
            uptime_seconds=max(0.0, now - self._started),
            agents_by_status=by_status,
            agents_started_total=registry.started_total,
            failed_starts_total=registry.failed_starts,
            events_total=self.events_total,
            log_lines_total=self._log_lines,
            state_changes_total=self._state_changes,
            extractions_by_type=dict(self._extractions),
            events_per_second=self._rate.rate(now),
            agents=agents,
            sse=self._sse.sse_figures() if self._sse is not None else _NO_SSE,
            tasks=self._tasks() if self._tasks is not None else 0,
        )
