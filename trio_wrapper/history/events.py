"""The run's events file (``<stamp>-events.jsonl``): one JSON object a line, each with
its ``timestamp``: the status changes, and every extraction record as it is found.

Records arrive already encoded (:class:`~trio_wrapper.extract.found.Found`), so they are
stamped as bytes: records are tagged structs, every line starts with ``{"type":`` (and no
JSON string holds a raw newline), so the timestamp goes in front of each by one replace,
then in front of the first, which is written on its own (one copy less).

Blocking writes straight to the OS, like the log files: a few kilobytes into the page
cache cost less than a hop to a worker thread. ``OSError`` goes to the caller, and a
write the disk took only part of (no space) is taken back: the file never holds half a
line, so the lines written after space returns still read.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import msgspec

from trio_wrapper.core.models import StateEvent
from trio_wrapper.core.timefmt import now_local, rfc3339
from trio_wrapper.history.runfiles import open_append, write_prefix

_encoder = msgspec.json.Encoder()
_RECORD_START = b'\n{"type":'  # how every encoded record but the first begins
_TYPE_LEN = len(b'{"type":')


class EventsFile:
    """An open events file, append-only."""

    __slots__ = ("_fd", "_size")

    def __init__(self, path: Path) -> None:
        self._fd: int | None = open_append(path)
        self._size = os.fstat(self._fd).st_size  # where the last whole line ends

    def write_state(self, state: str, detail: str) -> None:
        """A status change: ``{"type": "state", "state", "detail", "timestamp"}``."""
        if self._fd is None:
            return
        event = StateEvent(state=state, detail=detail, timestamp=rfc3339(now_local()))
        self._write(self._fd, _encoder.encode(event) + b"\n")

    def write_records(self, data: bytes) -> None:
        """Encoded records (JSON lines, each a ``{"type": …}`` object), stamped with now."""
        if self._fd is None:
            return
        stamp = b'{"timestamp":' + _encoder.encode(rfc3339(now_local())) + b',"type":'
        stamped = memoryview(data.replace(_RECORD_START, b"\n" + stamp))[_TYPE_LEN:]
        self._write(self._fd, stamp, stamped)

    def _write(self, fd: int, *parts: bytes | memoryview) -> None:
        total = 0
        for part in parts:
            written, error = write_prefix(fd, part)
            total += written
            if error is not None:
                if total:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, self._size)
                raise error
        self._size += total

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
