"""Pipe buffers sized for floods."""

from __future__ import annotations

import contextlib
import fcntl

# A bigger pipe buffer lets a fast writer go on while its reader is busy: a child that
# floods its stdout, or the daemon and its extraction worker, each with work in hand.
PIPE_BYTES = 1024 * 1024


def grow_pipe(fd: int) -> None:
    """Give the pipe at ``fd`` a :data:`PIPE_BYTES` buffer, where the system allows."""
    with contextlib.suppress(OSError, AttributeError):  # not a pipe (PTY), or over the limit
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


# The smallest read asked for: a page, what one line or a few of a slow writer need.
MIN_READ = 4096


def next_read_size(got: int, asked: int, most: int) -> int:
    """How much the next read of a pipe asks for, after one that asked ``asked`` and got
    ``got``: all it may (``most``) when the read filled what it asked (more is waiting),
    else twice what came, at least :data:`MIN_READ`.

    ``os.read(fd, n)`` asks malloc for ``n`` bytes and shrinks them to what came. Asked
    for a megabyte, malloc takes it from the heap's large free regions (the ones a trim
    gives back to the kernel), so a slow writer's 80-byte line lands at the start of
    one, on a page of its own; an event ring keeps such lines for minutes, and each pins
    its page. In a soak whose floods grew the heap to hundreds of megabytes, the resident
    memory measured quiet grew wave after wave. Asked for a page, malloc places it in a
    hole of about that size, beside objects already there. A flood still reads
    ``most`` at a time from its second read on."""
    if got >= asked:
        return most
    return min(most, max(MIN_READ, 2 * got))
