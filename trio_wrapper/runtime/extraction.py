"""Where an agent's lines are extracted: in the daemon, or in the extraction worker.

Both sides take the lines of each read in order (``feed``, which never waits) and hand
what they found, encoded (:class:`Found`), to the agent's ``publish``, in line order.

- :class:`LocalExtraction` runs the extractor right here, at once.
- :class:`RemoteExtraction` sends the lines to the shared :class:`ExtractionWorker`
  process and publishes its answers as they come back: extraction then costs the
  daemon's core almost nothing. Batches stay held until answered, so if the worker dies
  (or an agent is cancelled before its answers came) they are extracted here instead,
  and nothing is lost: from then on that run extracts locally.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec
import trio

from trio_wrapper.core.lines import joined_view
from trio_wrapper.extract import WHOLE_BUFFER_FORMATS, Extractor, Rule, make_extractor
from trio_wrapper.extract.found import Found
from trio_wrapper.extract.store import ExtractionStore
from trio_wrapper.extract.worker import (
    Extracted,
    Feed,
    Finish,
    FrameError,
    Hello,
    Open,
    ReplyReader,
    frame,
)
from trio_wrapper.runtime.heap import worker_environ
from trio_wrapper.runtime.pipes import grow_pipe

log = logging.getLogger(__name__)
WORKER_STOPPED = "it was stopped"

Publish = Callable[[Found], None]

# Bytes of lines all runs together may have at the worker, unanswered, before their
# pipelines wait (the readers never do: capture goes on, and each pipeline reads back
# from its log file later). Enough to keep the worker busy while the daemon is.
MAX_IN_FLIGHT = 8 * 1024 * 1024
WORKER_READ = 1024 * 1024
SMALL_WRITE = 64 * 1024
WORKER_EXIT_GRACE = 1.0


class ExtractionSide(Protocol):
    @property
    def keep_whole(self) -> bool:
        """How the pipeline should hand lines over (see ``LineSplitter``)."""
        ...

    def feed(self, lines: Sequence[bytes], first_line_num: int, stream: str) -> None:
        """The lines of one read, in order. Never waits."""
        ...

    async def wait_room(self) -> None:
        """Until more lines may be fed without holding too many unanswered."""
        ...

    async def finish(self) -> None:
        """End of output: once this returns, everything fed has been published."""
        ...

    def finish_now(self) -> None:
        """The same without waiting (the agent is being cancelled)."""
        ...


class LocalExtraction:
    """The extractor in the daemon's own process."""

    def __init__(self, extractor: Extractor, store: ExtractionStore, publish: Publish) -> None:
        self._extractor = extractor
        self._store = store
        self._publish = publish
        self._finished = False

    @property
    def keep_whole(self) -> bool:
        return self._extractor.format in WHOLE_BUFFER_FORMATS

    def feed(self, lines: Sequence[bytes], first_line_num: int, stream: str) -> None:
        found = Found.of(self._extractor.feed(lines, first_line_num, stream))
        self._note_state()
        self._publish(found)

    async def wait_room(self) -> None:
        return

    async def finish(self) -> None:
        self.finish_now()

    def finish_now(self) -> None:
        if not self._finished:
            self._finished = True
            found = Found.of(self._extractor.finish())
            self._note_state()
            self._publish(found)

    def _note_state(self) -> None:
        self._store.format = self._extractor.format
        self._store.in_code_block = self._extractor.in_code_block
        unknown = self._extractor.take_unknown()
        if unknown:
            self._store.add_unknown(unknown)


def local_extraction(
    fmt: str, rules: Sequence[Rule], store: ExtractionStore, publish: Publish
) -> LocalExtraction:
    return LocalExtraction(make_extractor(fmt, rules), store, publish)


class _Batch:
    __slots__ = ("first_line_num", "lines", "size", "stream")

    def __init__(self, lines: Sequence[bytes], first_line_num: int, stream: str, size: int):
        self.lines = lines
        self.first_line_num = first_line_num
        self.stream = stream
        self.size = size


