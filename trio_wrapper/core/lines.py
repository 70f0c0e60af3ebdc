"""Byte stream → lines, with a cap on line length. Pure: no I/O, no trio.

A child can print megabytes without a newline, so a line longer than the cap is cut
into pieces of exactly ``max_line_bytes`` (the last piece holds the 1..cap bytes left);
each piece followed by a continuation is reported in ``cut``.
The cut points depend only on positions in the stream, never on how the stream was
chunked by ``read()``, so any chunking of the same bytes yields the same lines.

Lines are returned as ``bytes`` without their ``\\n`` (and without a ``\\r`` before
it, so PTY output reads the same as pipe output). Decoding is the consumer's choice:
the log file keeps the raw bytes regardless.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from typing import Any, cast, overload

import stringzilla

DEFAULT_MAX_LINE_BYTES = 64 * 1024


# ``count_newlines``: below this size, StringZilla's count (its fixed cost is the lowest);
# from it on, the lookup-table way, a piece of at most COUNT_PIECE_BYTES at a time, unless
# the first COUNT_BY_TABLE_FROM bytes hold lines of LONG_LINE_BYTES or more on average
# (JSON events): StringZilla's search is the faster there.
COUNT_BY_TABLE_FROM = 8 * 1024
COUNT_PIECE_BYTES = 256 * 1024
LONG_LINE_BYTES = 256
# A newline becomes 1, any other byte 0: the sum of the translated bytes is the count.
_NEWLINE_IS_ONE = bytes(int(byte == 0x0A) for byte in range(256))


def count_newlines(data: bytes | bytearray | memoryview) -> int:
    """How many ``\\n`` bytes ``data`` holds.

    Every byte an agent writes is counted this way, and after a flood of ``cat`` it is
    most of what comes between "log complete" and ``completed``. ``bytes.count`` of one
    byte is a plain loop (about 2 GB/s on dense output); StringZilla's count searches
    from newline to newline, 3.4 GB/s on 27-byte lines and 27 on 840-byte ones. Mapping
    every byte through a lookup table (StringZilla's SIMD ``translate``) into a scratch
    piece and summing it (``bytesum``) runs at 11 to 13 GB/s whatever the lines: that way
    for all but small data and long lines (docs/benchmarks.md)."""
    size = len(data)
    if size < COUNT_BY_TABLE_FROM:
        return int(stringzilla.count(data, "\n"))
    view = memoryview(data).cast("B")
    size = len(view)
    head = int(stringzilla.count(view[:COUNT_BY_TABLE_FROM], "\n"))
    if head * LONG_LINE_BYTES < COUNT_BY_TABLE_FROM:
        return head + int(stringzilla.count(view[COUNT_BY_TABLE_FROM:], "\n"))
    # A scratch of its own (no state shared between callers, threads included); at most
    # a quarter of a megabyte, reused from the heap's free memory call after call.
    scratch = memoryview(bytearray(min(size, COUNT_PIECE_BYTES)))
    total = 0
    for start in range(0, size, COUNT_PIECE_BYTES):
        piece = view[start : start + COUNT_PIECE_BYTES]
        out = scratch[: len(piece)]
        stringzilla.translate(piece, _NEWLINE_IS_ONE, out=out)
        total += int(stringzilla.bytesum(out))
    return total


class Lines(Sequence[bytes]):
    """Lines kept as one buffer, split into ``bytes`` objects only when something asks for
    them one by one: the lines are ``data[:end]``, joined by ``\\n`` (``end`` is the
    position of the read's last newline, or ``len(data)``).

    A read of 64 KiB is about a thousand lines: making a ``bytes`` of each costs more than
    everything the text extractor does with the buffer (it scans it whole), and an agent
    that nobody streams never needs them. The buffer is not even sliced: a copy of a
    megabyte read back from the log is a fresh allocation and its page faults.
    """

    __slots__ = ("_count", "_data", "_end", "_list")

    def __init__(self, data: bytes, count: int, end: int | None = None) -> None:
        self._data = data
        self._end = len(data) if end is None else end
        self._count = count
        self._list: list[bytes] | None = None

    @property
    def text(self) -> bytes:
        """The lines joined by ``\\n``."""
        if self._list is not None:
            return b"\n".join(self._list)
        data, end = self._data, self._end
        return data if end == len(data) else data[:end]

    def view(self) -> bytes | memoryview:
        """The lines joined by ``\\n``, without a copy while they are still one buffer."""
        if self._list is not None:
            return b"\n".join(self._list)
        data, end = self._data, self._end
        return data if end == len(data) else memoryview(data)[:end]

    def after_newline(self) -> bytes:
        """``b"\\n" + self.text``, in one copy."""
        if self._list is not None:
            return after_newline(self._list)
        return b"".join((b"\n", memoryview(self._data)[: self._end]))

    def total_length(self) -> int:
        """``sum(map(len, self))``, without splitting the buffer: its lines' bytes are the
        joined text's, less one newline between each two."""
        if self._list is not None:
            return sum(map(len, self._list))
        return self._end - self._count + 1 if self._count else 0

    def views(self) -> Iterable[Any]:
        """The lines one by one, as views into the buffer (StringZilla ``Str``s, read
        through the buffer protocol: what msgspec decodes from), none copied. A JSON
        extractor decodes each line once and drops it: splitting a megabyte of Claude's
        lines into ``bytes`` was an eighth of its time. A view keeps the buffer alive."""
        if self._list is not None:
            return self._list
        if not self._count:
            return []
        text = stringzilla.Str(self._data)
        if self._end < len(self._data):
            text = text[: self._end]  # what followed the last newline: not a line yet
        return cast(Iterable[Any], text.split("\n"))

    def _split_once(self) -> list[bytes]:
        if self._list is not None:
            return self._list
        if not self._count:
            return []
        parts = self._data.split(b"\n")
        if self._end < len(self._data):
            parts.pop()  # what followed the last newline: not a line yet
        return parts

    def _split(self) -> list[bytes]:
        if self._list is None:
            # Split once, kept once (for indexing: rare).
            self._list = self._split_once()
            self._data = b""
            self._end = 0
        return self._list

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[bytes]:
        # Not kept: an event ring holds runs of lines for minutes, and a bytes object per
        # line, allocated amid a flood's short-lived objects, would pin the allocator's
        # arenas long after the flood (the daemon's RSS then ratchets up). One buffer is
        # one allocation; splitting it again costs less than keeping it split.
        return iter(self._split_once())

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...
    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        return self._split()[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Lines | list):
            return self._split() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Lines({self._split()!r})"


def joined(lines: Sequence[bytes]) -> bytes:
    """The lines joined by ``\\n``: a :class:`Lines` already is."""
    return lines.text if type(lines) is Lines else b"\n".join(lines)


def joined_view(lines: Sequence[bytes]) -> bytes | memoryview:
    """The lines joined by ``\\n``, as a view of a :class:`Lines` buffer where possible."""
    return lines.view() if type(lines) is Lines else b"\n".join(lines)


def total_length(lines: Sequence[bytes]) -> int:
    """The bytes of all the lines (newlines not counted); a :class:`Lines` is not split."""
    return lines.total_length() if type(lines) is Lines else sum(map(len, lines))


def after_newline(lines: Sequence[bytes]) -> bytes:
    """``b"\\n"`` and the lines joined by ``\\n``, in one copy."""
    if type(lines) is Lines:
        return lines.after_newline()
    return b"\n".join(chain((b"",), lines)) if lines else b"\n"


class LineBatch:
    """The lines one read produced. ``cut`` holds indices of pieces cut at the cap."""

    __slots__ = ("cut", "lines")

    def __init__(self, lines: Sequence[bytes] | None = None, cut: list[int] | None = None) -> None:
        self.lines: Sequence[bytes] = [] if lines is None else lines
        self.cut: list[int] = [] if cut is None else cut

    def __len__(self) -> int:
        return len(self.lines)

    def __repr__(self) -> str:
        return f"LineBatch({list(self.lines)!r}, cut={self.cut!r})"


def _has_line_over(data: bytes, end: int, limit: int) -> bool:
    """Whether a line of ``data[:end]`` (lines ended by ``\\n``) is longer than ``limit``.

    Such a line holds at least ``limit + 1`` consecutive positions, so one of them is a
    multiple of ``limit``: only the lines through those positions are measured.
    """
    position = limit
    while position < end:
        start = data.rfind(b"\n", 0, position) + 1
        stop = data.find(b"\n", position)
        if stop < 0:
            stop = len(data)
        if stop - start > limit:
            return True
        position = max(position + limit, stop + 1)
    return False


class LineSplitter:
    """Incremental splitter: ``feed()`` each chunk, ``flush()`` at end of stream."""

    __slots__ = ("_cut_open", "_keep_whole", "_max", "_pending")

    def __init__(
        self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, *, keep_whole: bool = True
    ) -> None:
        """``keep_whole``: a plain read's lines are handed as one buffer (:class:`Lines`);
        for consumers that take every line one by one anyway, False splits at once (a
        buffer's line count costs more than the split: ``bytes.count`` is slower than
        ``bytes.split`` for one byte)."""
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self._max = max_line_bytes
        self._keep_whole = keep_whole
        self._pending = b""
        # True while the line being assembled has already had cap-sized pieces emitted:
        # then an empty remainder is not a line of its own.
        self._cut_open = False

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)

    def feed(self, chunk: bytes, *more: bytes) -> LineBatch:
        """The lines ``chunk`` (and the chunks in ``more``, read right after it) end.
        The unfinished line before them and the chunks are joined in one copy: in a
        flood each piece is a megabyte, and a line is nearly always unfinished."""
        if more:
            data = b"".join([self._pending, chunk, *more])
        elif not chunk:
            return LineBatch()
        elif self._pending:
            data = self._pending + chunk
        else:
            data = chunk
        return self._split(data)

    def resumes(self, data: bytes) -> bool:
        """Whether ``data`` begins with the unfinished line (and there is one): then
        :meth:`feed_resumed` takes it without copying it."""
        return bool(self._pending) and data.startswith(self._pending)

    def feed_resumed(self, data: bytes) -> LineBatch:
        """Like :meth:`feed`, for ``data`` that begins with the unfinished line itself
        (:meth:`resumes`): a reader that can go back for those bytes (a log file read
        back) hands them again, and the megabyte after them is not copied."""
        if not self.resumes(data):
            raise ValueError("data does not begin with the unfinished line")
        self._pending = b""
        return self._split(data)

    def _split(self, data: bytes) -> LineBatch:
        if not data:
            return LineBatch()
        limit = self._max
        last = data.rfind(b"\n")
        if (
            last >= 0
            and not self._cut_open
            and len(data) - last - 1 <= limit
            and b"\r" not in data
            and not _has_line_over(data, last, limit)
        ):
            # The common case: nothing to strip, nothing to cut. The lines stay one buffer
            # (``Lines``) until something wants them one by one, or for consumers that
            # take them one by one anyway, are split here at once.
            self._pending = data[last + 1 :]
            if self._keep_whole:
                return LineBatch(Lines(data, count_newlines(data), last))
            parts = data.split(b"\n")
            parts.pop()
            return LineBatch(parts)
        out: list[bytes] = []
        batch = LineBatch(out)
        parts = data.split(b"\n")
        rest = parts.pop()
        continued = self._cut_open
        line_ended = bool(parts)
        for part in parts:
            if len(part) > limit or continued:
                self._emit_complete(out, batch.cut, part, continued)
                continued = False
            elif part.endswith(b"\r"):
                out.append(part[:-1])
            else:
                out.append(part)
        if line_ended:
            self._cut_open = False
        if len(rest) > limit:
            rest = self._emit_cut_pieces(out, batch.cut, rest)
            self._cut_open = True
        self._pending = rest
        return batch

    def flush(self) -> LineBatch:
        """End of stream: a final line without newline is still a line."""
        out: list[bytes] = []
        batch = LineBatch(out)
        if self._pending:
            self._emit_complete(out, batch.cut, self._pending, self._cut_open)
        self._pending = b""
        self._cut_open = False
        return batch

    def _emit_cut_pieces(self, out: list[bytes], cut: list[int], data: bytes) -> bytes:
        """Emit cap-sized pieces of ``data``, marked as cut, while more than a cap's worth
        is left; return the remainder (1..cap bytes)."""
        limit = self._max
        start = 0
        while len(data) - start > limit:
            cut.append(len(out))
            out.append(data[start : start + limit])
            start += limit
        return data[start:]

    def _emit_complete(
        self, out: list[bytes], cut: list[int], line: bytes, continued: bool
    ) -> None:
        """A line whose end is known. After cut pieces, a remainder that was only the
        ``\\r`` of a ``\\r\\n`` is dropped rather than made an empty line."""
        before = len(out)
        remainder = self._emit_cut_pieces(out, cut, line) if len(line) > self._max else line
        if remainder.endswith(b"\r"):
            remainder = remainder[:-1]
        if remainder or not (continued or len(out) > before):
            out.append(remainder)
