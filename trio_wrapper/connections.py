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

_FD_DIR = "/proc/self/fd"
_INET = (socket.AF_INET, socket.AF_INET6)


def abort_connection(peer: tuple[str, int] | None) -> bool:
    """Shut down (both directions) our TCP socket whose peer is ``peer``. True if found."""
    if peer is None:
        return False
    host, port = peer[0], peer[1]
    try:
        names = os.listdir(_FD_DIR)
    except OSError:
        return False
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
            if sock.type != socket.SOCK_STREAM or sock.family not in _INET:
                continue
            remote = sock.getpeername()
            if remote[0] == host and remote[1] == port:
                # shutdown() acts on the socket itself, not just this duplicate descriptor.
                sock.shutdown(socket.SHUT_RDWR)
                return True
    return False