class RemoteExtraction:
    """One run's extraction in the worker process."""

    keep_whole = True  # lines go to the worker as one buffer: never split them here

    def __init__(
        self,
        worker: ExtractionWorker,
        run: int,
        fmt: str,
        rules: Sequence[Rule],
        store: ExtractionStore,
        publish: Publish,
    ) -> None:
        self._worker = worker
        self._run = run
        self._format = fmt
        self._rules = rules
        self._store = store
        self._publish = publish
        self._in_flight: deque[_Batch] = deque()
        self._finishing = False
        self._finished = trio.Event()
        self._local: LocalExtraction | None = None

    @property
    def run(self) -> int:
        return self._run

    @property
    def is_local(self) -> bool:
        """True once this run extracts in the daemon (the worker died or was left)."""
        return self._local is not None

    def feed(self, lines: Sequence[bytes], first_line_num: int, stream: str) -> None:
        if self._local is not None:
            self._local.feed(lines, first_line_num, stream)
            return
        data = joined_view(lines)
        size = len(data)
        self._in_flight.append(_Batch(lines, first_line_num, stream, size))
        self._worker.send(Feed(self._run, first_line_num, stream, len(lines), size), data)

    async def wait_room(self) -> None:
        await self._worker.wait_room()

    async def finish(self) -> None:
        if self._local is not None:
            self.finish_now()
            return
        if not self._finishing:
            self._finishing = True
            self._worker.send(Finish(self._run))
        await self._finished.wait()

    def finish_now(self) -> None:
        if self._finished.is_set():
            return
        self.go_local("the agent ended before the worker answered")
        assert self._local is not None
        self._local.finish_now()
        self._finished.set()

    def on_reply(self, reply: Extracted, data: bytes, kinds: bytes) -> None:
        """An answer from the worker: to the oldest batch sent, or to Finish."""
        if self._local is not None:
            return  # the batches it answers were already extracted here
        if not reply.finished:
            self._worker.answered(self._in_flight.popleft().size)
        self._store.format = reply.format
        self._store.in_code_block = reply.in_code_block
        if reply.unknown:
            self._store.add_unknown(reply.unknown)
        self._publish(Found(data, kinds, reply.usage))
        if reply.finished:
            self._worker.forget(self._run)
            self._finished.set()

    def go_local(self, reason: str) -> None:
        """Extract here from now on, starting with every batch the worker still holds."""
        if self._local is not None:
            return
        log.debug(
            "run %d extracts locally: %s",
            self._run,
            reason,
            extra={"event": "extraction_local", "reason": reason},
        )
        self._worker.forget(self._run)
        if not self._finishing:
            self._worker.send(Finish(self._run))  # frees the worker's state; answer ignored
        # The format the worker's extractor reached (``auto`` may have decided): a fresh
        # extractor does not detect again. Its other state (sessions seen, an open code
        # block) starts afresh: see docs/decisions.md.
        pending, self._in_flight = self._in_flight, deque()
        self._worker.answered(sum(batch.size for batch in pending))
        try:
            local = local_extraction(self._store.format, self._rules, self._store, self._publish)
            self._local = local
            for batch in pending:
                local.feed(batch.lines, batch.first_line_num, batch.stream)
            if self._finishing:
                local.finish_now()
        finally:
            # Even if extracting here failed, whoever waits for the end is not left waiting.
            if self._finishing:
                self._finished.set()


