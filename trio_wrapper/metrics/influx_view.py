"""``GET /api/metrics/influxdb``: the snapshot as InfluxDB points (contract section 5).

Measurements ``<ns>`` (daemon-wide fields), ``<ns>_extractions`` (tag ``type``) and
``<ns>_agent`` (tags ``agent``, ``status``), each tagged with ``host``, all stamped with
the snapshot's wall-clock time in nanoseconds. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from trio_wrapper.metrics.influx import (
    FieldValue,
    Point,
    escape_key,
    escape_measurement,
    format_points,
)
from trio_wrapper.metrics.json_view import ACTIVE
from trio_wrapper.metrics.snapshot import MetricsSnapshot
from trio_wrapper.status import Status


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
    """What the route serves: ``influx_points`` through the generic formatter for the
    few daemon-wide points, and a specialised writer for the per-agent lines, which are
    most of the output (the tests check both give the same text)."""
    head = format_points(_daemon_points(snap, ns, host), snap.timestamp_ns)
    return head + _agent_lines(snap, ns, host)


def _agent_lines(snap: MetricsSnapshot, ns: str, host: str) -> str:
    # Tags in key order (agent, host, status) and fields in influx_points' order; names
    # are escaped once, values per agent. ~4x faster than format_point per agent.
    measurement = escape_measurement(f"{ns}_agent")
    host_tag = f",host={escape_key(host)}" if host else ""
    stamp = snap.timestamp_ns
    clients = snap.sse.clients_by_agent
    lines = []
    for a in snap.agents:
        exit_code = "" if a.exit_code is None else f",exit_code={a.exit_code}i"
        duration = a.duration_seconds
        lines.append(
            f"{measurement},agent={escape_key(a.name)}{host_tag},status={escape_key(a.status)}"
            f" log_lines={a.log_lines}i,extractions={a.extractions}i,"
            f"code_blocks={a.code_blocks}i,errors={a.errors}i,"
            f"bytes_processed={a.stdout_bytes + a.stderr_bytes}i,"
            f"stdout_bytes={a.stdout_bytes}i,stderr_bytes={a.stderr_bytes}i"
            + (f",duration_seconds={duration!r}" if math.isfinite(duration) else "")
            + f"{exit_code},sse_clients={clients.get(a.name, 0)}i {stamp}\n"
        )
    return "".join(lines)
