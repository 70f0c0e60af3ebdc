"""SSE over HTTP: the stream routes and their parameters.

The pieces: ``api.sse_app`` is the ASGI/Quart adapter (``SSEApp``, ``SSEResponse``, the
connection class on quart-trio's private API); ``api.sse_stream`` is the stream loop over
ASGI ``send``/``receive``; the protocol logic itself (fan-out, drop policy, replay,
client states, wire format) is plain data in ``streaming``.
"""

from __future__ import annotations

from typing import Any, cast

from quart import Response, request
from quart_schema import document_querystring, document_response
from quart_trio import QuartTrio

from trio_wrapper.api.requests import DIGITS
from trio_wrapper.api.responses import json_response
from trio_wrapper.api.sse_app import SSEApp, SSEConnection, SSEResponse
from trio_wrapper.api.sse_stream import AgentLookup
from trio_wrapper.core.errors import invalid_request
from trio_wrapper.core.models import SseStats, StreamQuery
from trio_wrapper.runtime.hub import Hub
from trio_wrapper.streaming.wire import parse_last_event_id

# Scope key for the TCP peer when a proxy-fix layer rewrote ``client`` (daemon.served_app).
TRANSPORT_PEER = "trio_wrapper.transport_peer"


def _peer() -> tuple[str, int] | None:
    scope = cast(dict[str, Any], request.scope)
    client = scope[TRANSPORT_PEER] if TRANSPORT_PEER in scope else scope.get("client")
    if isinstance(client, tuple) and len(client) == 2:
        return client  # hypercorn's own tuple: nothing more to keep per stream
    return (client[0], client[1]) if client else None


def _stream_params(hub: Hub) -> tuple[int | None, int]:
    raw_id = request.headers.get("Last-Event-ID")
    if raw_id is None:
        raw_id = request.args.get("last_event_id")
    last_event_id = parse_last_event_id(raw_id)
    if raw_id is not None and last_event_id is None:
        raise invalid_request("Last-Event-ID must be a non-negative integer")
    raw_history = request.args.get("history", "0")
    if not DIGITS.match(raw_history):
        raise invalid_request("history must be a non-negative integer")
    history = int(raw_history)
    cap = max(hub.limits.retained_per_agent, hub.limits.retained_global)
    if history > cap:
        raise invalid_request(f"history must be at most {cap}")
    return last_event_id, history


def install_sse_routes(app: QuartTrio, hub: Hub, supervisor: AgentLookup) -> None:
    app.asgi_http_class = SSEConnection

    @app.route("/api/agents/<name>/stream", methods=["GET"])
    @document_querystring(StreamQuery)
    async def agent_stream(name: str) -> Response:
        """Server-Sent Events of one agent: ``connected``, ``log``, ``extraction``, ``state``,
        ``complete``, ``ping``, ``gap``, ``shutdown``. Resume with ``Last-Event-ID``
        (or ``?last_event_id=``); ``?history=N`` replays the last N events."""
        agent = supervisor.get(name)
        last_event_id, history = _stream_params(hub)
        channel = hub.channels.get(name)
        complete = channel.complete if channel is not None else None
        if complete is not None and last_event_id is not None and last_event_id >= complete.seq:
            # The client has seen the end: 204 tells EventSource to stop reconnecting.
            return Response(b"", status=204)
        return SSEResponse(hub, agent, last_event_id, history, _peer())

    @app.route("/api/events", methods=["GET"])
    @document_querystring(StreamQuery)
    async def all_events() -> Response:
        """Server-Sent Events of every agent on one connection (ids: a daemon-wide sequence)."""
        last_event_id, history = _stream_params(hub)
        return SSEResponse(hub, None, last_event_id, history, _peer())

    @app.route("/api/sse/stats", methods=["GET"])
    @document_response(SseStats)
    async def sse_stats() -> Response:
        """Connected SSE clients, per agent, and what slow clients lost."""
        return json_response(hub.stats())


__all__ = ["TRANSPORT_PEER", "SSEApp", "SSEResponse", "install_sse_routes"]
