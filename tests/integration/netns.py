"""A network namespace of its own with only loopback up, for the calling thread.

Linux keeps the network namespace per thread: after ``unshare(CLONE_NEWNET)`` the sockets
this thread opens and the processes it starts live in a namespace whose only interface is
``lo``. The fake model server, the daemon and the agents' CLIs all started inside reach
each other on 127.0.0.1 and nothing else: a CLI that tried to phone home gets "network is
unreachable". On the way out the thread goes back to its original namespace (the sockets
opened inside keep working until closed). Needs CAP_SYS_ADMIN (root, or a user namespace):
``NetnsUnavailable`` otherwise.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000


class NetnsUnavailable(Exception):
    """No network namespace can be made here (the reason is the message)."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """Run the block in a fresh network namespace with ``lo`` up (see the module)."""
    if not hasattr(os, "O_RDONLY") or not os.path.exists("/proc/thread-self/ns/net"):
        raise NetnsUnavailable("no /proc/thread-self/ns/net (not Linux?)")
    ip = shutil.which("ip")
    if ip is None:
        raise NetnsUnavailable("the 'ip' command (iproute2) is not installed")
    libc = _libc()
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise NetnsUnavailable(f"unshare(CLONE_NEWNET) refused: {os.strerror(errno)}")
        try:
            done = subprocess.run([ip, "link", "set", "lo", "up"], capture_output=True, text=True)
            if done.returncode != 0:
                raise NetnsUnavailable(f"ip link set lo up: {done.stderr.strip()}")
            yield
        finally:
            if libc.setns(original, CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, f"setns back to the original namespace: {os.strerror(errno)}")
    finally:
        os.close(original)


def reaches_outside() -> bool:
    """Whether a TCP connection to a public address can even be attempted from here (it
    is refused at once, without a route, inside ``loopback_only``)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(("192.0.2.1", 443))  # TEST-NET-1: never answers, but needs a route
        except OSError as exc:
            return exc.errno not in (101, 113)  # ENETUNREACH, EHOSTUNREACH
        return True
