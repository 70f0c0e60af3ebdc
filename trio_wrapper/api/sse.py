"""SSE over HTTP: the streaming response, the stream loop and the routes that create it.

A stream request goes through Quart like any other (host check, token, the route's
checks, CORS headers, JSON errors), but not through Quart's per-request machinery for the
hours it then stays open: ``SSEApp`` handles it in the connection's own task, without the
request nursery and its two tasks, and hands the connection to ``run_stream`` with Quart's
request and response objects let go. Ten thousand idle streams cost about what hypercorn's
bare connections cost (docs/benchmarks-sse.md).

``run_stream`` is a plain loop: wait for news and the hub's flush, send. It has no timer
of its own: the hub's flusher releases every stream with news at once, a burst's worth at
a time; its pacemaker wakes an idle stream for its ping and reads its connection's
disconnect (see ``hub.Client``); its sweep ends a send stalled past the stall timeout.
No ``yield`` in a cancel scope anywhere (PEP 789): there is no generator.
"""

from __future__ import annotations

import math
import re
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from typing import Any, cast

import msgspec
import trio
from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    HTTPScope,
    Scope,
)
from quart import Response, request
from quart.typing import ResponseTypes
from quart_schema import document_querystring, document_response
from quart_trio import QuartTrio
from quart_trio.asgi import TrioASGIHTTPConnection

from trio_wrapper.api.errors import http_status
from trio_wrapper.api.responses import json_response
from trio_wrapper.core.errors import Refusal, invalid_request
from trio_wrapper.core.models import SseStats, StreamQuery
from trio_wrapper.runtime.hub import Client, Hub, complete_data
from trio_wrapper.streaming.wire import Event, control, parse_last_event_id

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: don't buffer this response
}

# The stream routes (below), by the end of the path: a root path or an absolute URI may
# come before. Quart still does the routing; this only picks the requests it does
# without a nursery.
STREAM_PATH = re.compile(r"/api/(?:agents/[^/]+/stream|events)\Z")
STREAM_METHODS = frozenset({"GET", "HEAD"})


class SSEResponse(Response):
    """A stream of one agent's events (``agent`` set) or of all agents (``agent=None``).

    Quart's after-request hooks add their headers (CORS) to it like to any response;
    ``stream`` then takes what the stream needs and leaves the object behind.
    """

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

    def stream(
        self, send: ASGISendCallable, receive: ASGIReceiveCallable
    ) -> Coroutine[Any, Any, None]:
        """The stream, as a coroutine that does not hold this response while it runs."""
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": self.status_code,
            "headers": _shared_headers(self.headers.items()),
        }
        return run_stream(
            self.hub, self.agent, self.last_event_id, self.history, self.peer, start, send, receive
        )


# hypercorn keeps each response's start message for the connection's life: streams with the
# same headers (nearly all of them) share one tuple of encoded headers.
_HEADER_SETS: dict[tuple[tuple[str, str], ...], tuple[tuple[bytes, bytes], ...]] = {}
_HEADER_SETS_MAX = 64  # a few origins, a few variants; past it, nothing more is shared


def _shared_headers(items: Iterable[tuple[str, str]]) -> tuple[tuple[bytes, bytes], ...]:
    key = tuple(items)
    encoded = _HEADER_SETS.get(key)
    if encoded is None:
        encoded = tuple(
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in key
            # The stream has no length; hypercorn chunks it.
            if k.lower() != "content-length"
        )
        if len(_HEADER_SETS) < _HEADER_SETS_MAX:
            _HEADER_SETS[key] = encoded
    return encoded


def _complete_wire(
    agent: Any, name: str | None, replay: list[Event], complete: Event | None
) -> bytes:
    """The end of a finished agent's stream: its numbered ``complete`` unless the replay
    already ended with it; an unnumbered one for a past run the hub never saw."""
    if complete is None:
        assert agent is not None, "only an agent's stream finishes"
        return control("complete", name, complete_data(agent))
    if replay and replay[-1] is complete:
        return b""
    return complete.wire()


