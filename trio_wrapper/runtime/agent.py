"""One agent: a child process in its own process group, its readers and its record.

The task tree (owned by the supervisor's nursery)::

    agent.run
    ├── stdout reader   bytes → log file (first, in full) → lines → observers
    ├── stderr reader
    ├── timeout watcher (only with timeout_seconds)
    └── waits for the process, records the exit

Stopping signals the whole group (SIGTERM, grace, SIGKILL) *before* the readers are
cancelled, so the child never dies of SIGPIPE and a grandchild holding stdout cannot
keep a reader blocked.

This module is the task tree and the status transitions. Spawning, group signals and
stdin are in ``runtime.process``; what is shown of an agent (list entry, detail, meta
file) in ``runtime.views``; the run's files in ``history``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import msgspec
import trio

from trio_wrapper.core.lines import LineBatch
from trio_wrapper.core.models import RunMeta
from trio_wrapper.core.spec import AgentSpec
from trio_wrapper.core.status import (
    Status,
    check_transition,
    exit_detail,
    status_after_exit,
    stopping_detail,
)
from trio_wrapper.core.timefmt import now_local, parse_rfc3339
from trio_wrapper.extract import EXTRACTOR_FORMATS, Rule
from trio_wrapper.extract.found import Found
from trio_wrapper.extract.store import KEEP_BYTES, MAX_LIMIT, ExtractionStore
from trio_wrapper.history.events import EventsFile
from trio_wrapper.history.runfiles import RunFiles, write_all
from trio_wrapper.runtime.extraction import ExtractionSide, ExtractionWorker, local_extraction
from trio_wrapper.runtime.pipeline import LinePipeline
from trio_wrapper.runtime.pipes import grow_pipe
from trio_wrapper.runtime.process import (
    StdinBlocked,
    StdinClosed,
    StdinWriter,
    child_streams,
    signal_group,
)
from trio_wrapper.runtime.views import run_meta

# After the main process exits, output still in the pipes is read before the final
# status is set; a grandchild holding the pipes open does not hold the status back longer.
EXIT_DRAIN_SECONDS = 1.0
# After end of output, how long the extraction worker gets to answer the last batches
# before they are extracted in the daemon instead.
EXTRACTION_FINISH_SECONDS = 30.0
# The same when the agent's tasks are being cancelled (a stop, a shutdown): kept short.
FINISH_GRACE_SECONDS = 0.5
# After a stop has killed the group, readers get this long to reach EOF before being cancelled
# (a grandchild that left the group with setsid() can hold the pipes forever).
STOP_DRAIN_SECONDS = 0.5

# A reader lets other tasks run after this many bytes even if its pipe never runs dry.
READER_TURN_BYTES = 1024 * 1024


class AgentObserver(Protocol):
    """The seam for extraction, SSE and metrics: called synchronously, in read order.

    ``on_lines`` gets every line the readers produce; it must not block (a slow
    consumer queues and drops on its own side, never here).
    """

    def on_lines(
        self, agent: Agent, stream: str, first_line_num: int, batch: LineBatch
    ) -> None: ...

    def on_status(self, agent: Agent, old: Status | None, new: Status) -> None: ...

    def on_removed(self, agent: Agent) -> None: ...

    def on_records(self, agent: Agent, found: Found, counts_by_type: Mapping[str, int]) -> None:
        """Extraction records as JSON lines, in line order, with how many there are of
        each type. They follow the ``on_lines`` of the lines they came from: at once when
        extraction runs in the daemon, a moment later when the worker does it."""
        ...


@dataclass(slots=True)
class StreamStats:
    bytes: int = 0
    lines: int = 0


class Agent:
    """The record of one run, live or found on disk, and (when live) its tasks."""

    def __init__(
        self,
        spec: AgentSpec,
        files: RunFiles,
        *,
        observers: Sequence[AgentObserver] = (),
        max_line_bytes: int = 64 * 1024,
        read_chunk_bytes: int = 64 * 1024,
        stop_grace_seconds: float = 10.0,
        rules: Sequence[Rule] = (),
        worker: ExtractionWorker | None = None,
        records_kept: int = MAX_LIMIT,
        record_text_bytes: int = KEEP_BYTES,
    ) -> None:
        self.spec = spec
        self.files = files
        self.status = Status.STARTING
        self.pid: int | None = None
        self.started_at: datetime = now_local()
        self.completed_at: datetime | None = None
        self.exit_code: int | None = None
        self.exit_signal: str | None = None
        self.stop_reason: str | None = None
        # How the newest status came about (core.status decides the wording once).
        self.status_detail = ""
        self.problem: str | None = None
        self.stats = {"stdout": StreamStats(), "stderr": StreamStats()}
        self.line_num = 0
        self._observers = observers
        self._max_line = max_line_bytes
        self._chunk = read_chunk_bytes
        self._stop_grace = stop_grace_seconds
        self._pipeline: LinePipeline | None = None
        # A past run's meta may name a format this version lacks.
        fmt = spec.format if spec.format in EXTRACTOR_FORMATS else "none"
        self.extraction = ExtractionStore(fmt, keep=records_kept, keep_bytes=record_text_bytes)
        self._rules = rules
        self._worker = worker
        self._extracting: ExtractionSide | None = None
        self._started_mono = time.monotonic()
        self._ended_mono: float | None = None
        self._process: trio.Process | None = None
        self._outputs: dict[str, trio.abc.ReceiveStream] = {}
        self._stdin: StdinWriter | None = None
        self._log_fds: dict[str, int] = {}
        self._events: EventsFile | None = None
        self._readers_scope = trio.CancelScope()
        self._running = trio.Event()
        self._exited = trio.Event()
        self._done = trio.Event()
        self._stop_requested = False
        self._timed_out = False

    # ---- construction -------------------------------------------------------------

    @classmethod
    def from_history(cls, files: RunFiles, meta: RunMeta | Mapping[str, object]) -> Agent:
        """A past run read back from its meta file: listed, inspectable, not running."""
        if not isinstance(meta, RunMeta):
            meta = msgspec.convert(meta, RunMeta, strict=False)
        spec = AgentSpec(
            name=meta.name if meta.name is not None else files.directory.name,
            command=list(meta.command),
            cwd=meta.cwd,
            format=meta.format,
            stdin=meta.stdin,
            pty=meta.pty,
            timeout_seconds=meta.timeout_seconds,
            profile=meta.profile,
        )
        agent = cls(spec, files)
        try:
            agent.status = Status(str(meta.status))
        except ValueError:
            agent.status = Status.INTERRUPTED
        agent.pid = meta.pid
        agent.started_at = parse_rfc3339(meta.started_at) or agent.started_at
        agent.completed_at = parse_rfc3339(meta.completed_at)
        agent.exit_code = meta.exit_code
        agent.exit_signal = meta.signal
        agent.stop_reason = meta.stop_reason
        agent.problem = meta.error
        for stream, stats in agent.stats.items():
            stats.bytes = meta.bytes.get(stream, 0)
            stats.lines = meta.lines.get(stream, 0)
        agent.line_num = meta.total_lines
        agent.extraction.counts = dict(meta.extraction.matches_by_type)
        agent.extraction.total = meta.extraction.total_matches
        duration = meta.duration_seconds
        if duration is not None:
            agent._ended_mono = agent._started_mono + duration
        else:
            agent._ended_mono = agent._started_mono
        agent._exited.set()
        agent._done.set()
        return agent

    def attach(self, process: trio.Process, pty_master: int | None) -> None:
        """Take ownership of a freshly spawned process and open the run's log files."""
        self._process = process
        self.pid = process.pid
        self._outputs, stdin = child_streams(process, pty_master, stdin=self.spec.stdin)
        if stdin is not None:
            self._stdin = StdinWriter(stdin, pty=self.spec.pty)
        for stream in ("stdout", "stderr"):
            self._log_fds[stream] = self.files.open_log(stream)
        self._events = EventsFile(self.files.events)

    # ---- views ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def is_live(self) -> bool:
        """True while this run still owns a process or readers."""
        return not self._done.is_set()

    @property
    def stdin_open(self) -> bool:
        return self._stdin is not None and self._stdin.is_open and not self._exited.is_set()

    @property
    def duration_seconds(self) -> float:
        return self.duration_at(time.monotonic())

    def duration_at(self, now: float) -> float:
        """Run time as of ``now`` (monotonic): one clock read serves many agents."""
        end = self._ended_mono if self._ended_mono is not None else now
        return max(0.0, end - self._started_mono)

    @property
    def bytes_processed(self) -> int:
        return self.stats["stdout"].bytes + self.stats["stderr"].bytes

    # ---- state ----------------------------------------------------------------------

    def _set_status(self, new: Status, detail: str = "") -> None:
        old = self.status
        check_transition(old, new)
        self.status = new
        self.status_detail = detail
        if new.is_terminal:
            self.completed_at = now_local()
            self._ended_mono = time.monotonic()
        self._record_state(new, detail)
        self._write_meta()
        for observer in self._observers:
            observer.on_status(self, old, new)

    def _write_meta(self) -> None:
        try:
            self.files.write_meta(run_meta(self))
        except OSError as exc:
            self.problem = f"cannot write meta file: {exc.strerror}"

    def _record_state(self, new: Status, detail: str) -> None:
        if self._events is None:
            return
        try:
            self._events.write_state(new.value, detail)
        except OSError as exc:
            self.problem = f"cannot write events file: {exc.strerror}"

    # ---- running --------------------------------------------------------------------

    async def run(self) -> None:
        assert self._process is not None, "attach() a process first"
        process = self._process
        fmt = self.extraction.format
        if self._worker is not None and fmt != "none":
            extracting = self._worker.open(fmt, self.extraction, self._publish)
        else:
            extracting = local_extraction(fmt, self._rules, self.extraction, self._publish)
        self._extracting = extracting
        pipeline = self._pipeline = LinePipeline(
            {stream: self.files.log(stream) for stream in self._outputs},
            self._deliver,
            max_line_bytes=self._max_line,
            keep_whole=extracting.keep_whole,
            ready=extracting.wait_room,
        )
        try:
            self._set_status(Status.RUNNING)
            self._running.set()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pipeline.run)
                with self._readers_scope:
                    async with trio.open_nursery() as readers:
                        for stream_name, stream in self._outputs.items():
                            readers.start_soon(self._read, stream_name, stream)
                        timeout_scope = trio.CancelScope()
                        if self.spec.timeout_seconds:
                            nursery.start_soon(self._watch_timeout, timeout_scope)
                        await process.wait()
                        timeout_scope.cancel()
                        self._exited.set()
                        self._record_exit(process.returncode or 0)
                        # The pipes are emptied and their lines processed before the status
                        # says done; a grandchild holding the pipes open holds it back only
                        # for the drain time, and then only what was read so far is waited for.
                        with trio.move_on_after(EXIT_DRAIN_SECONDS):
                            await pipeline.done.wait()
                        await pipeline.wait_idle()
                        if pipeline.done.is_set():
                            with trio.move_on_after(EXTRACTION_FINISH_SECONDS):
                                await extracting.finish()
                        self._finish()
        finally:
            if pipeline.done.is_set():
                # Cancelled (a stop under a flood) while the worker still had lines: its
                # answers usually come within milliseconds, so they get a short shielded
                # wait; only what is still unanswered then is extracted here.
                with trio.CancelScope(shield=True), trio.move_on_after(FINISH_GRACE_SECONDS):
                    await extracting.finish()
                extracting.finish_now()
            with trio.CancelScope(shield=True):
                await self._release()
            if not self.status.is_terminal:
                self._finish()
            self._write_meta()
            self._running.set()
            self._done.set()

    async def wait_running(self) -> None:
        """Until ``run`` has marked the agent running (set also if it ended at once)."""
        await self._running.wait()

    def _record_exit(self, returncode: int) -> None:
        if returncode < 0:
            self.exit_signal = signal.Signals(-returncode).name
            self.exit_code = None
        else:
            self.exit_code = returncode

    def _finish(self) -> None:
        rc = self._process.returncode if self._process is not None else None
        new = status_after_exit(
            rc if rc is not None else -1,
            stop_requested=self._stop_requested,
            timed_out=self._timed_out,
        )
        if self.status.is_terminal:
            return
        if self.status is Status.STARTING:
            self.status = Status.RUNNING
        if (self._stop_requested or self._timed_out) and self.status is Status.RUNNING:
            self._set_status(Status.STOPPING, stopping_detail(self.stop_reason or "api"))
        detail = exit_detail(
            self.exit_code,
            self.exit_signal,
            timed_out=self.spec.timeout_seconds if self._timed_out else None,
        )
        self._set_status(new, detail)

    async def _read(self, stream_name: str, stream: trio.abc.ReceiveStream) -> None:
        """Pipe → log file, nothing else: line work happens behind, in the pipeline."""
        assert isinstance(stream, trio.lowlevel.FdStream)
        fd = stream.fileno()
        grow_pipe(fd)
        stats = self.stats[stream_name]
        log_fd = self._log_fds[stream_name]
        chunk_size = self._chunk
        pipeline = self._pipeline
        assert pipeline is not None
        since_checkpoint = 0
        try:
            while True:
                try:
                    chunk = os.read(fd, chunk_size)
                except BlockingIOError:
                    pipeline.idle(stream_name)
                    since_checkpoint = 0
                    await trio.lowlevel.wait_readable(fd)
                    continue
                except OSError as exc:
                    if exc.errno == errno.EIO:
                        break  # a PTY whose other side closed: its end of file
                    raise
                if not chunk:
                    break
                # The log file first and in full: nothing downstream may cost a byte.
                try:
                    write_all(log_fd, chunk)
                except OSError as exc:
                    self.problem = f"cannot write {stream_name} log: {exc.strerror}"
                offset = stats.bytes
                stats.bytes += len(chunk)
                pipeline.submit(stream_name, offset, chunk, busy=len(chunk) == chunk_size)
                since_checkpoint += len(chunk)
                if since_checkpoint >= READER_TURN_BYTES:
                    # Let the rest of the daemon (HTTP, other agents) have a turn.
                    since_checkpoint = 0
                    await trio.lowlevel.checkpoint()
        finally:
            pipeline.end(stream_name)

    def _deliver(self, stream_name: str, batch: LineBatch) -> None:
        first = self.line_num + 1
        count = len(batch.lines)
        self.line_num += count
        self.stats[stream_name].lines += count
        for observer in self._observers:
            observer.on_lines(self, stream_name, first, batch)
        assert self._extracting is not None
        self._extracting.feed(batch.lines, first, stream_name)

    def _publish(self, found: Found) -> None:
        """What extraction found, in line order: to the events file, the store, observers."""
        if not found:
            return
        events = self._events
        if events is not None:
            try:
                events.write_records(found.data)  # each record stamped with the time
            except OSError as exc:
                self.problem = f"cannot write events file: {exc.strerror}"
        counts = found.counts()
        self.extraction.add(found, counts)
        for observer in self._observers:
            observer.on_records(self, found, counts)

    async def _watch_timeout(self, scope: trio.CancelScope) -> None:
        assert self.spec.timeout_seconds is not None
        with scope:
            await trio.sleep(self.spec.timeout_seconds)
            self._timed_out = True
            self.stop_reason = "timeout"
            if self.status is Status.RUNNING:
                self._set_status(Status.STOPPING, stopping_detail("timeout"))
            await self._terminate_group(self._stop_grace)

    # ---- stopping -------------------------------------------------------------------

    async def stop(self, grace: float, reason: str = "api") -> None:
        """Stop the run and wait until its process is reaped and its files are closed."""
        if self._done.is_set():
            return
        if not self._stop_requested and not self._timed_out:
            self._stop_requested = True
            self.stop_reason = reason
            if self.status in (Status.STARTING, Status.RUNNING):
                self._set_status(Status.STOPPING, stopping_detail(reason))
        await self._terminate_group(grace)
        with trio.move_on_after(STOP_DRAIN_SECONDS):
            await self._done.wait()
        self._readers_scope.cancel()
        await self._done.wait()

    async def _terminate_group(self, grace: float) -> None:
        self._signal_group(signal.SIGTERM)
        with trio.move_on_after(grace):
            await self._exited.wait()
        # Always: whatever of the group outlived the leader goes too.
        self._signal_group(signal.SIGKILL)
        await self._exited.wait()

    def _signal_group(self, sig: signal.Signals) -> None:
        # Only while this run still owns the group (its process or its readers are alive):
        # once both are gone the group id could be reused by an unrelated process.
        if self.pid is None or self._done.is_set():
            return
        signal_group(self.pid, sig)

    async def _release(self) -> None:
        """Close every pipe and file this run holds. Shielded by the caller."""
        streams: list[trio.abc.AsyncResource] = list(self._outputs.values())
        stdin = self._stdin.detach() if self._stdin is not None else None
        if stdin is not None and stdin not in streams:
            streams.append(stdin)
        for stream in streams:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await stream.aclose()
        self._outputs.clear()
        self._stdin = None
        for fd in self._log_fds.values():
            os.close(fd)
        self._log_fds.clear()
        if self._events is not None:
            self._events.close()
            self._events = None

    # ---- input ----------------------------------------------------------------------

    async def write_input(self, data: bytes, *, eof: bool, write_timeout: float) -> None:
        """Write to the child's stdin; raise ``StdinClosed`` or ``StdinBlocked``."""
        if self._stdin is None or self._exited.is_set():
            raise StdinClosed
        await self._stdin.write(data, eof=eof, write_timeout=write_timeout)


__all__ = ["Agent", "AgentObserver", "AgentSpec", "StdinBlocked", "StdinClosed", "StreamStats"]
