"""The line-scanning engine shared by the text and aider extractors.

A batch stays bytes: its lines are joined by ``\\n``, with a ``\\n`` put in front so
every line, the first included, follows a newline, and terminal escapes are stripped
from the bytes. One combined "candidate" pattern run by RE2 (see
:mod:`~trio_wrapper.extract.candidates`) finds the few lines that could mean
something; only those are decoded and looked at in Python. Most lines of agent output
mean nothing and cost only that scan. Text between two interesting lines (a
response's body, a code block's content) is cut out of the batch by position and
decoded once, never line by line. Each stream (stdout, stderr) has its own state,
since the two are read independently and their lines interleave arbitrarily.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from trio_wrapper.core.lines import after_newline
from trio_wrapper.extract.ansi import strip_ansi_bytes
from trio_wrapper.extract.base import with_rules
from trio_wrapper.extract.candidates import CandidateLines
from trio_wrapper.extract.fences import Fence, closes, open_fence
from trio_wrapper.extract.records import MAX_LONG_TEXT, CodeBlock, Record
from trio_wrapper.extract.rules import Rule

# A body keeps at most this many bytes: MAX_LONG_TEXT characters of up to 4 bytes each.
MAX_BODY_BYTES = 4 * MAX_LONG_TEXT


class Body:
    """The text of the lines after an opening line, possibly across batches.

    ``start`` is a position in the current batch's bytes where the body resumes;
    ``parts`` holds what earlier batches contributed. Stored bytes are capped at
    MAX_BODY_BYTES, text at MAX_LONG_TEXT characters (a runaway block must not grow
    without bound), but lines are still counted.
    """

    __slots__ = ("is_open", "nlines", "parts", "size", "start")

    def __init__(self) -> None:
        self.is_open = False
        self.start = 0
        self.parts: list[bytes] = []
        self.size = 0
        self.nlines = 0

    def begin(self, pos: int) -> None:
        self.is_open = True
        self.start = pos
        self.parts = []
        self.size = 0
        self.nlines = 0

    def _add(self, region: bytes) -> None:
        self.nlines += region.count(b"\n") + 1
        if self.size < MAX_BODY_BYTES:
            self.parts.append(region)
            self.size += len(region) + 1

    def close(self, text: bytes, line_start: int) -> tuple[str, int]:
        """End the body before the line starting at ``line_start``; (text, line count)."""
        if not self.parts:
            # All of it is in this batch (most bodies): one slice, decoded as it is.
            self.is_open = False
            if line_start <= self.start:
                return "", 0
            region = text[self.start : line_start - 1]
            return region.decode("utf-8", "replace")[:MAX_LONG_TEXT], region.count(b"\n") + 1
        if line_start > self.start:
            self._add(text[self.start : line_start - 1])
        return self.finish()

    def finish(self) -> tuple[str, int]:
        self.is_open = False
        content = b"\n".join(self.parts).decode("utf-8", "replace")
        self.parts = []
        if len(content) > MAX_LONG_TEXT:
            content = content[:MAX_LONG_TEXT]
        return content, self.nlines

    def carry(self, text: bytes) -> None:
        """End of batch: keep the lines seen so far; the next batch resumes at 1 (its
        first line, after the leading newline)."""
        if self.start <= len(text):
            self._add(text[self.start :])
        self.start = 1


class StreamState:
    """Where one stream is: inside which block, which fence, what is expected next."""

    __slots__ = (
        "block",
        "block_line",
        "body",
        "code",
        "expect",
        "fence",
        "fence_line",
        "fence_prose",
        "header_seps",
        "pending_exec",
    )

    def __init__(self) -> None:
        self.block = 0
        self.block_line = 0
        self.body = Body()
        self.code = Body()
        self.expect = 0
        self.fence: Fence | None = None
        self.fence_line = 0
        self.fence_prose = False
        self.header_seps = 0
        self.pending_exec: list[tuple[str, int]] = []


class LineScanner:
    """Base of the streaming text extractors. Subclasses set ``CANDIDATE`` (lines worth
    a look), ``LINE_BY_LINE`` (blocks whose every line must be looked at), and
    implement :meth:`_line`."""

    CANDIDATE: ClassVar[CandidateLines]
    LINE_BY_LINE: ClassVar[frozenset[int]] = frozenset()
    FORMAT: ClassVar[str] = "text"

    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        self._rules = tuple(rules)
        self._streams: dict[str, StreamState] = {}

    @property
    def format(self) -> str:
        return self.FORMAT

    @property
    def in_code_block(self) -> bool:
        return any(st.fence is not None for st in self._streams.values())

    def take_unknown(self) -> dict[str, int]:
        return {}  # text has no event types

    def feed(self, lines: Sequence[bytes], first_line_num: int, stream: str) -> list[Record]:
        if not lines:
            return []
        text = strip_ansi_bytes(after_newline(lines))
        st = self._streams.get(stream)
        if st is None:
            st = self._streams[stream] = StreamState()
        out: list[Record] = []
        self._scan(st, text, first_line_num, stream, out)
        if self._rules:
            out = with_rules(out, self._rules, text[1:].decode("utf-8", "replace"), first_line_num)
        return out

    def finish(self) -> list[Record]:
        out: list[Record] = []
        for stream, st in self._streams.items():
            self._finish_stream(st, stream, out)
        out.sort(key=_line_of)
        return out

    def _scan(
        self, st: StreamState, text: bytes, first: int, stream: str, out: list[Record]
    ) -> None:
        size = len(text)
        starts = self.CANDIDATE.starts(text)
        n_starts = len(starts)
        next_start = 0  # index in starts of the next candidate not yet passed
        pos = 1  # start of the next line to look at; text[0] is the added newline
        idx = 0
        counted = 1
        line_by_line = self.LINE_BY_LINE
        while pos <= size:
            if st.expect or st.block in line_by_line:
                start = pos
            else:
                while next_start < n_starts and starts[next_start] < pos:
                    next_start += 1
                if next_start == n_starts:
                    break
                start = starts[next_start]
                next_start += 1
            end = text.find(b"\n", start)
            if end < 0:
                end = size
            if start == pos and start > 1:
                idx += 1  # the line right after the last one looked at
            else:
                idx += text.count(b"\n", counted, start)
            counted = start
            line = text[start:end].decode("utf-8", "replace")
            if st.fence is not None:
                # Inside a fence every dialect does the same: wait for its closing line.
                block = self._fence_line(st, line, text, start, end, first + idx)
                if block is not None:
                    self._emit_block(st, block, out)
            else:
                self._line(st, line, text, start, end, first + idx, stream, out)
            pos = end + 1
        if st.body.is_open:
            st.body.carry(text)
        if st.code.is_open:
            st.code.carry(text)

    def _line(
        self,
        st: StreamState,
        line: str,
        text: bytes,
        start: int,
        end: int,
        line_num: int,
        stream: str,
        out: list[Record],
    ) -> None:
        """One line outside a fence: the dialect's own reading."""
        raise NotImplementedError

    def _emit_block(self, st: StreamState, block: CodeBlock, out: list[Record]) -> None:
        """A code block just closed; a dialect may hold some back (codex's echo)."""
        out.append(block)

    # Fences: shared by every dialect.

    def _fence_line(
        self, st: StreamState, line: str, text: bytes, start: int, end: int, line_num: int
    ) -> CodeBlock | None:
        """Inside a fence: close it on its closing line and return the block."""
        assert st.fence is not None
        if not closes(line, st.fence):
            return None
        content, nlines = st.code.close(text, start)
        block = CodeBlock(st.fence_line, st.fence.language, nlines, content)
        st.fence = None
        return block

    def _try_open_fence(self, st: StreamState, line: str, end: int, line_num: int) -> bool:
        if "```" not in line and "~~~" not in line:
            return False
        fence = open_fence(line)
        if fence is None:
            return False
        st.fence = fence
        st.fence_line = line_num
        st.code.begin(end + 1)
        return True

    def _finish_stream(self, st: StreamState, stream: str, out: list[Record]) -> None:
        if st.fence is not None:
            content, nlines = st.code.finish()
            out.append(CodeBlock(st.fence_line, st.fence.language, nlines, content))
            st.fence = None


def _line_of(record: Record) -> int:
    return record.line_num