class ExtractionWorker:
    """The worker process, shared by every agent that extracts remotely.

    ``run`` (in the supervisor's nursery) starts it and owns it: a writer task sends the
    queued frames, a reader task routes answers to their run. When the process dies,
    every open run goes local and ``open`` gives local extractions from then on.
    """

    def __init__(self, rules: Sequence[Rule] = (), *, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._rules = list(rules)
        self._max_in_flight = max_in_flight
        self.bytes_in_flight = 0
        self._room = trio.Event()
        self._room.set()
        self._runs: dict[int, RemoteExtraction] = {}
        self._next_run = 1
        self._outgoing: deque[bytes | memoryview] = deque([frame(Hello(pickle.dumps(self._rules)))])
        self._wakeup = trio.Event()
        self.alive = True
        self.process: trio.Process | None = None
        self.command = [sys.executable, "-m", "trio_wrapper.extract.worker"]

    def open(self, fmt: str, store: ExtractionStore, publish: Publish) -> ExtractionSide:
        if not self.alive:
            return local_extraction(fmt, self._rules, store, publish)
        run = self._next_run
        self._next_run += 1
        remote = RemoteExtraction(self, run, fmt, self._rules, store, publish)
        self._runs[run] = remote
        self.send(Open(run, fmt))
        return remote

    def send(self, message: Open | Feed | Finish, payload: bytes | memoryview = b"") -> None:
        if self.alive:
            self._outgoing.append(frame(message))
            if payload:
                self._outgoing.append(payload)
                self.bytes_in_flight += len(payload)
                if self.bytes_in_flight > self._max_in_flight and self._room.is_set():
                    # One Event for every waiter: a new one only once the last was set.
                    self._room = trio.Event()
            self._wakeup.set()

    def answered(self, size: int) -> None:
        """``size`` bytes of lines sent are answered (or taken back): room for more."""
        self.bytes_in_flight -= size
        if self.bytes_in_flight <= self._max_in_flight:
            self._room.set()

    async def wait_room(self) -> None:
        await self._room.wait()

    def forget(self, run: int) -> None:
        self._runs.pop(run, None)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            process = await trio.lowlevel.open_process(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=worker_environ(os.environ, sys._xoptions),
            )
        except OSError as exc:
            self._die(f"cannot start: {exc}")
            task_status.started()
            return
        self.process = process
        for pipe in (process.stdin, process.stdout):
            if isinstance(pipe, trio.lowlevel.FdStream):
                grow_pipe(pipe.fileno())
        task_status.started()
        ended = False  # its output ended: it exited (or is about to), it was not stopped
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write, process, nursery.cancel_scope)
                await self._read(process)
                ended = True
                nursery.cancel_scope.cancel()
        finally:
            self._die("it exited" if ended or process.returncode is not None else WORKER_STOPPED)
            with trio.CancelScope(shield=True):
                await _end(process)

    async def _write(self, process: trio.Process, scope: trio.CancelScope) -> None:
        assert process.stdin is not None
        try:
            while True:
                while not self._outgoing:
                    await self._wakeup.wait()
                    self._wakeup = trio.Event()
                # Small frames go together; a payload goes as it is, never copied.
                item = self._outgoing.popleft()
                if len(item) < SMALL_WRITE:
                    small = [item]
                    while self._outgoing and len(self._outgoing[0]) < SMALL_WRITE:
                        small.append(self._outgoing.popleft())
                    item = b"".join(small)
                await process.stdin.send_all(item)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            scope.cancel()  # the reader sees the end too; the runs go local there

    async def _read(self, process: trio.Process) -> None:
        assert process.stdout is not None
        reader = ReplyReader()
        while True:
            try:
                data = await process.stdout.receive_some(WORKER_READ)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            try:
                replies = reader.feed(data)
            except (FrameError, msgspec.DecodeError):
                # Not our protocol any more: treat it as dead rather than guess.
                log.exception(
                    "extraction worker: unreadable answer",
                    extra={"event": "extraction_worker_error"},
                )
                return
            # Neither the read nor its answers are kept while the next read waits: the
            # last answers would keep their run alive, and through it its agent, its
            # records and its observers, long after a DELETE (until the next answer).
            del data
            await self._route(replies)
            del replies

    async def _route(self, replies: list[tuple[Extracted, bytes, bytes]]) -> None:
        for reply, found_data, kinds in replies:
            remote = self._runs.get(reply.run)
            if remote is not None:
                remote.on_reply(reply, found_data, kinds)
                # Let the writer keep the worker fed between answers.
                await trio.lowlevel.checkpoint()

    def _die(self, why: str) -> None:
        if not self.alive:
            return
        self.alive = False
        self._outgoing.clear()
        if self._runs or why != WORKER_STOPPED:
            # Stopped with the daemon and idle, it is no news; else it is a fault.
            log.error(
                "extraction worker: %s; %d runs extract in the daemon",
                why,
                len(self._runs),
                extra={"event": "extraction_worker_died", "reason": why, "runs": len(self._runs)},
            )
        for remote in list(self._runs.values()):
            try:
                remote.go_local(f"the worker ended ({why})")
            except Exception:
                # Extractors never raise on any input we know of; if one does here, that
                # run loses its unanswered batches, the daemon goes on.
                log.exception(
                    "extraction in the daemon failed for run %d",
                    remote.run,
                    extra={"event": "extraction_failed"},
                )
        self._runs.clear()


async def _end(process: trio.Process) -> None:
    """Close its stdin (it exits on its own), then make sure, and reap it."""
    if process.stdin is not None:
        with contextlib.suppress(trio.BrokenResourceError, OSError):
            await process.stdin.aclose()
    with trio.move_on_after(WORKER_EXIT_GRACE):
        await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()
    if process.stdout is not None:
        await process.stdout.aclose()
