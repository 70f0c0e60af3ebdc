"""An SSE body written straight to hypercorn's connection, skipping four layers per send.

Each ``http.response.body`` a stream sends goes through hypercorn's ``HTTPStream.app_send``
(an event object), ``H11Protocol.stream_send`` (another), h11's ``Connection.send`` (the
chunk framing, its state checks, a join) and ``TCPServer.protocol_send`` (the lock, a
shielded scope, ``send_all``), paid per client per flush. Skipping them took the daemon
from 78 % to 46 % of a core at 100 clients and 200 flushes a second (about 16 us of the
39 a send cost), and the flush delay, and so the latency, could shrink with it.

For an HTTP/1.1 response hypercorn frames with chunked encoding, ``DirectBody`` does the
last step itself: ``%x\\r\\n`` + data + ``\\r\\n`` (exactly what h11's ``ChunkedWriter``
writes), in one ``sendmsg`` on the connection's socket when nothing else is writing to it
and the socket takes it all (nearly always: an SSE piece is small beside a socket
buffer). What it does not take goes with ``send_all`` on hypercorn's socket stream, under
hypercorn's send lock, shielded as hypercorn shields its own writes. The head and the end
of the body still go through hypercorn, so h11's state stays right (its ``ChunkedWriter``
keeps no count of what it framed).

This leans on hypercorn's private objects (checked on 0.18): the ASGI ``send`` is the bound
``HTTPStream.app_send``, whose ``send`` is the bound ``H11Protocol.stream_send``, whose
``send`` is the bound ``TCPServer.protocol_send`` (``stream``, ``send_lock``), and that
stream's trio socket wraps a standard one (``_sock``). ``find`` walks that chain and
checks every link; anything else (HTTP/2, HTTP/1.0, a HEAD, TLS, another server, a later
hypercorn that changed them) gives None, and the stream sends through ASGI as before.
``tests/api/test_direct_body.py`` checks the chain on the installed hypercorn, so an
upgrade that breaks it fails there rather than silently slowing down.
"""

from __future__ import annotations

import socket
from typing import Any

import h11
import trio
from h11._writers import ChunkedWriter

# What a write failing on a closed or reset connection raises; hypercorn's own send then
# sees the same and closes the stream its way.
_CLOSED = (trio.BrokenResourceError, trio.ClosedResourceError)
_CRLF = b"\r\n"


class DirectBody:
    """Body pieces of one chunked HTTP/1.1 response, written to its socket."""

    __slots__ = ("_connection", "_lock", "_sock", "_stream")

    def __init__(
        self,
        stream: trio.SocketStream,
        lock: trio.Lock,
        connection: h11.Connection,
        sock: socket.socket,
    ) -> None:
        self._stream = stream
        self._lock = lock
        self._connection = connection
        self._sock = sock

    async def send(self, data: bytes) -> bool:
        """Write one non-empty piece as one chunk. False: it was not written (the
        connection is closed, or the response is no longer sending its body); the caller
        then sends it through ASGI, which handles that case as hypercorn does."""
        if self._connection.our_state is not h11.SEND_BODY:
            return False
        head = b"%x\r\n" % len(data)
        if not self._lock.locked():
            # Nothing of hypercorn's is writing: straight into the socket, no await, the
            # chunk's three parts in one ``sendmsg`` (a large piece is not copied).
            try:
                sent = self._sock.sendmsg((head, data, _CRLF), (), socket.MSG_NOSIGNAL)
            except BlockingIOError:
                sent = 0
            except OSError:
                return False
            if sent == len(head) + len(data) + 2:
                return True
            return await self.send_rest(memoryview(b"".join((head, data, _CRLF)))[sent:])
        return await self.send_rest(b"".join((head, data, _CRLF)))

    # The hub's flush writes small pieces itself, stream by stream, without waking the
    # streams' tasks (``runtime.hub.DirectWriter``): ``ready``, then ``write_now``, and
    # whatever the socket did not take goes from the stream's task with ``send_rest``.

    @staticmethod
    def frame(data: bytes) -> bytes:
        """``data`` as one chunk (``frame``): the same for every writer."""
        return frame(data)

    def ready(self) -> bool:
        """The response is sending its body and nothing of hypercorn's is writing."""
        return self._connection.our_state is h11.SEND_BODY and not self._lock.locked()

    def write_now(self, framed: bytes) -> int:
        """Write what the socket takes now of ``framed`` (a whole chunk, ``frame``), no
        await; how many bytes it took, or -1 if the connection is closed. Only when
        ``ready``."""
        # The standard socket object, not its descriptor number, so a connection closed
        # meanwhile fails here (EBADF) instead of writing to whatever reused the number.
        try:
            return self._sock.send(framed, socket.MSG_NOSIGNAL)
        except BlockingIOError:
            return 0
        except OSError:
            return -1

    async def send_rest(self, rest: bytes | memoryview) -> bool:
        """Write the rest of a chunk the socket did not take at once (all of it if it
        took nothing). False: the connection is closed."""
        async with self._lock:
            try:
                # Shielded like hypercorn's own writes: a write cut in the middle would
                # leave a broken chunk on the wire. A stalled client is ended by shutting
                # its socket (``runtime.connections``), which fails this write.
                with trio.CancelScope(shield=True):
                    await self._stream.send_all(rest)
            except _CLOSED:
                return False
        return True


def frame(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body, as h11's ``ChunkedWriter`` writes it."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def find(send: Any) -> DirectBody | None:
    """The direct writer behind an ASGI ``send`` whose response head has gone out, when
    it is hypercorn's HTTP/1.1 chunked response; otherwise None."""
    http_stream = getattr(send, "__self__", None)
    if getattr(send, "__name__", None) != "app_send" or http_stream is None:
        return None
    protocol_send = getattr(http_stream, "send", None)
    protocol = getattr(protocol_send, "__self__", None)
    if getattr(protocol_send, "__name__", None) != "stream_send":
        return None
    connection = getattr(protocol, "connection", None)
    if not isinstance(connection, h11.Connection):
        return None
    if connection.our_state is not h11.SEND_BODY:
        return None
    if not isinstance(getattr(connection, "_writer", None), ChunkedWriter):
        return None  # HTTP/1.0 (no framing), a HEAD or a fixed length
    raw_send = getattr(protocol, "send", None)
    server = getattr(raw_send, "__self__", None)
    if getattr(raw_send, "__name__", None) != "protocol_send":
        return None
    stream = getattr(server, "stream", None)
    lock = getattr(server, "send_lock", None)
    if not isinstance(stream, trio.SocketStream) or not isinstance(lock, trio.Lock):
        return None  # TLS (an SSLStream): only trio may write its records
    sock = getattr(stream.socket, "_sock", None)
    if not isinstance(sock, socket.socket):
        return None
    return DirectBody(stream, lock, connection, sock)


__all__ = ["DirectBody", "find"]
