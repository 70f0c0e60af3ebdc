"""The ASGI/Quart side of SSE: the streaming response, and the app and connection classes
that let it drive its own sending. This is the one place that leans on quart-trio's
private API (``TrioASGIHTTPConnection._create_request_from_scope`` and
``_send_response``); the stream itself (``api.sse_stream``) knows only ASGI ``send`` and
``receive``.

A stream request goes through Quart like any other (host check, token, the route's
checks, CORS headers, JSON errors), but not through Quart's per-request machinery for the
hours it then stays open: ``SSEApp`` handles it in the connection's own task, without the
request nursery and its two tasks, and hands the connection to ``run_stream`` with Quart's
request and response objects let go. Ten thousand idle streams cost about what hypercorn's
bare connections cost (docs/benchmarks-sse.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Coroutine, Iterable
from typing import Any, cast

import trio
from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    HTTPResponseStartEvent,
    HTTPScope,
    Scope,
)
from quart import Response
from quart.typing import ResponseTypes
from quart_trio import QuartTrio
from quart_trio.asgi import TrioASGIHTTPConnection

from trio_wrapper.api.body_drain import serve_draining
from trio_wrapper.api.protocol_errors import head_refusal, send_error
from trio_wrapper.api.sse_stream import StreamedAgent, run_stream
from trio_wrapper.runtime.eventlog import LIMIT_LOG
from trio_wrapper.runtime.hub import Hub

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: don't buffer this response
}

# The stream routes (``api.sse``), by the end of the path: a root path or an absolute URI
# may come before. Quart still does the routing; this only picks the requests it does
# without a nursery.
STREAM_PATH = re.compile(r"/api/(?:agents/[^/]+/(?:runs/[^/]+/)?stream|events)\Z")
STREAM_METHODS = frozenset({"GET", "HEAD"})


class SSEResponse(Response):
    """A stream of one agent's events (``agent`` set) or of all agents (``agent=None``).

    Quart's after-request hooks add their headers (CORS) to it like to any response;
    ``stream`` then takes what the stream needs and leaves the object behind.
    """

    def __init__(
        self,
        hub: Hub,
        agent: StreamedAgent | None,
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


async def _no_messages() -> ASGIReceiveEvent:
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

    # The largest request head served (``limits.max_header_bytes``), set by ``build_app``;
    # a larger one is answered 431 before Quart sees it.
    max_header_bytes: int | None = None

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if self.max_header_bytes is not None:
            refusal = head_refusal(scope, self.max_header_bytes)
            if refusal is not None:
                LIMIT_LOG.refused(refusal)
                # Its body (if any) is not read: the connection cannot be reused.
                await send_error(send, refusal, [(b"connection", b"close")])
                return
        if not _is_stream_request(scope):
            await serve_draining(self.asgi_app, scope, receive, send)
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


__all__ = ["SSEApp", "SSEConnection", "SSEResponse"]
