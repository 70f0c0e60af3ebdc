"""Ending a TCP connection the HTTP server will not let go of.

hypercorn (0.18) writes to a connection inside a *shielded* cancel scope, so when a client
stops reading, cancelling our side cannot interrupt the write that is stuck on it: neither
our stall deadline nor hypercorn's own graceful shutdown gets through. Shutting the socket
down at the OS level does: the blocked send fails, hypercorn sees the connection closed,
and everything above it unwinds. The socket is found by its peer address among our own
descriptors; this runs only for a stalled client, never per event.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

_FD_DIR = "/proc/self/fd"
_INET = (socket.AF_INET, socket.AF_INET6)


def _connected_tcp_sockets() -> Iterator[socket.socket]:
    """A duplicate of each connected TCP socket we hold; closed after each step."""
    try:
        names = os.listdir(_FD_DIR)
    except OSError:
        return
    for name in names:
        try:
            dup = os.dup(int(name))
        except (OSError, ValueError):
            continue
        try:
            sock = socket.socket(fileno=dup)  # ENOTSOCK for files and pipes
        except OSError:
            os.close(dup)
            continue
        with sock, contextlib.suppress(OSError):
            if sock.type == socket.SOCK_STREAM and sock.family in _INET:
                sock.getpeername()  # ENOTCONN for listeners
                yield sock


def abort_connection(peer: tuple[str, int] | None) -> bool:
    """Shut down (both directions) our TCP socket whose peer is ``peer``. True if found."""
    if peer is None:
        return False
    for sock in _connected_tcp_sockets():
        remote = sock.getpeername()
        if remote[0] == peer[0] and remote[1] == peer[1]:
            # shutdown() acts on the socket itself, not just this duplicate descriptor.
            sock.shutdown(socket.SHUT_RDWR)
            return True
    return False


def abort_server_connections(port: int) -> int:
    """Shut down every connection accepted on our listening ``port``; how many there were.

    At the end of a shutdown: hypercorn keeps idle keep-alive connections open until its
    graceful timeout, which would hold the daemon's exit for nothing.
    """
    count = 0
    for sock in _connected_tcp_sockets():
        if sock.getsockname()[1] == port:
            sock.shutdown(socket.SHUT_RDWR)
            count += 1
    return count
