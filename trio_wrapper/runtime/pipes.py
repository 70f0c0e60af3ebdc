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
