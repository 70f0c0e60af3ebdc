"""The run's events file (``<stamp>-events.jsonl``): one JSON object a line, each with
its ``timestamp``: the status changes, and every extraction record as it is found.

Records arrive already encoded (:class:`~trio_wrapper.extract.found.Found`), so they are
stamped as bytes: records are tagged structs, every line starts with ``{"type":`` (and no
JSON string holds a raw newline), so the timestamp goes in front of each by one split and
join, then in front of the first, which is written on its own (one copy less).

Blocking writes straight to the OS, like the log files: a few kilobytes into the page
cache cost less than a hop to a worker thread. ``OSError`` goes to the caller, and a
write the disk took only part of (no space) is taken back: the file never holds half a
line, so the lines written after space returns still read.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from stringzilla import Str

from trio_wrapper.core.models import StateEvent
from trio_wrapper.core.timefmt import now_local, parse_rfc3339, rfc3339
from trio_wrapper.extract.found import Found
from trio_wrapper.extract.records import RECORD_TYPES
from trio_wrapper.extract.store import ExtractionStore
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
        # StringZilla's split gives views (no bytes per record) and its SIMD search
        # finds the starts: a third less than ``bytes.replace`` on Claude's batches.
        stamped = memoryview((b"\n" + stamp).join(Str(data).split(_RECORD_START)))[_TYPE_LEN:]
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


# ---- reading a past run's events back ---------------------------------------------------

_RECORD_PREFIX = b'{"timestamp":'  # a record line; a status change starts with {"type":
_TYPE_KEY = b',"type":"'
_KIND_INDEX = {kind.encode(): index for index, kind in enumerate(RECORD_TYPES)}
# Records handed to the store at once while an events file is read back.
READ_BATCH = 1000
_decode = msgspec.json.Decoder().decode


@dataclass(frozen=True, slots=True)
class PastEvent:
    """One line of an events file as an SSE event: ``extraction`` (``data`` the record,
    exactly as it was streamed) or ``state`` (``data`` its ``state`` and ``detail``).
    ``seq``: its place in the file among the lines that read (1 for the first)."""

    seq: int
    type: str
    data: dict[str, Any]
    created: float | None


def _lines(path: Path) -> Iterator[bytes]:
    """The file's whole lines (a last line without its newline was cut short: skipped)."""
    with path.open("rb") as file:
        for line in file:
            if line.endswith(b"\n"):
                yield line[:-1]


def _record(line: bytes) -> tuple[bytes, int] | None:
    """A record line without its timestamp (``{"type":…}``, as the store and SSE have it)
    and its type's index; None for a status change or a line that is not a record."""
    if not line.startswith(_RECORD_PREFIX):
        return None
    at = line.find(_TYPE_KEY)
    if at < 0:
        return None
    start = at + len(_TYPE_KEY)
    kind = _KIND_INDEX.get(line[start : line.find(b'"', start)])
    if kind is None:
        return None
    return b"{" + line[at + 1 :], kind


def read_records(path: Path, store: ExtractionStore) -> None:
    """Feed every record of an events file to ``store``, in file order, a batch at a time:
    the store keeps its window (``limits.max_records`` of each type, the text bound), so
    memory stays bounded whatever the file's size. Counts are added to the store's as
    they are read. A missing or unreadable file adds nothing. Blocking: run it in a
    worker thread."""

    def flush(data: list[bytes], kinds: bytearray) -> None:
        found = Found(b"\n".join(data) + b"\n", bytes(kinds))
        store.add(found, found.counts())

    data: list[bytes] = []
    kinds = bytearray()
    with contextlib.suppress(OSError):
        for line in _lines(path):
            record = _record(line)
            if record is None:
                continue
            data.append(record[0])
            kinds.append(record[1])
            if len(data) >= READ_BATCH:
                flush(data, kinds)
                data, kinds = [], bytearray()
    if data:
        flush(data, kinds)


def read_events(
    path: Path, *, after: int = 0, last: int | None = None
) -> tuple[list[PastEvent], int]:
    """The events an SSE client of a past run is replayed: every record and status
    change of its events file, numbered in file order; those after ``after`` (a
    ``Last-Event-ID``), at most the ``last`` newest. And how many the file numbers in all
    (the id of its last event). A missing file has none. Blocking: a worker thread."""
    kept: deque[tuple[int, bytes]] = deque(maxlen=last)
    seq = 0
    with contextlib.suppress(OSError):
        for line in _lines(path):
            if not line.startswith(b"{"):
                continue
            seq += 1
            if seq > after:
                kept.append((seq, line))
    events = []
    for number, line in kept:
        try:
            obj = _decode(line)
        except msgspec.DecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        stamp = obj.pop("timestamp", None)
        moment = parse_rfc3339(stamp) if isinstance(stamp, str) else None
        created = moment.timestamp() if moment is not None else None
        if "line_num" in obj:
            events.append(PastEvent(number, "extraction", obj, created))
        elif obj.get("type") == "state":
            data = {"state": obj.get("state"), "detail": obj.get("detail", "")}
            events.append(PastEvent(number, "state", data, created))
    return events, seq
