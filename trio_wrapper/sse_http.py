"""SSE over HTTP: the streaming response and the routes that create it.

Quart normally drives a response body from a generator, which leaves no safe place for a
cancel scope around the ``send`` that blocks on a stalled client (PEP 789). So an
``SSEResponse`` writes itself: our ASGI connection class hands it the raw ``send`` and it
runs a plain loop — wait for events under a ping timer, then send under a stall deadline —
with every timer in a cancel scope it owns.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec
import trio
from hypercorn.typing import ASGISendCallable
from quart import Response, request
from quart.typing import ResponseTypes
from quart_schema import document_querystring, document_response
from quart_trio import QuartTrio
from quart_trio.asgi import TrioASGIHTTPConnection

from trio_wrapper.api_models import SseStats, StreamQuery
from trio_wrapper.errors import ApiError, invalid_request
from trio_wrapper.hub import Client, Hub, Subscription, complete_data
from trio_wrapper.responses import json_response
from trio_wrapper.sse_wire import Event, control, parse_last_event_id

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: don't buffer this response
}


class SSEResponse(Response):
    """A stream of one agent's events (``agent`` set) or of all agents (``agent=None``)."""

    def __init__(
        self,
        hub: Hub,
        agent: Any | None,
        last_event_id: int | None,
        history: int,
        peer: tuple[str, int] | None = None,
    ) -> None:
        super().__init__(b"", status=200, content_type="text/event-stream; charset=utf-8")
        self.headers.update(SSE_HEADERS)
        self.timeout = None  # Quart would cut the stream at RESPONSE_TIMEOUT otherwise
        self.hub = hub
        self.agent = agent
        self.last_event_id = last_event_id
        self.history = history
        self.peer = peer

    def _complete_wire(self, sub: Subscription) -> bytes:
        """The end of a finished agent's stream: its numbered ``complete`` unless the replay
        already ended with it; an unnumbered one for a past run the hub never saw."""
        if sub.complete is None:
            assert self.agent is not None, "only an agent's stream finishes"
            return control("complete", sub.client.agent, complete_data(self.agent))
        if sub.replay and sub.replay[-1] is sub.complete:
            return b""
        return sub.complete.wire()

    async def stream(self, send: ASGISendCallable) -> None:
        hub = self.hub
        name = self.agent.name if self.agent is not None else None
        try:
            sub = hub.subscribe(
                name,
                self.last_event_id,
                self.history,
                agent_live=self.agent is None or self.agent.is_live,
                peer=self.peer,
            )
        except ApiError as err:
            await _send_error(send, err)
            return
        client = sub.client
        use_global = name is None
        limits = hub.limits
        try:
            with client.scope:
                await send(
                    {
                        "type": "http.response.start",
                        "status": self.status_code,
                        "headers": [
                            (k.lower().encode("latin-1"), v.encode("latin-1"))
                            for k, v in self.headers.items()
                            # The stream has no length; hypercorn chunks it.
                            if k.lower() != "content-length"
                        ],
                    }
                )
                first = [control("connected", name, {"client_id": client.id, "agent": name})]
                if sub.gap is not None:
                    first.append(control("gap", name, sub.gap.data()))
                first.extend(_wires(sub.replay, use_global))
                if sub.finished:
                    first.append(self._complete_wire(sub))
                await _send_body(send, client, b"".join(first), limits.stall_timeout)
                if sub.finished:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                while True:
                    with trio.move_on_after(limits.ping_interval) as idle:
                        await client.wait()
                        # Let a burst gather: each send costs the server the same CPU
                        # whatever it carries, so with many clients, fewer and fuller
                        # sends keep everyone's delay down. 0.1 ms a client, 10 ms at most.
                        await trio.sleep(min(limits.coalesce, hub.total_clients * 1e-4))
                    if idle.cancelled_caught:
                        await _send_body(
                            send, client, control("ping", name, {}), limits.stall_timeout
                        )
                        continue
                    runs, gap = client.take()
                    chunks = []
                    if gap is not None:
                        chunks.append(control("gap", name, gap.data()))
                    chunks.extend(run.wire(use_global) for run in runs)
                    done = client.ended or (not use_global and any(r.completes for r in runs))
                    if client.shutting_down:
                        chunks.append(control("shutdown", name, {}))
                        done = True
                    for piece in _pieces(chunks):
                        await _send_body(send, client, piece, limits.stall_timeout)
                    if done:
                        await send({"type": "http.response.body", "body": b"", "more_body": False})
                        return
        finally:
            hub.unsubscribe(client)
            if client.sending_since is not None and not hub.closing:
                # Left in the middle of a send: the connection took nothing for the whole
                # stall timeout (our deadline, or the sweep's abort, ended it).
                hub.slow_disconnects_total += 1


SEND_PIECE = 256 * 1024


def _pieces(chunks: list[bytes]) -> Iterator[bytes]:
    """Small chunks joined, large ones passed on as they are: the HTTP layer copies each
    body once more (chunked framing), so joining megabytes first would copy them twice."""
    small: list[bytes] = []
    size = 0
    for chunk in chunks:
        if len(chunk) >= SEND_PIECE:
            if small:
                yield b"".join(small)
                small, size = [], 0
            yield chunk
            continue
        small.append(chunk)
        size += len(chunk)
        if size >= SEND_PIECE:
            yield b"".join(small)
            small, size = [], 0
    if small:
        yield b"".join(small)


def _wires(events: Sequence[Event], use_global: bool) -> list[bytes]:
    if use_global:
        return [e.global_wire() for e in events]
    return [e.wire() for e in events]


async def _send_body(send: ASGISendCallable, client: Client, data: bytes, stall: float) -> None:
    """One send under the client's stall deadline; the scope's cancel ends the stream."""
    client.sending_since = trio.current_time()
    client.scope.deadline = client.sending_since + stall
    await send({"type": "http.response.body", "body": data, "more_body": True})
    client.scope.deadline = math.inf
    client.sending_since = None


async def _send_error(send: ASGISendCallable, err: ApiError) -> None:
    body = msgspec.json.encode(err.body())
    await send(
        {
            "type": "http.response.start",
            "status": err.status,
            "headers": [(b"content-type", b"application/json; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class SSEConnection(TrioASGIHTTPConnection):
    """quart-trio's HTTP connection, letting an ``SSEResponse`` drive its own sending."""

    async def _send_response(self, send: ASGISendCallable, response: ResponseTypes) -> None:
        if isinstance(response, SSEResponse):
            await response.stream(send)
        else:
            await super()._send_response(send, response)


def _peer() -> tuple[str, int] | None:
    client = request.scope.get("client")
    return (client[0], client[1]) if client else None


def _stream_params(hub: Hub) -> tuple[int | None, int]:
    raw_id = request.headers.get("Last-Event-ID")
    if raw_id is None:
        raw_id = request.args.get("last_event_id")
    last_event_id = parse_last_event_id(raw_id)
    if raw_id is not None and last_event_id is None:
        raise invalid_request("Last-Event-ID must be a non-negative integer")
    raw_history = request.args.get("history", "0")
    if not raw_history.isdigit():
        raise invalid_request("history must be a non-negative integer")
    history = int(raw_history)
    cap = max(hub.limits.retained_per_agent, hub.limits.retained_global)
    if history > cap:
        raise invalid_request(f"history must be at most {cap}")
    return last_event_id, history


def install_sse_routes(app: QuartTrio, hub: Hub, supervisor: Any) -> None:
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