def _body(data: bytes) -> HTTPResponseBodyEvent:
    return {"type": "http.response.body", "body": data, "more_body": True}


def _end() -> HTTPResponseBodyEvent:
    return {"type": "http.response.body", "body": b"", "more_body": False}


async def run_stream(
    hub: Hub,
    agent: Any | None,
    last_event_id: int | None,
    history: int,
    peer: tuple[str, int] | None,
    start: HTTPResponseStartEvent,
    send: ASGISendCallable,
    receive: ASGIReceiveCallable,
) -> None:
    """One SSE client from subscription to the end of its stream.

    Ends when the client disconnects, when its agent completes or is removed, at shutdown
    (after a ``shutdown`` event), or when the client is dropped: a send stalled past the
    stall timeout, or still open after the shutdown grace.
    """
    name = agent.name if agent is not None else None
    try:
        sub = hub.subscribe(
            name,
            last_event_id,
            history,
            agent_live=agent is None or agent.is_live,
            peer=peer,
        )
    except Refusal as err:
        await _send_error(send, err)
        return
    client = sub.client
    client.inbox = _inbox(receive)
    use_global = name is None
    limits = hub.limits
    try:
        if not await _send(send, client, start):
            return
        first = [control("connected", name, {"client_id": client.id, "agent": name})]
        if sub.gap is not None:
            first.append(control("gap", name, sub.gap.data()))
        first.extend(_wires(sub.replay, use_global))
        finished = sub.finished
        if finished:
            first.append(_complete_wire(agent, name, sub.replay, sub.complete))
        del sub  # its replay may be thousands of events: not kept for the stream's life
        data = b"".join(first)
        del first
        if not await _send(send, client, _body(data)):
            return
        del data
        if finished:
            await send(_end())
            return
        interval = limits.ping_interval
        client.ping_at = trio.current_time() + interval
        while True:
            if client.gone or client.dropped:
                return
            news = client.has_news
            if not news and trio.current_time() >= client.ping_at:
                # The next ping is due an interval after this one was due, not after this
                # send: idle streams keep the spread their connections had instead of
                # bunching into ever larger rounds of pings at once.
                client.ping_at += interval
                if not await _send(send, client, _body(control("ping", name, {}))):
                    return
                now = trio.current_time()
                if client.ping_at <= now:
                    client.ping_at = now + interval  # the send took a whole interval
                continue
            if not (news and (client.released or client.shutting_down or client.ended)):
                # Wait until woken. Idle: for news, a drop, or the pacemaker (ping due,
                # gone). With news: for the hub's next flush (``Hub.flush_delay``), so
                # that a burst goes out in one send to each client: each send costs the
                # server the same CPU whatever it carries.
                if client.inbox is not None:
                    await client.park()
                else:
                    await _wait(client, receive)
                continue
            runs, gap = client.take()
            chunks = []
            if gap is not None:
                chunks.append(control("gap", name, gap.data()))
            chunks.extend(run.wire(use_global) for run in runs)
            done = client.ended or (not use_global and any(r.completes for r in runs))
            del runs
            if client.shutting_down:
                chunks.append(control("shutdown", name, {}))
                done = True
            for piece in _pieces(chunks):
                if not await _send(send, client, _body(piece)):
                    return
            del chunks
            if done:
                await send(_end())
                return
            client.ping_at = trio.current_time() + interval
    finally:
        hub.unsubscribe(client)
        if client.sending_since is not None and not hub.closing:
            # Left in the middle of a send: the connection took nothing for the whole
            # stall timeout (the sweep cancelled it and shut its socket).
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


def _inbox(receive: ASGIReceiveCallable) -> trio.MemoryReceiveChannel[Any] | None:
    """The memory channel behind ``receive``, when it is one (hypercorn's trio worker):
    the hub's pacemaker then reads it, and the idle stream needs no task waiting on it."""
    channel = getattr(receive, "__self__", None)
    if isinstance(channel, trio.MemoryReceiveChannel) and receive == channel.receive:
        return channel
    return None


