"""Answering a request only once its body has arrived, so that the connection can serve
its next request.

An answer can be ready before the request's body has all arrived: a 404 for an unknown
agent is decided before the body is parsed. hypercorn (0.18) ends the request cycle when
the answer ends; if the client is then still sending the body, it does not recycle the
connection but closes it, racing with its own reader: on a keep-alive connection the
client's next request was sometimes never answered (``make fuzz`` saw 30 s read timeouts
on small requests that followed a 404 to a 100 KB body). So the end of every answer
waits here until the request's body has arrived (read and dropped), for at most
``DRAIN_SECONDS`` and ``DRAIN_MAX_BYTES``; past either, the answer is sent and the
connection shut down, since it cannot be reused.
"""

from __future__ import annotations

import trio
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)

from trio_wrapper.api.transport import transport_peer
from trio_wrapper.runtime.connections import abort_connection

DRAIN_SECONDS = 10.0
DRAIN_MAX_BYTES = 16 * 1024 * 1024


class RequestBody:
    """``receive`` that notes when the request has no more body to come; ``wait_end``
    reads (and drops) what is left, whoever else reads too."""

    __slots__ = ("_ended", "_receive")

    def __init__(self, receive: ASGIReceiveCallable) -> None:
        self._receive = receive
        self._ended = trio.Event()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def receive(self) -> ASGIReceiveEvent:
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._ended.set()  # the last chunk, or a disconnect
        return message

    async def wait_end(self, max_bytes: int) -> bool:
        """True once the body has ended; False after ``max_bytes`` read (or cancelled)."""

        async def read_rest(done: trio.CancelScope) -> None:
            dropped = 0
            while dropped <= max_bytes:
                message = await self.receive()
                if message["type"] == "http.request":
                    dropped += len(message.get("body", b""))
            done.cancel()  # too much: give up

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_rest, nursery.cancel_scope)
            await self._ended.wait()  # (the app may be reading it too)
            nursery.cancel_scope.cancel()
        return self.ended


async def serve_draining(
    app: ASGIFramework, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
) -> None:
    """``app`` on one HTTP request, its answer's end held until the body has arrived."""
    if scope["type"] != "http":
        await app(scope, receive, send)
        return
    body = RequestBody(receive)
    shut = False

    async def send_after_body(message: ASGISendEvent) -> None:
        nonlocal shut
        if (
            message["type"] == "http.response.body"
            and not message.get("more_body", False)
            and not body.ended
        ):
            with trio.move_on_after(DRAIN_SECONDS):
                await body.wait_end(DRAIN_MAX_BYTES)
            shut = not body.ended
        await send(message)
        if shut:
            abort_connection(transport_peer(scope))

    await app(scope, body.receive, send_after_body)


__all__ = ["DRAIN_MAX_BYTES", "DRAIN_SECONDS", "RequestBody", "serve_draining"]
