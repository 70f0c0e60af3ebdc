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
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import msgspec
import trio

from trio_wrapper.core.lines import LineBatch
from trio_wrapper.core.status import (
    Status,
    check_transition,
    exit_detail,
    status_after_exit,
    stopping_detail,
)
from trio_wrapper.core.timefmt import go_duration, now_local, rfc3339
from trio_wrapper.extract import EXTRACTOR_FORMATS, Rule
from trio_wrapper.extract.found import Found
from trio_wrapper.extract.store import ExtractionStore
from trio_wrapper.history.runfiles import RunFiles, open_append, write_all
from trio_wrapper.runtime.extraction import ExtractionSide, ExtractionWorker, local_extraction
from trio_wrapper.runtime.pipeline import LinePipeline
from trio_wrapper.runtime.pipes import grow_pipe

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

_event_encoder = msgspec.json.Encoder()
_RECORD_START = b'\n{"type":'  # how every encoded record but the first begins
_TYPE_LEN = len(b'{"type":')


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


@dataclass(frozen=True, slots=True)
class AgentSpec:
    name: str
    command: list[str]
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    format: str = "auto"
    stdin: bool = False
    pty: bool = False
    timeout_seconds: float | None = None
    profile: str | None = None


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
        self.extraction = ExtractionStore(fmt)
        self._rules = rules
        self._worker = worker
        self._extracting: ExtractionSide | None = None
        self._started_mono = time.monotonic()
        self._ended_mono: float | None = None
        self._process: trio.Process | None = None
        self._outputs: dict[str, trio.abc.ReceiveStream] = {}
        self._stdin: trio.abc.SendStream | None = None
        self._stdin_lock: trio.Lock | None = None
        self._log_fds: dict[str, int] = {}
        self._events_fd: int | None = None
        self._readers_scope = trio.CancelScope()
        self._running = trio.Event()
        self._exited = trio.Event()
        self._done = trio.Event()
        self._stop_requested = False
        self._timed_out = False

    # ---- construction -------------------------------------------------------------

    @classmethod
    def from_history(cls, files: RunFiles, meta: dict[str, Any]) -> Agent:
        """A past run read back from its meta file: listed, inspectable, not running."""
        spec = AgentSpec(
            name=str(meta.get("name", files.directory.name)),
            command=[str(a) for a in meta.get("command") or []],
            cwd=meta.get("cwd"),
            format=str(meta.get("format", "auto")),
            stdin=bool(meta.get("stdin", False)),
            pty=bool(meta.get("pty", False)),
            timeout_seconds=meta.get("timeout_seconds"),
            profile=meta.get("profile"),
        )
        agent = cls(spec, files)
        try:
            agent.status = Status(str(meta.get("status")))
        except ValueError:
            agent.status = Status.INTERRUPTED
        agent.pid = meta.get("pid")
        agent.started_at = _parse_time(meta.get("started_at")) or agent.started_at
        agent.completed_at = _parse_time(meta.get("completed_at"))
        agent.exit_code = meta.get("exit_code")
        agent.exit_signal = meta.get("signal")
        agent.stop_reason = meta.get("stop_reason")
        agent.problem = meta.get("error")
        for stream in ("stdout", "stderr"):
            agent.stats[stream].bytes = int((meta.get("bytes") or {}).get(stream, 0))
            agent.stats[stream].lines = int((meta.get("lines") or {}).get(stream, 0))
        agent.line_num = int(meta.get("total_lines", 0))
        extraction = meta.get("extraction") or {}
        counts = extraction.get("matches_by_type") or {}
        agent.extraction.counts = {str(k): int(v) for k, v in counts.items()}
        agent.extraction.total = int(extraction.get("total_matches", 0))
        duration = meta.get("duration_seconds")
        if isinstance(duration, int | float):
            agent._ended_mono = agent._started_mono + float(duration)
        else:
            agent._ended_mono = agent._started_mono
        agent._exited.set()
        agent._done.set()
        return agent

    def attach(self, process: trio.Process, pty_master: int | None) -> None:
        """Take ownership of a freshly spawned process and open the run's log files."""
        self._process = process
        self.pid = process.pid
        if pty_master is not None:
            pty_stream = trio.lowlevel.FdStream(pty_master)
            self._outputs["stdout"] = pty_stream
            if self.spec.stdin:
                self._stdin = pty_stream
        else:
            assert process.stdout is not None and process.stderr is not None
            self._outputs["stdout"] = process.stdout
            self._outputs["stderr"] = process.stderr
            self._stdin = process.stdin
        if self._stdin is not None:
            self._stdin_lock = trio.Lock()
        for stream in ("stdout", "stderr"):
            self._log_fds[stream] = self.files.open_log(stream)
        self._events_fd = open_append(self.files.events)

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
        return self._stdin is not None and not self._exited.is_set()

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

    def extraction_summary(self) -> dict[str, Any]:
        store = self.extraction
        return {
            "format": store.format,
            "total_lines": self.line_num,
            "total_matches": store.total,
            "in_code_block": store.in_code_block,
            "matches_by_type": dict(store.counts),
        }

    def log_paths(self) -> dict[str, str]:
        return {s: str(self.files.log(s)) for s in ("stdout", "stderr")}

    def summary(self) -> dict[str, Any]:
        duration = self.duration_seconds
        return {
            "name": self.name,
            "status": self.status.value,
            "pid": self.pid,
            "format": self.spec.format,
            "started_at": rfc3339(self.started_at),
            "completed_at": rfc3339(self.completed_at),
            "uptime": go_duration(duration),
            "duration_seconds": round(duration, 3),
            "exit_code": self.exit_code,
        }

    def detail(self) -> dict[str, Any]:
        out = self.summary()
        out.update(
            {
                "command": list(self.spec.command),
                "cwd": self.spec.cwd,
                "profile": self.spec.profile,
                "signal": self.exit_signal,
                "stop_reason": self.stop_reason,
                "error": self.problem,
                "stdin_open": self.stdin_open,
                "pty": self.spec.pty,
                "timeout_seconds": self.spec.timeout_seconds,
                "bytes_processed": self.bytes_processed,
                "streams": {
                    s: {"bytes": st.bytes, "lines": st.lines} for s, st in self.stats.items()
                },
                "logs": self.log_paths(),
            }
        )
        return out

    def meta(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "command": list(self.spec.command),
            "cwd": self.spec.cwd,
            "format": self.spec.format,
            "profile": self.spec.profile,
            "stdin": self.spec.stdin,
            "pty": self.spec.pty,
            "timeout_seconds": self.spec.timeout_seconds,
            "pid": self.pid,
            "started_at": rfc3339(self.started_at),
            "completed_at": rfc3339(self.completed_at),
            "duration_seconds": round(self.duration_seconds, 3),
            "exit_code": self.exit_code,
            "signal": self.exit_signal,
            "stop_reason": self.stop_reason,
            "error": self.problem,
            "bytes": {s: st.bytes for s, st in self.stats.items()},
            "lines": {s: st.lines for s, st in self.stats.items()},
            "total_lines": self.line_num,
            "extraction": self.extraction_summary(),
            "logs": {**self.log_paths(), "events": str(self.files.events)},
        }

    # ---- state ----------------------------------------------------------------------

    def _set_status(self, new: Status, detail: str = "") -> None:
        old = self.status
        check_transition(old, new)
        self.status = new
        self.status_detail = detail
        if new.is_terminal:
            self.completed_at = now_local()
            self._ended_mono = time.monotonic()
        self._record_event({"type": "state", "state": new.value, "detail": detail})
        self._write_meta()
        for observer in self._observers:
            observer.on_status(self, old, new)

    def _write_meta(self) -> None:
        try:
            self.files.write_meta(self.meta())
        except OSError as exc:
            self.problem = f"cannot write meta file: {exc.strerror}"

    def _record_event(self, event: dict[str, Any]) -> None:
        if self._events_fd is None:
            return
        event["timestamp"] = rfc3339(now_local())
        try:
            write_all(self._events_fd, _event_encoder.encode(event) + b"\n")
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
        if self._events_fd is not None:
            # One JSON object a line: the record with its timestamp in front. Records are
            # tagged structs, so every line starts with '{"type":' (and no JSON string
            # holds a raw newline): the timestamp goes in front of each by one replace,
            # then in front of the first, which is written on its own.
            stamp = b'{"timestamp":' + _event_encoder.encode(rfc3339(now_local())) + b',"type":'
            stamped = memoryview(found.data.replace(_RECORD_START, b"\n" + stamp))[_TYPE_LEN:]
            try:
                write_all(self._events_fd, stamp, stamped)
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
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def _release(self) -> None:
        """Close every pipe and file this run holds. Shielded by the caller."""
        streams: list[trio.abc.AsyncResource] = list(self._outputs.values())
        if self._stdin is not None and self._stdin not in streams:
            streams.append(self._stdin)
        for stream in streams:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await stream.aclose()
        self._outputs.clear()
        self._stdin = None
        for fd in self._log_fds.values():
            os.close(fd)
        self._log_fds.clear()
        if self._events_fd is not None:
            os.close(self._events_fd)
            self._events_fd = None

    # ---- input ----------------------------------------------------------------------

    async def write_input(self, data: bytes, *, eof: bool, write_timeout: float) -> None:
        """Write to the child's stdin; raise ``StdinClosed`` or ``StdinBlocked``."""
        if self._stdin is None or self._stdin_lock is None or self._exited.is_set():
            raise StdinClosed
        async with self._stdin_lock:
            stdin = self._stdin
            if stdin is None:
                raise StdinClosed
            try:
                if data:
                    with trio.fail_after(write_timeout):
                        await stdin.send_all(data)
                if eof:
                    if self.spec.pty:
                        # A terminal has no half-close: EOF is the VEOF character.
                        with trio.fail_after(write_timeout):
                            await stdin.send_all(b"\x04")
                    else:
                        await stdin.aclose()
                        self._stdin = None
            except trio.TooSlowError as exc:
                raise StdinBlocked from exc
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self._stdin = None
                raise StdinClosed from exc


class StdinClosed(Exception):
    pass


class StdinBlocked(Exception):
    pass


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


__all__ = ["Agent", "AgentObserver", "AgentSpec", "StdinBlocked", "StdinClosed", "StreamStats"]