async def _wait(client: Client, receive: ASGIReceiveCallable) -> None:
    """An idle stream's wait when its connection cannot be polled: in ``receive()``, until
    the disconnect (``gone``) or ``Client.wake`` cancels the scope. Anything else the
    connection sends (the request's empty body) is let pass.

    A function of its own, not a block of ``run_stream``: a frame that an exception goes
    through keeps a frame object (as large as the frame) for as long as it runs.
    """
    with trio.CancelScope() as waiting:
        client.scope = waiting
        client.waiting = True
        while (await receive())["type"] != "http.disconnect":
            pass
        client.gone = True
    client.scope = None
    client.waiting = False


async def _send(send: ASGISendCallable, client: Client, message: ASGISendEvent) -> bool:
    """One send. False when the stream must end: the client was dropped (its
    ``sending_since`` then stays set, which counts it as a slow disconnect).

    No deadline of its own: hypercorn shields its socket writes from cancellation, so a
    send stalled past the stall timeout is ended by the hub's sweep, which shuts the
    socket (``Hub._drop``); the send then returns. Only a connection that is not
    hypercorn's (no ``inbox``) sends in a scope the hub can cancel: a scope per send
    costs the hot path about 5 us, a tenth of a send, for nothing under hypercorn.
    """
    client.sending_since = trio.current_time()
    if client.inbox is not None:
        await send(message)
    else:
        with trio.CancelScope() as sending:
            client.scope = sending
            await send(message)
        client.scope = None
        if sending.cancelled_caught:
            return False
    if client.dropped:
        return False
    client.sending_since = None
    return True


async def _send_error(send: ASGISendCallable, err: Refusal) -> None:
    body = msgspec.json.encode(err.body())
    await send(
        {
            "type": "http.response.start",
            "status": http_status(err),
            "headers": [(b"content-type", b"application/json; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _no_messages() -> Any:
    """``receive`` for a stream whose connection messages someone else reads."""
    await trio.sleep_forever()


class SSEConnection(TrioASGIHTTPConnection):
    """quart-trio's HTTP connection, letting an ``SSEResponse`` drive its own sending.

    ``SSEApp`` streams without this class's nursery; this is for a stream request that
    reaches ``asgi_app`` some other way (its nursery's message task sees the disconnect
    and cancels the stream).
    """

    async def _send_response(self, send: ASGISendCallable, response: ResponseTypes) -> None:
        if isinstance(response, SSEResponse):
            await response.stream(send, _no_messages)
        else:
            await super()._send_response(send, response)


class SSEApp(QuartTrio):
    """QuartTrio serving its stream routes (GET, HEAD) in the connection's own task.

    Everything Quart does for a request still happens (``handle_request``: guards,
    routing, the view, after-request hooks, error handlers); only quart-trio's request
    nursery with its message and handler tasks is skipped, and once the view has answered
    with an ``SSEResponse`` the stream keeps neither the request nor the response. Other
    responses (errors, 204) are sent as quart-trio would.
    """

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if not _is_stream_request(scope):
            await self.asgi_app(scope, receive, send)
            return
        connection = SSEConnection(self, cast(HTTPScope, scope))
        incoming = connection._create_request_from_scope(send)
        response = await self.handle_request(incoming)
        del incoming
        if isinstance(response, SSEResponse):
            stream = response.stream(send, receive)
            del response, connection
            await stream
            return
        timeout = getattr(response, "timeout", Ellipsis)
        if timeout is Ellipsis:
            timeout = self.config["RESPONSE_TIMEOUT"]
        with trio.move_on_after(math.inf if timeout is None else timeout):
            await connection._send_response(send, response)


def _is_stream_request(scope: Scope) -> bool:
    return (
        scope["type"] == "http"
        and scope["method"] in STREAM_METHODS
        and STREAM_PATH.search(scope["path"]) is not None
    )


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
