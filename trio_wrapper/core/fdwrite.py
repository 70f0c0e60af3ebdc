"""Writing every byte to a descriptor, however little each write takes. Pure: no trio.

A write into a pipe that is full, or a file on a full disk, may take only part of what it
is given: a pipe returns what fitted when a signal or a ptrace stop comes (py-spy
attached to the extraction worker did that to its answers). A caller that sends framed
messages (a header, then the payload it announces) must send the rest, in order.
"""

from __future__ import annotations

import os


def write_all(fd: int, *parts: bytes | memoryview) -> None:
    """Write every part, in order, however many short writes that takes: one ``writev``
    when the descriptor takes it all, the parts never joined into a copy."""
    views = [memoryview(part) for part in parts if len(part)]
    while views:
        sent = os.writev(fd, views)
        while views and sent >= views[0].nbytes:
            sent -= views[0].nbytes
            views.pop(0)
        if sent:
            views[0] = views[0][sent:]
