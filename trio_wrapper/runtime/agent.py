"""One agent: a child process in its own process group, its readers and its record.

The task tree (owned by the supervisor's nursery)::

    agent.run
    ├── stdout reader   bytes → log file (first, in full) → lines → observers
    ├── stderr reader
    ├── timeout watcher (only with timeout_seconds)
    └── waits for the process, records the exit

Stopping signals the whole group (SIGTERM, grace, SIGKILL) *before* the readers are
cancelled, so the child never dies of SIGPIPE and a grandchild holding stdout cannot
keep a reader blocked. The run's processes that left the group (``setsid``, a double
fork) are found through ``runtime.proctree`` and signalled with it; a run stays
``running`` until its whole tree is gone, not only its first process.

I/O faults stay on the run they hit. A log, events or meta file that cannot be written
(no space, a read-only or failing disk) is noted on the agent (``error`` keeps the first
such problem; ``io_faults`` what is failing now, for health) and its bytes are counted as
lost, never as written; the run goes on and ends with its true exit status. Anything
else that goes wrong in the run's own tasks (a bug) ends this run as ``failed``, its
process group stopped; it never reaches the supervisor's nursery, so the daemon and the
other agents go on.

This module is the task tree and the status transitions. Spawning, group signals and
stdin are in ``runtime.process``; what is shown of an agent (list entry, detail, meta
file) in ``runtime.views``; the run's files in ``history``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import msgspec
import trio

from trio_wrapper.core.interactive import not_interactive
from trio_wrapper.core.lines import LineBatch
from trio_wrapper.core.models import LeftoverProcess, Resources, RunMeta
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
from trio_wrapper.history.events import EventsFile, read_records
from trio_wrapper.history.runfiles import STREAMS, RunFiles, write_prefix
from trio_wrapper.runtime import cgroups, proctree
from trio_wrapper.runtime.deadlines import sleep_in_slices
from trio_wrapper.runtime.extraction import ExtractionSide, ExtractionWorker, local_extraction
from trio_wrapper.runtime.interactive import Delivered, Interaction
from trio_wrapper.runtime.pipeline import LinePipeline
from trio_wrapper.runtime.pipes import (
    MIN_READ,
    READ_PAUSE_SECONDS,
    ReadPacer,
    grow_pipe,
    next_read_size,
)
from trio_wrapper.runtime.process import (
    LEADERS,
    StdinBlocked,
    StdinClosed,
    StdinWriter,
    child_streams,
    nothing_left_behind,
    signal_group,
    wait_leader,
)
from trio_wrapper.runtime.views import run_meta

log = logging.getLogger(__name__)

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

# While a run's first process has exited but processes it started still run, the tree is
# looked at this often (a stop wakes the look at once).
TREE_POLL_SECONDS = 0.5
# After a stop's SIGKILL, how long the tree gets to be gone before the run gives up on
# what could not be killed (another user's process, one in uninterruptible sleep).
TREE_KILL_WAIT_SECONDS = 5.0
# A cancelled run (its owner torn down without a stop) kills its tree: bounded.
CANCEL_KILL_SECONDS = 5.0

# A reader lets other tasks run after this many bytes even if its pipe never runs dry.
READER_TURN_BYTES = 1024 * 1024
# After a failure in the run's own tasks, how long its process group gets after SIGTERM
# (nothing reads its output any more) before SIGKILL.
FAILURE_GRACE_SECONDS = 1.0
# The keys of ``Agent.io_faults`` besides ``<stream> log``.
META_FILE = "meta file"
EVENTS_FILE = "events file"


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
    bytes: int = 0  # in the log file: never more than it holds
    lines: int = 0
    lost_bytes: int = 0  # read from the child, but the log file could not take them
    unprocessed_bytes: int = 0  # never made into lines (not counted, streamed or extracted)


class Agent:
    """The record of one run, live or found on disk, and (when live) its tasks."""

    def __init__(
        self,
        spec: AgentSpec,
        files: RunFiles,
        *,
        observers: Sequence[AgentObserver] = (),
        max_line_bytes: int = 64 * 1024,
        read_chunk_bytes: int = 1024 * 1024,
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
        # The first problem the daemon met with this run (shown as ``error``); later ones
        # are logged but do not replace it: the first is usually the cause.
        self.problem: str | None = None
        # What is failing now, by file ("stdout log", "meta file"…): set by a failed
        # write, cleared by the next one that works. Health is degraded while any is set.
        self.io_faults: dict[str, str] = {}
        # Set when the run's own tasks failed (not the child): the run ends ``failed``.
        self._failure: str | None = None
        self._tasks_scope = trio.CancelScope()
        self._gaps_logged: set[str] = set()
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
        self._records_kept = records_kept
        self._text_bytes = record_text_bytes
        self._records_on_disk = False
        self._records_lock = trio.Lock()
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
        # How the run's processes are recognised (set by the supervisor at spawn, or read
        # back from the meta file); an interrupted run's processes found still running.
        self.mark: proctree.TreeMark | None = None
        self.orphans: list[tuple[int, int, str]] = []
        # The processes a stop ended that had left the run's group (or, of an interrupted
        # run, every one): what would have been left behind without the tree.
        self._leftovers: set[tuple[int, int]] = set()
        # Every process any look found to be the run's, as (pid, start time): one found
        # by its ancestry stays the run's after its parent died.
        self._known: set[tuple[int, int]] = set()
        # The first process reaped *and* no other process of the run left.
        self._ended = trio.Event()
        self._tree_wakeup = trio.Event()
        self._tree_given_up = False
        # The run's cgroup's last figures, read when the run ended (or from its meta file).
        self.final_usage: cgroups.Usage | None = None
        # A live run's interactive side (runtime.interactive), set by the supervisor:
        # its screen, when it waits, its messages. Since when it waits, and what for.
        self.interaction: Interaction | None = None
        self.waiting_since: datetime | None = None
        self.waiting_detail: str | None = None

    # ---- construction -------------------------------------------------------------

    @classmethod
    def from_history(
        cls,
        files: RunFiles,
        meta: RunMeta | Mapping[str, object],
        *,
        records_kept: int = MAX_LIMIT,
        record_text_bytes: int = KEEP_BYTES,
    ) -> Agent:
        """A past run read back from its meta file: listed, inspectable, not running.

        Its counts are the meta file's; its records stay in its events file until someone
        asks for them (``load_records``): a start reads no events file."""
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
            pty_size=_size(meta.pty_size),
            waiting_pattern=meta.waiting_pattern,
            enter=meta.enter,
        )
        agent = cls(spec, files, records_kept=records_kept, record_text_bytes=record_text_bytes)
        agent._records_on_disk = True
        try:
            agent.status = Status(str(meta.status))
        except ValueError:
            agent.status = Status.INTERRUPTED
        agent.pid = meta.pid
        if meta.pid is not None:
            agent.mark = proctree.TreeMark(
                leader=meta.pid,
                leader_start=meta.pid_start_ticks,
                cookie=meta.run_cookie,
                boot_id=meta.boot_id,
                cgroup=meta.cgroup,
            )
        if meta.cgroup is not None:
            agent.final_usage = cgroups.Usage(meta.cpu_seconds, None, meta.memory_peak_bytes)
        agent.started_at = parse_rfc3339(meta.started_at) or agent.started_at
        agent.completed_at = parse_rfc3339(meta.completed_at)
        agent.exit_code = meta.exit_code
        agent.exit_signal = meta.signal
        agent.stop_reason = meta.stop_reason
        agent.problem = meta.error
        if agent.status is Status.WAITING:  # a meta file written while the run waited
            agent.waiting_since = parse_rfc3339(meta.waiting_since)
        for stream, stats in agent.stats.items():
            stats.bytes = meta.bytes.get(stream, 0)
            stats.lines = meta.lines.get(stream, 0)
            stats.lost_bytes = meta.lost_bytes.get(stream, 0)
            stats.unprocessed_bytes = meta.unprocessed_bytes.get(stream, 0)
        agent.line_num = meta.total_lines
        agent._set_counts(agent.extraction, meta)
        duration = meta.duration_seconds
        if duration is not None:
            agent._ended_mono = agent._started_mono + duration
        else:
            agent._ended_mono = agent._started_mono
        agent._exited.set()
        agent._ended.set()
        agent._done.set()
        return agent

    def _set_counts(self, store: ExtractionStore, meta: RunMeta) -> None:
        """The meta file's extraction figures: exact for the whole run, whatever part of
        its records the store keeps."""
        store.counts = dict(meta.extraction.matches_by_type)
        store.unknown_events = dict(meta.extraction.unknown_events)
        store.total = meta.extraction.total_matches
        store.in_code_block = meta.extraction.in_code_block
        if meta.extraction.format in EXTRACTOR_FORMATS:
            store.format = meta.extraction.format  # what ``auto`` detected

    @property
    def records_on_disk(self) -> bool:
        """A past run whose records are still only in its events file."""
        return self._records_on_disk

    async def load_records(self) -> None:
        """A past run's records, read from its events file in a worker thread the first
        time they are asked for (``include_matches``), kept within the store's window
        (``limits.max_records`` of each type). Counts stay the meta file's."""
        if not self._records_on_disk:
            return
        async with self._records_lock:
            if not self._records_on_disk:
                return
            old = self.extraction
            store = ExtractionStore(
                old.format, keep=self._records_kept, keep_bytes=self._text_bytes
            )
            await trio.to_thread.run_sync(read_records, self.files.events, store)
            store.counts, store.total = old.counts, old.total
            store.in_code_block = old.in_code_block
            self.extraction = store
            self._records_on_disk = False

    def open_files(self) -> None:
        """Before the spawn: the first meta file (``starting``), the logs and the events
        file. ``OSError`` if any cannot be made (no space, read-only, forbidden); then none
        is left open, and the caller discards the files: a child is never started whose
        output would have nowhere to go."""
        try:
            self.files.write_meta(run_meta(self))
            for stream in STREAMS:
                self._log_fds[stream] = self.files.open_log(stream)
            self._events = EventsFile(self.files.events)
        except BaseException:
            self._close_files()
            raise

    def discard(self) -> None:
        """Its start was refused after ``open_files``: close and remove the run's files."""
        self._close_files()
        self.files.discard()

    def attach(self, process: trio.Process, pty_master: int | None) -> None:
        """Take ownership of a freshly spawned process (``open_files`` came first)."""
        self._process = process
        self.pid = process.pid
        self._outputs, stdin = child_streams(process, pty_master, stdin=self.spec.stdin)
        if stdin is not None:
            self._stdin = StdinWriter(stdin, pty=self.spec.pty)

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

    def unresolved_faults(self) -> list[str]:
        """The I/O faults that still matter, for health: a live run's current ones; of an
        ended run only a meta file that still says less than the truth, which is retried
        here first (so health heals once space returns)."""
        if not self.is_live and META_FILE in self.io_faults:
            self._write_meta()
        if self.is_live:
            return list(self.io_faults.values())
        return [self.io_faults[META_FILE]] if META_FILE in self.io_faults else []

    # ---- state ----------------------------------------------------------------------

    def _set_status(self, new: Status, detail: str = "") -> None:
        old = self.status
        check_transition(old, new)
        self.status = new
        self.status_detail = detail
        if new is not Status.WAITING:
            self.waiting_since = self.waiting_detail = None
            if self.interaction is not None and not new.is_active:
                self.interaction.stopped_waiting()
        if new.is_terminal:
            self.completed_at = now_local()
            self._ended_mono = time.monotonic()
        self._record_state(new, detail)
        self._write_meta()
        for observer in self._observers:
            observer.on_status(self, old, new)

    def set_waiting(self, waiting: bool, detail: str) -> None:
        """``running`` -> ``waiting`` (the agent wants its user: ``detail`` says what for)
        or back; nothing while it is starting, stopping or has exited."""
        if self._exited.is_set():
            return
        if waiting and self.status is Status.RUNNING:
            self.waiting_since = now_local()
            self.waiting_detail = detail
            self._set_status(Status.WAITING, detail)
        elif not waiting and self.status is Status.WAITING:
            self._set_status(Status.RUNNING, detail)

    def _write_meta(self) -> None:
        try:
            self.files.write_meta(run_meta(self))
        except OSError as exc:
            self._io_fault(META_FILE, exc)
        else:
            self.io_faults.pop(META_FILE, None)

    def _record_state(self, new: Status, detail: str) -> None:
        if self._events is None:
            return
        try:
            self._events.write_state(new.value, detail)
        except OSError as exc:
            self._io_fault(EVENTS_FILE, exc)
        else:
            self.io_faults.pop(EVENTS_FILE, None)

    def _note_problem(self, message: str) -> None:
        """``error`` keeps the first problem: a full disk fails the log first, then the
        meta file; the first says what happened, the later ones only follow from it."""
        if self.problem is None:
            self.problem = message

    def _io_fault(self, what: str, exc: OSError) -> None:
        message = f"cannot write {what}: {exc.strerror or exc}"
        if what not in self.io_faults:
            log.warning("agent %s: %s", self.name, message, extra=self._fault("io_fault", what))
        self.io_faults[what] = message
        self._note_problem(message)

    def _fault(self, event: str, what: str = "") -> dict[str, object]:
        """The fields of a fault's log line (``runtime.eventlog`` logs the rest)."""
        run = f"{self.name}/{self.files.stamp}"
        return {"event": event, "agent": self.name, "run": run, "what": what}

    def _fail(self, where: str, exc: BaseException) -> None:
        """The run's own tasks failed: end this run as ``failed``, and only this run."""
        if self._failure is None:
            leaf = _first_leaf(exc)
            log.error(
                "agent %s: %s failed",
                self.name,
                where,
                exc_info=exc,
                extra=self._fault("agent_internal_error", where),
            )
            self._failure = f"{where} failed: {type(leaf).__name__}: {leaf}"
            self._note_problem(f"internal error: {self._failure}")
        self._tasks_scope.cancel()

    # ---- running --------------------------------------------------------------------

    async def run(self) -> None:
        """The run, start to end. Never raises (but ``Cancelled``): whatever fails in
        here ends this run as ``failed``, not the supervisor's nursery."""
        assert self._process is not None, "attach() a process first"
        process = self._process
        try:
            await self._run(process)
        except* Exception as group:
            # The last line of defence (the cleanup itself failed): the process is
            # reaped and the run marked ended, or a stop would wait for it forever.
            # (``except*``: a ``Cancelled`` beside the error still goes on up.)
            self._fail("the run's cleanup", group)
            with trio.CancelScope(shield=True):
                await self._end_after_failure(process)
            self._force_end()
        finally:
            self._running.set()
            self._done.set()

    def _force_end(self) -> None:
        """A terminal status even if the usual way there fails (an observer raising)."""
        if self.status.is_terminal:
            return
        with contextlib.suppress(Exception):
            self._finish()
        if not self.status.is_terminal:
            self.status = Status.FAILED
            self.status_detail = f"failed in the daemon: {self._failure}"
            self.completed_at = now_local()
            self._ended_mono = time.monotonic()
            self._write_meta()

    async def _run(self, process: trio.Process) -> None:
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
            # Read back through our own descriptors: a log deleted under us still reads.
            read_fds={stream: self._log_fds[stream] for stream in self._outputs},
            lost=self._lost,
        )
        try:
            try:
                with self._tasks_scope:  # cancelled by ``_fail``
                    self._set_status(Status.RUNNING)
                    if self.interaction is not None:
                        self.interaction.started()
                    self._running.set()
                    await self._tasks(process, pipeline, extracting)
            except* Exception as group:
                # A reader, the pipeline, the timeout watcher or an observer raised: this
                # run fails, its siblings were cancelled; a ``Cancelled`` from outside
                # (the supervisor's nursery closing) still goes on up.
                self._fail("its tasks", group)
            if self._failure is not None:
                with trio.CancelScope(shield=True):
                    await self._end_after_failure(process)
        finally:
            if not self._ended.is_set():
                # Cancelled (the owner torn down without a stop), or failed: no process of
                # the run may outlive it.
                with trio.CancelScope(shield=True), trio.move_on_after(CANCEL_KILL_SECONDS):
                    await self._kill_everything(process)
            try:
                if pipeline.done.is_set():
                    # Cancelled (a stop under a flood) while the worker still had lines:
                    # its answers usually come within milliseconds, so they get a short
                    # shielded wait; only what is still unanswered then is extracted here.
                    with trio.CancelScope(shield=True), trio.move_on_after(FINISH_GRACE_SECONDS):
                        await extracting.finish()
                    extracting.finish_now()
            except Exception as exc:
                self._fail("extraction", exc)
            with trio.CancelScope(shield=True):
                await self._release()
            self._leave_cgroup()
            if not self.status.is_terminal:
                self._finish()
            self._write_meta()

    async def _tasks(
        self, process: trio.Process, pipeline: LinePipeline, extracting: ExtractionSide
    ) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pipeline.run)
            with self._readers_scope:
                async with trio.open_nursery() as readers:
                    for stream_name, stream in self._outputs.items():
                        readers.start_soon(self._read, stream_name, stream)
                    timeout_scope = trio.CancelScope()
                    if self.spec.timeout_seconds:
                        nursery.start_soon(self._watch_timeout, timeout_scope)
                    watch_scope = trio.CancelScope()
                    if self.interaction is not None and self.interaction.watches:
                        nursery.start_soon(self.interaction.run, watch_scope)
                    await wait_leader(process)
                    watch_scope.cancel()
                    self._exited.set()
                    self._record_exit(process.returncode or 0)
                    # Whatever the leader started and left running keeps the run running
                    # (and under its timeout): docs/decisions.md.
                    await self._wait_tree_gone()
                    timeout_scope.cancel()
                    self._ended.set()
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

    async def _end_after_failure(self, process: trio.Process) -> None:
        """Nothing reads the child's output any more: stop its group (SIGTERM, a short
        grace, SIGKILL) and reap it, so that its exit is recorded. Shielded by the caller."""
        if not self._exited.is_set():
            self._signal_group(signal.SIGTERM)
            with trio.move_on_after(FAILURE_GRACE_SECONDS):
                await wait_leader(process)
            self._signal_group(signal.SIGKILL)
            await wait_leader(process)
            self._exited.set()
            self._record_exit(process.returncode or 0)
        else:
            self._signal_group(signal.SIGKILL)  # what of the group outlived the leader

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
        self._check_logs()  # before the status says done (again in ``_release``, after a stop)
        if self._failure is not None:
            # Not the child's doing: the daemon failed this run, whatever its exit.
            self._set_status(Status.FAILED, f"failed in the daemon: {self._failure}")
            return
        if (self._stop_requested or self._timed_out) and self.status.is_active:
            self._set_status(Status.STOPPING, stopping_detail(self.stop_reason or "api"))
        detail = exit_detail(
            self.exit_code,
            self.exit_signal,
            timed_out=self.spec.timeout_seconds if self._timed_out else None,
        )
        self._set_status(new, detail)

    def _check_logs(self) -> None:
        """A log deleted while the run wrote it: its bytes are nowhere on disk now."""
        for stream, fd in self._log_fds.items():
            with contextlib.suppress(OSError):
                if os.fstat(fd).st_nlink == 0 and self.stats[stream].bytes:
                    self._note_problem(f"{stream} log was deleted while the agent ran")

    async def _read(self, stream_name: str, stream: trio.abc.ReceiveStream) -> None:
        """Pipe → log file, nothing else: line work happens behind, in the pipeline."""
        assert isinstance(stream, trio.lowlevel.FdStream)
        fd = stream.fileno()
        grow_pipe(fd)
        stats = self.stats[stream_name]
        log_fd = self._log_fds[stream_name]
        chunk_size = self._chunk
        asked = min(MIN_READ, chunk_size)
        pipeline = self._pipeline
        assert pipeline is not None
        # A PTY's output also feeds its screen (a copy into a bounded buffer).
        interaction = self.interaction
        tap = interaction.on_output if interaction is not None and interaction.watches else None
        since_checkpoint = 0
        pacer = ReadPacer()
        try:
            while True:
                try:
                    chunk = os.read(fd, asked)
                except BlockingIOError:
                    pipeline.idle(stream_name)
                    since_checkpoint = 0
                    if pacer.at_empty_pipe():
                        await _pause(pacer)
                    else:
                        began = trio.current_time()
                        await trio.lowlevel.wait_readable(fd)
                        pacer.waited(trio.current_time() - began, paused=False)
                    continue
                except OSError as exc:
                    if exc.errno == errno.EIO:
                        break  # a PTY whose other side closed: its end of file
                    raise
                if not chunk:
                    break
                # The log file first and in full: nothing downstream may cost a byte.
                # What it cannot take (no space…) is lost, and counted so, never as written.
                written, error = write_prefix(log_fd, chunk)
                if error is not None:
                    stats.lost_bytes += len(chunk) - written
                    self._io_fault(f"{stream_name} log", error)
                elif self.io_faults:
                    self.io_faults.pop(f"{stream_name} log", None)
                offset = stats.bytes
                stats.bytes += written
                got = len(chunk)
                pipeline.submit(stream_name, offset, chunk, busy=got == chunk_size, stored=written)
                pause = pacer.after_read(got, asked)
                asked = next_read_size(got, asked, chunk_size)
                if tap is not None:
                    tap(chunk)
                since_checkpoint += len(chunk)
                if pause:
                    since_checkpoint = 0
                    await _pause(pacer)
                elif since_checkpoint >= READER_TURN_BYTES:
                    # Let the rest of the daemon (HTTP, other agents) have a turn.
                    since_checkpoint = 0
                    await trio.lowlevel.checkpoint()
        finally:
            pipeline.end(stream_name)

    def _lost(self, stream_name: str, count: int, why: str | None) -> None:
        """``count`` bytes the pipeline can never make into lines (see there)."""
        self.stats[stream_name].unprocessed_bytes += count
        if why is not None and why not in self._gaps_logged:
            # Once per reason: a truncated flood is a gap per piece read back.
            self._gaps_logged.add(why)
            log.warning(
                "agent %s: %s (lines of those bytes are lost)",
                self.name,
                why,
                extra=self._fault("output_unprocessed", stream_name),
            )
            self._note_problem(why)

    def _deliver(self, stream_name: str, batch: LineBatch) -> None:
        first = self.line_num + 1
        count = len(batch.lines)
        self.line_num += count
        self.stats[stream_name].lines += count
        for observer in self._observers:
            observer.on_lines(self, stream_name, first, batch)
        interaction = self.interaction
        if interaction is not None and interaction.scans_lines:
            interaction.on_lines(batch)
        assert self._extracting is not None
        self._extracting.feed(batch.lines, first, stream_name)

    def _publish(self, found: Found) -> None:
        """What extraction found, in line order: to the events file, the store, observers.

        Called from the run's pipeline, or from the extraction worker's reader: a failure
        here ends this run (``_fail``), never the worker, which serves every run."""
        if not found:
            return
        try:
            events = self._events
            if events is not None:
                try:
                    events.write_records(found.data)  # each record stamped with the time
                except OSError as exc:
                    self._io_fault(EVENTS_FILE, exc)
                else:
                    self.io_faults.pop(EVENTS_FILE, None)
            counts = found.counts()
            self.extraction.add(found, counts)
            for observer in self._observers:
                observer.on_records(self, found, counts)
            if self.interaction is not None:
                self.interaction.on_found(found)
        except Exception as exc:
            self._fail("publishing extraction records", exc)

    # ---- the process tree -----------------------------------------------------------

    @property
    def leftovers_killed(self) -> int:
        return len(self._leftovers)

    def _count_leftovers(self, infos: list[proctree.ProcInfo], *, all_of_them: bool) -> None:
        for info in infos:
            if all_of_them or info.pgid != self.pid:
                self._leftovers.add((info.pid, info.start))

    def _other_sessions(self) -> frozenset[int]:
        # Other live runs' sessions: their members are theirs, no need to read their env.
        return frozenset(LEADERS - {self.pid} if self.pid is not None else LEADERS)

    @property
    def known_processes(self) -> frozenset[tuple[int, int]]:
        """(pid, start time) of every process a look found to be the run's."""
        return frozenset(self._known)

    def _remember(self, infos: list[proctree.ProcInfo]) -> list[proctree.ProcInfo]:
        self._known.update((info.pid, info.start) for info in infos)
        return infos

    async def tree(self) -> list[proctree.ProcInfo]:
        """The run's processes alive now (none known without a mark)."""
        mark = self.mark
        if mark is None:
            return []
        others, known = self._other_sessions(), frozenset(self._known)
        infos = await trio.to_thread.run_sync(
            lambda: proctree.members(mark, other_sessions=others, known=known)
        )
        return self._remember(infos)

    async def _wait_tree_gone(self) -> None:
        while not self._tree_given_up:
            # Once the leader has exited, the usual answer (nothing left) comes from the
            # daemon's own children, without a look at every process (docs/decisions.md).
            in_cgroup = self.mark is not None and self.mark.cgroup is not None
            if self._exited.is_set() and not in_cgroup and nothing_left_behind():
                return
            if not await self.tree():
                return
            with trio.move_on_after(TREE_POLL_SECONDS):
                await self._tree_wakeup.wait()
            self._tree_wakeup = trio.Event()

    async def _signal_tree(self, sig: signal.Signals) -> None:
        mark = self.mark
        if mark is None or self._ended.is_set():
            return
        others, known = self._other_sessions(), frozenset(self._known)

        def signal_tree() -> list[proctree.ProcInfo]:
            # The group had the signal already: a second one would be a second SIGTERM to
            # a child that handles it.
            infos = [
                info
                for info in proctree.members(mark, other_sessions=others, known=known)
                if info.pgid != mark.leader
            ]
            hit = set(proctree.signal_all(infos, sig))
            return [info for info in infos if info.pid in hit]

        signalled = self._remember(await trio.to_thread.run_sync(signal_tree))
        self._count_leftovers(signalled, all_of_them=False)
        self._tree_wakeup.set()  # a run waiting for its tree to end looks again

    async def _kill_tree(self) -> list[proctree.ProcInfo]:
        mark = self.mark
        if mark is None:
            return []
        others, known = self._other_sessions(), frozenset(self._known)
        killed = await trio.to_thread.run_sync(lambda: proctree.kill_tree(mark, others, known))
        self._tree_wakeup.set()
        self._count_leftovers(killed, all_of_them=self.status is Status.INTERRUPTED)
        return killed

    async def _kill_everything(self, process: trio.Process) -> None:
        """SIGKILL the tree and the group, reap the leader. Shielded by the caller."""
        await self._kill_tree()
        self._signal_group(signal.SIGKILL)
        if process.returncode is None:
            await wait_leader(process)

    def resources(self) -> Resources | None:
        """CPU and memory from the run's cgroup (live), or its last figures (ended)."""
        path = self.mark.cgroup if self.mark is not None else None
        if path is None:
            return None
        usage = self.final_usage if self._done.is_set() else cgroups.usage(path)
        if usage is None:
            return None
        return Resources(
            cgroup=path,
            cpu_seconds=usage.cpu_seconds,
            memory_bytes=None if self._done.is_set() else usage.memory_bytes,
            memory_peak_bytes=usage.memory_peak_bytes,
        )

    def _leave_cgroup(self) -> None:
        """The run's end: its cgroup's last figures kept, the cgroup removed (left in
        place, and found again, while a process of the run could not be killed)."""
        path = self.mark.cgroup if self.mark is not None else None
        if path is None:
            return
        usage = cgroups.usage(path)
        if usage.cpu_seconds is not None or self.final_usage is None:
            self.final_usage = usage
        cgroups.remove(path)

    def live_orphans(self) -> list[LeftoverProcess]:
        """The processes of an interrupted run found at start that still run."""
        return [
            LeftoverProcess(pid=pid, argv0=argv0)
            for pid, start, argv0 in self.orphans
            if proctree.alive(pid, start)
        ]

    def note_leftovers(self, found: list[tuple[int, int, str]]) -> None:
        """An interrupted run (its daemon died): these of its processes still run."""
        self.orphans = found
        if found:
            self.problem = (
                f"{len(found)} process(es) of this run still run (the daemon that started "
                "them died); DELETE kills them"
            )

    async def _kill_leftovers(self) -> None:
        if self.mark is None or self.status is not Status.INTERRUPTED:
            return
        killed = await self._kill_tree()
        self._leave_cgroup()
        self.orphans = []
        if killed:
            self.problem = f"killed {len(killed)} leftover process(es) of this run"

    async def _watch_timeout(self, scope: trio.CancelScope) -> None:
        assert self.spec.timeout_seconds is not None
        with scope:
            await sleep_in_slices(self.spec.timeout_seconds)
            self._timed_out = True
            self.stop_reason = "timeout"
            if self.status.is_active:
                self._set_status(Status.STOPPING, stopping_detail("timeout"))
            await self._terminate_group(self._stop_grace)

    # ---- stopping -------------------------------------------------------------------

    async def stop(self, grace: float, reason: str = "api") -> None:
        """Stop the run and wait until its processes are gone and its files are closed.

        An interrupted run (its daemon died) has no task: what still runs of it is killed.
        """
        if self._done.is_set():
            await self._kill_leftovers()
            return
        if not self._stop_requested and not self._timed_out:
            self._stop_requested = True
            self.stop_reason = reason
            if self.status is Status.STARTING or self.status.is_active:
                self._set_status(Status.STOPPING, stopping_detail(reason))
        await self._terminate_group(grace)
        with trio.move_on_after(STOP_DRAIN_SECONDS):
            await self._done.wait()
        self._readers_scope.cancel()
        await self._done.wait()

    async def _terminate_group(self, grace: float) -> None:
        if not self._exited.is_set():
            # A look before the group's signal: a process found by its parent in the group
            # stays known as the run's once that parent is gone.
            await self.tree()
        self._signal_group(signal.SIGTERM)
        # The grace runs from the group's SIGTERM, not from after the look at the tree.
        deadline = trio.current_time() + grace
        await self._signal_tree(signal.SIGTERM)
        with trio.move_on_at(deadline):
            await self._ended.wait()
        # Always: whatever of the tree or the group outlived the grace goes too; the tree
        # first, while the ancestry of what left the group is intact.
        if not self._ended.is_set():
            await self._kill_tree()
        self._signal_group(signal.SIGKILL)
        await self._exited.wait()
        if self._ended.is_set():
            return
        with trio.move_on_after(TREE_KILL_WAIT_SECONDS):
            await self._ended.wait()
        if not self._ended.is_set():
            left = len(await self.tree())
            self.problem = f"{left} process(es) of this run could not be killed"
            self._tree_given_up = True
            self._tree_wakeup.set()
        await self._ended.wait()

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
        self._check_logs()
        self._close_files()

    def _close_files(self) -> None:
        for fd in self._log_fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._log_fds.clear()
        if self._events is not None:
            with contextlib.suppress(OSError):
                self._events.close()
            self._events = None

    # ---- input ----------------------------------------------------------------------

    async def write_input(self, data: bytes, *, eof: bool, write_timeout: float) -> None:
        """Write to the child's stdin; raise ``StdinClosed`` or ``StdinBlocked``."""
        if self._stdin is None or self._exited.is_set():
            raise StdinClosed
        await self._stdin.write(data, eof=eof, write_timeout=write_timeout)

    async def send_message(self, text: str, *, write_timeout: float) -> Delivered:
        """One user turn (``runtime.interactive``); ``Refusal("not_interactive")`` where
        the agent takes none, ``StdinClosed`` / ``StdinBlocked`` as ``write_input``."""
        interaction = self.interaction
        if interaction is None:
            raise not_interactive(self.name)

        async def write(data: bytes) -> None:
            await self.write_input(data, eof=False, write_timeout=write_timeout)

        return await interaction.deliver(text, write)


async def _pause(pacer: ReadPacer) -> None:
    """A reader's pause in a burst of small writes (``pipes.ReadPacer``)."""
    await trio.sleep(READ_PAUSE_SECONDS)
    pacer.waited(READ_PAUSE_SECONDS, paused=True)


def _size(size: Sequence[int] | None) -> tuple[int, int] | None:
    return (size[0], size[1]) if size is not None and len(size) == 2 else None


def _first_leaf(exc: BaseException) -> BaseException:
    """The first exception in a (nested) group: the one to name in a message."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


__all__ = ["Agent", "AgentObserver", "AgentSpec", "StdinBlocked", "StdinClosed", "StreamStats"]
