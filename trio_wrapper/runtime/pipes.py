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


# A child writing small pieces fast (a line per ``write(2)``) keeps its reader busy with a
# read a few lines long: each costs the daemon a log write and a hand-over, and every
# read and write on the pipe contends for its lock, which slows the child. So in a burst,
# a read that emptied the pipe (it brought less than it asked for) and brought less than
# PAUSE_BELOW_BYTES, or an empty pipe, makes the reader pause this long before the next
# read: the writes of that millisecond come in one read. A burst is known by the last
# wait for the pipe ending within this long (or being a pause), or by two such reads in
# a row, with no wait between (the pipe refilled with a little in between): on a machine
# whose other core runs the writer, the reader may never find the pipe empty. A flood's
# reads are big (a read it empties now and then, mid-write, is not two small ones in a
# row). A slow writer's waits are longer than this: its lines are read as they come.
READ_PAUSE_SECONDS = 0.001
PAUSE_BELOW_BYTES = 64 * 1024


class ReadPacer:
    """When a pipe's reader pauses (above).

    After a read that asked for ``asked`` bytes and brought ``got``, ``after_read(got,
    asked)``; at an empty pipe, ``at_empty_pipe()``. True: pause
    :data:`READ_PAUSE_SECONDS`, then ``waited(…, paused=True)``. False: read on, or at an
    empty pipe wait until it is readable, then ``waited(seconds, paused=False)``. Pure:
    the reader does the waiting."""

    __slots__ = ("_bursting", "_got", "_small")

    def __init__(self) -> None:
        self._got = False  # data came since the last wait
        self._small = False  # the last read, since the last wait, was one that may pause
        self._bursting = False  # the writer writes fast (see above)

    def after_read(self, got: int, asked: int) -> bool:
        small = got < asked and got < PAUSE_BELOW_BYTES  # emptied the pipe, little came
        if small and self._small:
            self._bursting = True  # refilled between two reads: no wait in between
        self._small = small
        self._got = True
        return self._bursting and small

    def at_empty_pipe(self) -> bool:
        # Nothing came after a pause: the burst is over, wait for the pipe again.
        pause = self._got and self._bursting
        self._got = False
        return pause

    def waited(self, seconds: float, *, paused: bool) -> None:
        self._small = False
        self._bursting = paused or seconds < READ_PAUSE_SECONDS
