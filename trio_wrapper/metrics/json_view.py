"""``GET /api/metrics``: the seed's JSON shape with snake_case keys (contract section 5).

The Structs are the shape (msgspec encodes them and quart-schema documents them); the
key order is the seed's. Pure: ``JsonView`` only keeps the texts of time stamps that
have not changed since the last scrape.
"""

from __future__ import annotations

import operator
from datetime import datetime
from itertools import repeat

import msgspec

from trio_wrapper.core.status import Status
from trio_wrapper.core.timefmt import rfc3339
from trio_wrapper.metrics.model import MetricsModel
from trio_wrapper.metrics.snapshot import AgentColumns, MetricsSnapshot

# The seed's "running_agents - Currently active": an agent still owning its process.
ACTIVE = frozenset(
    {Status.STARTING.value, Status.RUNNING.value, Status.WAITING.value, Status.STOPPING.value}
)


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
    # Of ``running_agents``: those waiting for their user (input or an approval).
    waiting_agents: int = 0


# gc=False: a scrape makes a thousand of these, and as tracked containers they would set
# off a garbage collection per scrape; holding only strings and numbers, they cannot be
# part of a reference cycle.
class AgentMetrics(msgspec.Struct, gc=False):
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


class StampTexts:
    """The RFC 3339 texts of one column of datetimes (the agents' start or end times),
    kept from one scrape to the next.

    Formatting a datetime costs ~1 µs, and a scrape of 1,000 agents would format start
    times that never change. A text is looked up by the datetime object's identity and kept
    with the object itself, so the id cannot be reused while it is cached, and the same
    object (datetimes are immutable) always has the same text. Equality would not do:
    equal instants in two time zones are written differently. Entries of datetimes no
    longer in the column are dropped at each call.
    """

    __slots__ = ("_last", "_none_text", "_texts")

    def __init__(self, none_text: str | None = None) -> None:
        self._none_text = none_text  # what a missing datetime is written as
        self._texts: dict[int, tuple[datetime, str | None]] = {}
        self._last: tuple[tuple[datetime | None, ...], list[str | None]] = ((), [])

    def texts(self, moments: tuple[datetime | None, ...]) -> list[str | None]:
        last_moments, last_texts = self._last
        # The usual scrape: the very same objects as last time (one pass in C).
        if len(moments) == len(last_moments) and all(map(operator.is_, moments, last_moments)):
            return last_texts
        old: dict[int, tuple[datetime, str | None]] = self._texts
        new: dict[int, tuple[datetime, str | None]] = {}
        texts: list[str | None] = []
        for moment in moments:
            if moment is None:
                texts.append(self._none_text)
                continue
            key = id(moment)
            entry = old.get(key)  # an entry keeps its datetime alive: same id, same object
            if entry is None:
                entry = (moment, rfc3339(moment) or self._none_text)
            new[key] = entry
            texts.append(entry[1])
        self._texts = new
        self._last = (moments, texts)
        return texts


def metrics_document(
    snap: MetricsSnapshot,
    started: StampTexts | None = None,
    completed: StampTexts | None = None,
) -> MetricsDocument:
    """The document; ``started`` and ``completed`` (each a ``StampTexts`` kept between
    calls, ``JsonView`` does) save formatting the same datetimes again."""
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
        waiting_agents=by_status.get(Status.WAITING.value, 0),
    )
    cols = AgentColumns.of(snap.agents)
    started = StampTexts(none_text="") if started is None else started
    completed = StampTexts() if completed is None else completed
    # Field by field over whole columns, in C: no Python work per agent.
    agents = list(
        map(
            AgentMetrics,
            cols.name,
            cols.status,
            started.texts(cols.started_at),
            completed.texts(cols.completed_at),
            cols.log_lines,
            cols.extractions,
            cols.code_blocks,
            cols.errors,
            map(operator.add, cols.stdout_bytes, cols.stderr_bytes),
            cols.exit_code,
            map(round, cols.duration_seconds, repeat(3)),
        )
    )
    sse = SseMetrics(
        total_agents=snap.sse.agents_with_clients,
        total_clients=snap.sse.total_clients,
        agents=dict(snap.sse.clients_by_agent),
    )
    return MetricsDocument(version=snap.version, system=system, agents=agents, sse=sse)


def render_json(snap: MetricsSnapshot) -> bytes:
    return _encoder.encode(metrics_document(snap))


class JsonView:
    """What ``/api/metrics`` serves: ``render_json`` with the agents' start and end times
    formatted once, not at every scrape."""

    def __init__(self, model: MetricsModel) -> None:
        self._model = model
        self._started = StampTexts(none_text="")  # the contract's started_at is never null
        self._completed = StampTexts()

    def render(self) -> bytes:
        return self.render_snapshot(self._model.snapshot())

    def render_snapshot(self, snap: MetricsSnapshot) -> bytes:
        return _encoder.encode(metrics_document(snap, self._started, self._completed))
