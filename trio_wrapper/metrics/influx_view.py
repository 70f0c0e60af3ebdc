"""``GET /api/metrics/influxdb``: the snapshot as InfluxDB points (contract section 5).

Measurements ``<ns>`` (daemon-wide fields), ``<ns>_extractions`` (tag ``type``) and
``<ns>_agent`` (tags ``agent``, ``status``), each tagged with ``host``, all stamped with
the snapshot's wall-clock time in nanoseconds. Pure: ``InfluxView`` only keeps the format
string of the per-agent lines while the agents' layout holds (``template.py``).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Iterator
from itertools import chain, repeat
from typing import NamedTuple

from trio_wrapper.core.status import Status
from trio_wrapper.metrics.influx import (
    FieldValue,
    Point,
    escape_key,
    escape_measurement,
    format_points,
)
from trio_wrapper.metrics.json_view import ACTIVE
from trio_wrapper.metrics.model import MetricsModel
from trio_wrapper.metrics.snapshot import AgentColumns, MetricsSnapshot
from trio_wrapper.metrics.template import (
    HIDDEN_SLOT,
    REPR_SLOT,
    SLOT,
    LayoutMemo,
    interleave,
    literal,
)


def influx_points(snap: MetricsSnapshot, ns: str, host: str) -> Iterator[Point]:
    """Every point of the contract, for the generic formatter."""
    yield from _daemon_points(snap, ns, host)
    measurement = f"{ns}_agent"
    clients = snap.sse.clients_by_agent
    for a in snap.agents:
        fields: dict[str, FieldValue] = {
            "log_lines": a.log_lines,
            "extractions": a.extractions,
            "code_blocks": a.code_blocks,
            "errors": a.errors,
            "bytes_processed": a.stdout_bytes + a.stderr_bytes,
            "stdout_bytes": a.stdout_bytes,
            "stderr_bytes": a.stderr_bytes,
            "duration_seconds": a.duration_seconds,
            "exit_code": a.exit_code,  # left out while running: InfluxDB has no null
            "sse_clients": clients.get(a.name, 0),
        }
        yield measurement, {"agent": a.name, "host": host, "status": a.status}, fields


def _daemon_points(snap: MetricsSnapshot, ns: str, host: str) -> Iterator[Point]:
    by_status = snap.agents_by_status
    system: dict[str, FieldValue] = {
        "uptime_seconds": snap.uptime_seconds,
        "total_agents": snap.agents_listed,
        "running_agents": sum(by_status.get(s, 0) for s in ACTIVE),
        "completed_agents": by_status.get(Status.COMPLETED.value, 0),
        "failed_agents": by_status.get(Status.FAILED.value, 0),
        "agents_started": snap.agents_started_total,
        "failed_starts": snap.failed_starts_total,
        "total_events": snap.events_total,
        "total_logs": snap.log_lines_total,
        "total_extractions": snap.extractions_total,
        "state_changes": snap.state_changes_total,
        "events_per_second": snap.events_per_second,
        "sse_clients": snap.sse.total_clients,
        "sse_dropped_events": snap.sse.dropped_events_total,
    }
    yield ns, {"host": host}, system
    measurement = f"{ns}_extractions"
    for kind, count in sorted(snap.extractions_by_type.items()):
        yield measurement, {"host": host, "type": kind}, {"count": count}


def render_influx(snap: MetricsSnapshot, ns: str, host: str) -> str:
    """``influx_points`` through the generic formatter for the few daemon-wide points, and a
    format string with a slot per value for the per-agent lines, which are most of the
    output (the tests check both give the same text as the generic formatter)."""
    return _render(snap, ns, host, LayoutMemo())


class InfluxView:
    """What ``/api/metrics/influxdb`` serves: ``render_influx`` with the per-agent format
    string of the last layout reused while the layout holds."""

    def __init__(self, model: MetricsModel, namespace: str, host: str) -> None:
        self._model = model
        self._namespace = namespace
        self._host = host
        self._agent_format: LayoutMemo[_AgentLayout] = LayoutMemo()

    def render(self) -> str:
        return self.render_snapshot(self._model.snapshot())

    def render_snapshot(self, snap: MetricsSnapshot) -> str:
        return _render(snap, self._namespace, self._host, self._agent_format)


class _AgentLayout(NamedTuple):
    """What the per-agent lines' text around the values is made of (with ``ns`` and
    ``host``, fixed per view): equal layouts give the same format string."""

    names: tuple[str, ...]
    statuses: tuple[str, ...]
    has_exit_code: tuple[bool, ...]
    finite_duration: tuple[bool, ...]


def _render(snap: MetricsSnapshot, ns: str, host: str, memo: LayoutMemo[_AgentLayout]) -> str:
    head = format_points(_daemon_points(snap, ns, host), snap.timestamp_ns)
    cols = AgentColumns.of(snap.agents)
    durations, exit_codes = cols.duration_seconds, cols.exit_code
    layout = _AgentLayout(
        cols.name,
        cols.status,
        tuple(map(operator.is_not, exit_codes, repeat(None))),
        tuple(map(math.isfinite, durations)),
    )
    agent_format = memo.get(layout, lambda: _agent_lines_format(layout, ns, host))
    clients = snap.sse.clients_by_agent
    stdout, stderr = cols.stdout_bytes, cols.stderr_bytes
    # Per agent, the values in the order of its line's slots.
    values = interleave(
        (
            cols.log_lines,
            cols.extractions,
            cols.code_blocks,
            cols.errors,
            tuple(map(operator.add, stdout, stderr)),
            stdout,
            stderr,
            durations,
            exit_codes,
            tuple(map(clients.get, cols.name, repeat(0))),
            (f"{snap.timestamp_ns}",) * len(cols.name),  # written once, not once per line
        )
    )
    return head + agent_format % values


def _agent_lines_format(layout: _AgentLayout, ns: str, host: str) -> str:
    # Tags in key order (agent, host, status) and fields in influx_points' order. A field
    # the format cannot carry (no exit code yet, a non-finite duration) keeps its slot but
    # writes nothing, so every agent takes the same number of values. Written column by
    # column, the pieces interleaved and joined in C.
    measurement = literal(escape_measurement(f"{ns}_agent"))
    host_tag = literal(f",host={escape_key(host)}") if host else ""
    counts = ",".join(
        f"{field}={SLOT}i"
        for field in (
            "log_lines",
            "extractions",
            "code_blocks",
            "errors",
            "bytes_processed",
            "stdout_bytes",
            "stderr_bytes",
        )
    )
    # The duration is a float, which the line protocol writes as its repr.
    duration = (HIDDEN_SLOT, f",duration_seconds={REPR_SLOT}")  # indexed by "is finite"
    exit_code = (HIDDEN_SLOT, f",exit_code={SLOT}i")  # indexed by "has one"
    pieces = zip(
        repeat(f"{measurement},agent="),
        _tag_literals(layout.names),
        repeat(f"{host_tag},status="),
        _tag_literals(layout.statuses),
        repeat(f" {counts}"),
        map(duration.__getitem__, layout.finite_duration),
        map(exit_code.__getitem__, layout.has_exit_code),
        repeat(f",sse_clients={SLOT}i {SLOT}\n"),
    )
    return "".join(chain.from_iterable(pieces))


def _tag_literals(values: tuple[str, ...]) -> Iterable[str]:
    """A column of tag values, escaped and ready for a format string. One look at the
    whole column first: the usual plain names are used as they are."""
    joined = "".join(values)
    if any(char in joined for char in "\\,= \n\r%"):
        return [literal(escape_key(value)) for value in values]
    return values
