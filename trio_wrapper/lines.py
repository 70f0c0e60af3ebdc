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

from dataclasses import dataclass, field

DEFAULT_MAX_LINE_BYTES = 64 * 1024


@dataclass(slots=True)
class LineBatch:
    """The lines one read produced. ``cut`` holds indices of pieces cut at the cap."""

    lines: list[bytes] = field(default_factory=list)
    cut: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lines)


class LineSplitter:
    """Incremental splitter: ``feed()`` each chunk, ``flush()`` at end of stream."""

    __slots__ = ("_cut_open", "_max", "_pending")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self._max = max_line_bytes
        self._pending = b""
        # True while the line being assembled has already had cap-sized pieces emitted:
        # then an empty remainder is not a line of its own.
        self._cut_open = False

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)

    def feed(self, chunk: bytes) -> LineBatch:
        batch = LineBatch()
        if not chunk:
            return batch
        data = self._pending + chunk if self._pending else chunk
        parts = data.split(b"\n")
        rest = parts.pop()
        limit = self._max
        continued = self._cut_open
        line_ended = bool(parts)
        if not continued and b"\r" not in data and (not parts or max(map(len, parts)) <= limit):
            # The common case, done in C: nothing to strip, nothing to cut.
            batch.lines = parts
            parts = []
        out = batch.lines
        for part in parts:
            if len(part) > limit or continued:
                self._emit_complete(batch, part, continued)
                continued = False
            elif part.endswith(b"\r"):
                out.append(part[:-1])
            else:
                out.append(part)
        if line_ended:
            self._cut_open = False
        if len(rest) > limit:
            rest = self._emit_cut_pieces(batch, rest)
            self._cut_open = True
        self._pending = rest
        return batch

    def flush(self) -> LineBatch:
        """End of stream: a final line without newline is still a line."""
        batch = LineBatch()
        if self._pending:
            self._emit_complete(batch, self._pending, self._cut_open)
        self._pending = b""
        self._cut_open = False
        return batch

    def _emit_cut_pieces(self, batch: LineBatch, data: bytes) -> bytes:
        """Emit cap-sized pieces of ``data``, marked as cut, while more than a cap's worth
        is left; return the remainder (1..cap bytes)."""
        limit = self._max
        start = 0
        while len(data) - start > limit:
            batch.cut.append(len(batch.lines))
            batch.lines.append(data[start : start + limit])
            start += limit
        return data[start:]

    def _emit_complete(self, batch: LineBatch, line: bytes, continued: bool) -> None:
        """A line whose end is known. After cut pieces, a remainder that was only the
        ``\\r`` of a ``\\r\\n`` is dropped rather than made an empty line."""
        before = len(batch.lines)
        remainder = self._emit_cut_pieces(batch, line) if len(line) > self._max else line
        if remainder.endswith(b"\r"):
            remainder = remainder[:-1]
        if remainder or not (continued or len(batch.lines) > before):
            batch.lines.append(remainder)
