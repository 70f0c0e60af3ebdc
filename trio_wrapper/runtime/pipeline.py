"""Everything after the log file: bytes → lines → observers (extraction, SSE, metrics).

Capture comes first. The readers only read and append to the log file, then hand the
chunk here without waiting; this task does the line work behind them. While a reader is
busy (its last read filled the buffer: the child writes faster than we read) this task
stays out of its way, and when more than ``memory_budget`` bytes are waiting, chunks are
no longer kept in memory: their place in the log file is, and they are read back from
there (the page cache) later. So a child can flood at disk speed, the log is complete
as soon as it stops, and the lines, counts and extractions follow, none lost.

One queue for both streams keeps the order in which chunks were read, so line numbers
count lines across stdout and stderr in read order.

Faults stay here. Bytes that are neither in memory nor readable from the log (the log
could not take them, or was truncated, or a read-back failed) cannot be made into lines:
they are a gap, counted and reported through ``lost``, never an exception. At a gap the
line in progress ends (it is delivered as it is), so lines are never glued across it.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from trio_wrapper.core.lines import LineBatch, LineSplitter

MEMORY_BUDGET = 4 * 1024 * 1024  # chunks kept in memory before falling back to the file
READ_BACK = 1024 * 1024  # bytes read back from a log file at a time
# A busy reader is left alone at most this long before one piece of line work is done, so
# counts and extractions keep moving even under a flood that never lets up.
MAX_DEFER_SECONDS = 0.01
# Chunks of one stream waiting in memory go through line work together, up to this many
# bytes: a child writing a line per ``write(2)`` gives a read per line whenever the
# daemon keeps up, and each piece of line work has a fixed cost downstream (observers,
# a message to the extraction worker and its answer, a record batch published, an SSE
# delivery). Waiting chunks are only there while the daemon is behind, so this adds no
# delay when output is slow: the first chunk is worked on as soon as it comes.
COALESCE_BYTES = 1024 * 1024

Deliver = Callable[[str, LineBatch], None]
Ready = Callable[[], Awaitable[None]]
# (stream, bytes that will never be lines, why: None when the caller already knows)
Lost = Callable[[str, int, str | None], None]


class _Pending:
    """A chunk waiting for line work: in memory (``data``, and the chunks read right after
    it in ``more``), only on disk (``data=None``), or nowhere (``gap``: bytes the log could
    not take while memory was full)."""

    __slots__ = ("data", "eof", "gap", "length", "more", "offset", "stream")

    def __init__(
        self,
        stream: str,
        offset: int,
        length: int,
        data: bytes | None,
        eof: bool = False,
        gap: bool = False,
    ) -> None:
        self.stream = stream
        self.offset = offset
        self.length = length
        self.data = data
        self.more: list[bytes] | None = None
        self.eof = eof
        self.gap = gap


class LinePipeline:
    def __init__(
        self,
        log_paths: dict[str, Path],
        deliver: Deliver,
        *,
        max_line_bytes: int,
        keep_whole: bool = True,
        memory_budget: int = MEMORY_BUDGET,
        ready: Ready | None = None,
        read_fds: dict[str, int] | None = None,
        lost: Lost | None = None,
    ) -> None:
        """``ready``: awaited before each piece of line work, so a consumer that cannot
        take more yet (the extraction worker is behind) holds the line work back; the
        readers never wait, and what they read meanwhile waits in the log file.

        ``read_fds``: descriptors of the logs to read back from (the caller's, open for
        reading, never closed here): a log deleted by someone meanwhile is still read
        whole through them. Without, the logs are opened by path when first needed.
        ``lost``: told of every gap (see the module's doc)."""
        self._log_paths = log_paths
        self._deliver = deliver
        self._ready = ready
        self._lost = lost
        self._given_fds = dict(read_fds or {})
        self._splitters = {
            stream: LineSplitter(max_line_bytes, keep_whole=keep_whole) for stream in log_paths
        }
        self._budget = memory_budget
        self._queue: deque[_Pending] = deque()
        self._queued_bytes = 0
        self._open_streams = set(log_paths)
        self._busy: set[str] = set()
        self._wakeup = trio.Event()
        self._read_fds: dict[str, int] = {}
        self.deferred_bytes = 0  # how much went by way of the file: a figure for tests
        self.deliveries = 0  # batches handed on: a figure for tests
        self.done = trio.Event()
        self._idle = trio.Event()

    # ---- the readers' side: synchronous, never waits --------------------------------

    def submit(
        self, stream: str, offset: int, chunk: bytes, *, busy: bool, stored: int | None = None
    ) -> None:
        """A chunk read, its first ``stored`` bytes (all by default) now in the log file at
        ``offset``; the rest the log could not take. ``busy``: the read filled the buffer."""
        length = len(chunk)
        stored = length if stored is None else stored
        if busy:
            self._busy.add(stream)
        else:
            self._busy.discard(stream)
        if self._queued_bytes + length <= self._budget:
            self._queued_bytes += length
            last = self._queue[-1] if self._queue else None
            if (
                last is not None
                and last.data is not None
                and last.stream == stream
                and last.length + length <= COALESCE_BYTES
            ):
                # Right behind a chunk of its stream still waiting: one item, one piece
                # of line work. A child writing a line per ``write(2)`` gives a read per
                # line; an item per read cost more than reading it.
                if last.more is None:
                    last.more = [chunk]
                else:
                    last.more.append(chunk)
                last.length += length
            else:
                self._queue.append(_Pending(stream, offset, length, chunk))
        else:
            if stored:
                self.deferred_bytes += stored
                self._defer(stream, offset, stored, gap=False)
            if stored < length:
                # Neither in memory nor on disk: these bytes can never become lines.
                self._defer(stream, 0, length - stored, gap=True)
        self._wakeup.set()

    def _defer(self, stream: str, offset: int, length: int, *, gap: bool) -> None:
        last = self._queue[-1] if self._queue else None
        if (
            last is not None
            and last.data is None
            and not last.eof
            and last.gap == gap
            and last.stream == stream
            and (gap or last.offset + last.length == offset)
        ):
            last.length += length  # one contiguous range on disk, or one gap
        else:
            self._queue.append(_Pending(stream, offset, length, None, gap=gap))

    def idle(self, stream: str) -> None:
        """The reader found its pipe empty: line work may go ahead."""
        if stream in self._busy:
            self._busy.discard(stream)
            self._wakeup.set()

    def end(self, stream: str) -> None:
        self._busy.discard(stream)
        self._queue.append(_Pending(stream, 0, 0, None, eof=True))
        self._wakeup.set()

    # ---- the line work ----------------------------------------------------------------

    async def run(self) -> None:
        try:
            while self._open_streams:
                while not self._queue:
                    await self._wakeup.wait()
                    self._wakeup = trio.Event()
                if self._busy:
                    with trio.move_on_after(MAX_DEFER_SECONDS):
                        while self._busy:
                            await self._wakeup.wait()
                            self._wakeup = trio.Event()
                if self._ready is not None:
                    await self._ready()
                self._step()
                if not self._open_streams:
                    break  # ``done`` is set before anyone waiting for idle wakes
                if not self._queue:
                    self._idle.set()
                    self._idle = trio.Event()
                await trio.lowlevel.checkpoint()
        finally:
            for stream, fd in self._read_fds.items():
                if stream not in self._given_fds:
                    os.close(fd)
            self._read_fds.clear()
            self.done.set()
            self._idle.set()

    async def wait_idle(self) -> None:
        """Until everything submitted so far has been through line work."""
        while self._queue and not self.done.is_set():
            await self._idle.wait()

    def _step(self) -> None:
        item = self._queue.popleft()
        stream = item.stream
        splitter = self._splitters[stream]
        if item.eof:
            self._open_streams.discard(stream)
            batch = splitter.flush()
        elif item.data is not None:
            self._queued_bytes -= item.length
            batch = splitter.feed(item.data, *item.more or ())
        elif item.gap:
            batch = self._gap(stream, item.length, None)
        else:
            piece = min(item.length, READ_BACK)
            if piece < item.length:
                self._queue.appendleft(
                    _Pending(stream, item.offset + piece, item.length - piece, None)
                )
            batch, got, why = self._feed_read_back(splitter, stream, item.offset, piece)
            if got < piece:
                missing = self._gap(stream, piece - got, why)
                batch = _joined(batch, missing)
        if batch.lines:
            self.deliveries += 1
            self._deliver(stream, batch)

    def _feed_read_back(
        self, splitter: LineSplitter, stream: str, offset: int, length: int
    ) -> tuple[LineBatch, int, str | None]:
        """The lines of ``length`` bytes of the log at ``offset``: (them, how many bytes
        the log gave, why fewer). The line left unfinished before ``offset`` is in the
        log right before it: read again with the piece, it spares copying the megabyte
        to put that line in front (a third of the line work of a flood read back)."""
        back = splitter.pending_bytes if offset >= splitter.pending_bytes else 0
        data, why = self._read_back(stream, offset - back, length + back)
        if back and splitter.resumes(data):
            return splitter.feed_resumed(data), len(data) - back, why
        if back:
            # The log does not hold that line there (it could not take some of it, or
            # was changed under us): the piece alone, joined to the line in memory.
            data = data[back:]
        return splitter.feed(data), len(data), why

    def _gap(self, stream: str, length: int, why: str | None) -> LineBatch:
        """``length`` bytes of ``stream`` will never be lines: say so; the line they cut
        ends here (returned, to be delivered)."""
        if self._lost is not None:
            self._lost(stream, length, why)
        return self._splitters[stream].flush()

    def _read_back(self, stream: str, offset: int, length: int) -> tuple[bytes, str | None]:
        """Up to ``length`` bytes from the log at ``offset``; fewer (and why) if the log
        cannot give them: gone before it was opened, truncated, a read error."""
        parts: list[bytes] = []
        try:
            fd = self._read_fds.get(stream)
            if fd is None:
                fd = self._given_fds.get(stream)
                if fd is None:
                    fd = os.open(self._log_paths[stream], os.O_RDONLY | os.O_CLOEXEC)
                self._read_fds[stream] = fd
            while length > 0:
                data = os.pread(fd, length, offset)
                if not data:
                    return b"".join(parts), f"{stream} log was truncated under its reader"
                parts.append(data)
                offset += len(data)
                length -= len(data)
        except OSError as exc:
            return b"".join(parts), f"cannot read back {stream} log: {exc.strerror or exc}"
        return b"".join(parts), None


def _joined(first: LineBatch, second: LineBatch) -> LineBatch:
    """Two batches of one stream as one: ``cut`` indices of the second move up."""
    if not second.lines:
        return first
    if not first.lines:
        return second
    offset = len(first.lines)
    return LineBatch([*first.lines, *second.lines], [*first.cut, *(i + offset for i in second.cut)])
