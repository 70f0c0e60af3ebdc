"""SSE over HTTP: the stream routes and their parameters.

The pieces: ``api.sse_app`` is the ASGI/Quart adapter (``SSEApp``, ``SSEResponse``, the
connection class on quart-trio's private API); ``api.sse_stream`` is the stream loop over
ASGI ``send``/``receive``; the protocol logic itself (fan-out, drop policy, replay,
client states, wire format) is plain data in ``streaming``.
"""

from __future__ import annotations

from typing import Any, cast

import trio
from quart import Response, request
from quart_schema import document_querystring, document_response
from quart_trio import QuartTrio

from trio_wrapper.api.requests import DIGITS
from trio_wrapper.api.responses import json_response
from trio_wrapper.api.sse_app import SSE_HEADERS, SSEApp, SSEConnection, SSEResponse
from trio_wrapper.api.transport import TRANSPORT_PEER, transport_peer
from trio_wrapper.core.errors import invalid_request
from trio_wrapper.core.models import SseStats, StreamQuery
from trio_wrapper.history.events import read_events
from trio_wrapper.runtime.agent import Agent
from trio_wrapper.runtime.hub import Hub
from trio_wrapper.runtime.supervisor import Supervisor
from trio_wrapper.streaming.fanout import complete_data
from trio_wrapper.streaming.replay import Gap
from trio_wrapper.streaming.wire import Event, control, parse_last_event_id


def _peer() -> tuple[str, int] | None:
    return transport_peer(cast(dict[str, Any], request.scope))


def _stream_params(hub: Hub) -> tuple[int | None, int | None]:
    """``Last-Event-ID`` and ``history`` (None: ``history=all``, everything retained)."""
    raw_id = request.headers.get("Last-Event-ID")
    if raw_id is None:
        raw_id = request.args.get("last_event_id")
    last_event_id = parse_last_event_id(raw_id)
    if raw_id is not None and last_event_id is None:
        raise invalid_request("Last-Event-ID must be a non-negative integer")
    raw_history = request.args.get("history", "0")
    if raw_history == "all":
        return last_event_id, None
    if not DIGITS.match(raw_history):
        raise invalid_request("history must be a non-negative integer or 'all'")
    history = int(raw_history)
    cap = _ring_cap(hub)
    if history > cap:
        raise invalid_request(f"history must be at most {cap} (or 'all')")
    return last_event_id, history


def _ring_cap(hub: Hub) -> int:
    return max(hub.limits.retained_per_agent, hub.limits.retained_global)


def install_sse_routes(app: QuartTrio, hub: Hub, supervisor: Supervisor) -> None:
    app.asgi_http_class = SSEConnection
    past_limit = supervisor.config.limits.max_records

    async def stream_of(agent: Agent) -> Response:
        last_event_id, history = _stream_params(hub)
        channel = hub.channels.get(agent.name)
        listed = supervisor.agents.get(agent.name) is agent
        if not listed or (channel is None and not agent.is_live):
            # A run this daemon did not see end (before a restart, DELETEd, or an earlier
            # run of the name): its events file is what is retained of it.
            return await past_stream(hub, agent, last_event_id, history, past_limit)
        complete = channel.complete if channel is not None else None
        if complete is not None and last_event_id is not None and last_event_id >= complete.seq:
            # The client has seen the end: 204 tells EventSource to stop reconnecting.
            return Response(b"", status=204)
        replay = _ring_cap(hub) if history is None else history
        return SSEResponse(hub, agent, last_event_id, replay, _peer())

    @app.route("/api/agents/<name>/stream", methods=["GET"])
    @document_querystring(StreamQuery)
    async def agent_stream(name: str) -> Response:
        """Server-Sent Events of one agent: ``connected``, ``log``, ``extraction``, ``state``,
        ``complete``, ``ping``, ``gap``, ``shutdown``. Resume with ``Last-Event-ID``
        (or ``?last_event_id=``); ``?history=N`` replays the last N events, ``history=all``
        all that is retained (a past run's: its events file)."""
        return await stream_of(supervisor.get(name))

    @app.route("/api/agents/<name>/runs/<stamp>/stream", methods=["GET"])
    @document_querystring(StreamQuery)
    async def run_stream(name: str, stamp: str) -> Response:
        """The stream of one run: the listed run's is its agent's stream; a past run's
        replays its events file (records and status changes), then ``complete``."""
        return await stream_of(await supervisor.run_of(name, stamp))

    @app.route("/api/events", methods=["GET"])
    @document_querystring(StreamQuery)
    async def all_events() -> Response:
        """Server-Sent Events of every agent on one connection (ids: a daemon-wide sequence)."""
        last_event_id, history = _stream_params(hub)
        replay = _ring_cap(hub) if history is None else history
        return SSEResponse(hub, None, last_event_id, replay, _peer())

    @app.route("/api/sse/stats", methods=["GET"])
    @document_response(SseStats)
    async def sse_stats() -> Response:
        """Connected SSE clients, per agent, and what slow clients lost."""
        return json_response(hub.stats())


async def past_stream(
    hub: Hub, agent: Agent, last_event_id: int | None, history: int | None, limit: int
) -> Response:
    """A past run's stream, whole: ``connected``, its events file's records and status
    changes (numbered in file order; at most ``limit``), a ``gap`` if a resume asked for
    more than that, and ``complete`` (numbered after them). 204 to a client that saw it."""
    if last_event_id is not None:
        after, last = last_event_id, limit
    else:
        after, last = 0, limit if history is None else min(history, limit)
    path = agent.files.events
    events, total = await trio.to_thread.run_sync(lambda: read_events(path, after=after, last=last))
    complete_id = total + 1
    if last_event_id is not None and last_event_id >= complete_id:
        return Response(b"", status=204)
    name = agent.name
    parts = [control("connected", name, {"client_id": hub.new_client_id(), "agent": name})]
    if last_event_id is not None and events and events[0].seq > after + 1:
        first = events[0].seq
        parts.append(control("gap", name, Gap(first - after - 1, after + 1, first - 1).data()))
    parts += [Event(name, e.seq, e.seq, e.type, e.data, created=e.created).wire() for e in events]
    ended = agent.completed_at.timestamp() if agent.completed_at is not None else None
    end = Event(name, complete_id, complete_id, "complete", complete_data(agent), created=ended)
    parts.append(end.wire())
    response = Response(b"".join(parts), content_type="text/event-stream; charset=utf-8")
    response.headers.update(SSE_HEADERS)
    return response


__all__ = ["TRANSPORT_PEER", "SSEApp", "SSEResponse", "install_sse_routes"]
