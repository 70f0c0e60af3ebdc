"""The run index on the trio side: SQLite work off the event loop, the agents' usage as
it is reported, and retention.

``IndexService`` is an ``AgentObserver`` (registered with the supervisor):

- each status change of a run is queued and written to the index by one writer task;
  at the run's end with its usage and files, tallied here from the records as they
  came (``history.usage``), so its events file is never read back;
- each batch of records grows the run's tally, and what the usage grew by is added to
  the Prometheus counters (``metrics.usage``): a cumulative figure counts once.

Every use of the SQLite connection is one ``trio.to_thread.run_sync`` call made while
holding one ``trio.Lock``: one connection, never used by two threads at once, and the
event loop never waits on the disk. The file is open only during such a call.

``run`` opens the index (a missing or damaged file is made anew), reports itself started,
then syncs the index with the run files in the background (queries wait for that first
sync), and applies retention at start and every ``retention.interval_seconds``.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import trio

from trio_wrapper.config import Config
from trio_wrapper.core.errors import Refusal
from trio_wrapper.core.lines import LineBatch
from trio_wrapper.core.models import RunMeta
from trio_wrapper.core.status import Status
from trio_wrapper.extract.found import Found
from trio_wrapper.history.index import RunIndex, StoredRun, run_id
from trio_wrapper.history.retention import (
    Removal,
    RetentionPolicy,
    RunOnDisk,
    choose_removals,
)
from trio_wrapper.history.runfiles import STREAMS, RunFiles
from trio_wrapper.history.usage import ModelUsage, UsageTally, model_from_command, usage_growth
from trio_wrapper.metrics.usage import UsageCounters
from trio_wrapper.runtime.agent import Agent
from trio_wrapper.runtime.views import run_meta

log = logging.getLogger("trio_wrapper.index")
retention_log = logging.getLogger("trio_wrapper.retention")

T = TypeVar("T")
# How long a query waits for the first sync before it is refused (503 index_unavailable).
READY_WAIT_SECONDS = 30.0
# The record types a run's usage and files are made of.
# Status changes waiting for the writer; past it they are read back from the run files.
WRITE_QUEUE = 4096
_USAGE_KINDS = ("metric", "session", "file_op")


class IndexService:
    def __init__(
        self,
        config: Config,
        agents: Mapping[str, Agent],
        counters: UsageCounters | None = None,
        *,
        index: RunIndex | None = None,
        queue_size: int = WRITE_QUEUE,
    ) -> None:
        self.config = config
        self.index = index if index is not None else RunIndex(config.logs_path)
        self.counters = counters if counters is not None else UsageCounters()
        self.policy = RetentionPolicy(
            keep_runs=config.retention.keep_runs,
            keep_days=config.retention.keep_days,
            max_total_bytes=config.retention.max_total_bytes,
        )
        self._agents = agents  # the supervisor's registry (read-only here)
        self._lock = trio.Lock()
        self._send, self._receive = trio.open_memory_channel[
            tuple[RunFiles, RunMeta | None, UsageTally | None]
        ](queue_size)
        # Set when a status change found the queue full: the run files still have it, and
        # the writer syncs from them once it has caught up (the index is a cache).
        self._behind = False
        self._tallies: dict[Agent, tuple[UsageTally, dict[str, ModelUsage]]] = {}
        self.ready = trio.Event()  # the first sync is done
        self.failed: str | None = None  # why the index could not be opened or synced
        self._started = False
        self._closed = trio.Event()
        self.retention_passes = 0

    # ---- running --------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._started = True
        try:
            await self._in_thread(self.index.open, connect=False)
        except Exception as exc:  # (OSError, sqlite3.Error…): the daemon goes on without
            self._give_up(f"cannot open the run index {str(self.index.path)!r}: {exc}")
            task_status.started()
            await self._closed.wait()
            return
        task_status.started()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write_forever)
                await self._first_sync()
                if self.policy.active:
                    nursery.start_soon(self._retention_forever)
                await self._closed.wait()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self._drain()

    async def stop(self) -> None:
        """Write what is queued, then close (``run`` returns)."""
        self._closed.set()

    def _give_up(self, why: str) -> None:
        log.error("%s; /api/runs and /api/usage are unavailable", why)
        self.failed = why
        self.ready.set()

    async def _first_sync(self) -> None:
        began = time.monotonic()
        try:
            report = await self._in_thread(self.index.sync)
        except Exception as exc:  # never the daemon's end: the index is only a cache
            log.debug("run index sync failed", exc_info=exc)
            self._give_up(f"cannot sync the run index: {exc}")
            return
        self.ready.set()
        log.info(
            "run index %s: %d runs read, %d events files read, %d removed, "
            "%d directories unchanged (%.3f s)",
            "rebuilt" if self.index.rebuilt else "synced",
            report.metas_read,
            report.events_read,
            report.removed,
            report.dirs_skipped,
            time.monotonic() - began,
        )

    async def _in_thread(self, fn: Callable[[], T], *, connect: bool = True) -> T:
        """``fn()`` in a worker thread, with the index file open only meanwhile: a
        database held open would keep the logs dir's filesystem from being remounted."""
        index = self.index

        def call() -> T:
            if connect:  # (``open`` connects, checks the file, makes it anew if need be)
                index.connect()
            try:
                return fn()
            finally:
                index.close()

        async with self._lock:
            return await trio.to_thread.run_sync(call)

    async def query(self, fn: Callable[[RunIndex], T]) -> T:
        """``fn(index)`` in a worker thread, once the first sync is done; 503
        ``index_unavailable`` when the index is not running or could not be opened."""
        if not self._started:
            raise Refusal("index_unavailable", "the run index is not running")
        with trio.move_on_after(READY_WAIT_SECONDS):
            await self.ready.wait()
        if not self.ready.is_set():
            raise Refusal("index_unavailable", "the run index is still being built")
        if self.failed is not None or self._closed.is_set():
            raise Refusal("index_unavailable", self.failed or "the run index is closed")
        index = self.index
        return await self._in_thread(lambda: fn(index))

    # ---- writing --------------------------------------------------------------------

    async def _write_forever(self) -> None:
        async for item in self._receive:
            await self._write(item)
            if self._behind and self._receive.statistics().current_buffer_used == 0:
                self._behind = False
                await self._catch_up()

    async def _catch_up(self) -> None:
        """What the full queue could not take, read back from the run files."""
        try:
            await self._in_thread(self.index.sync)
        except Exception as exc:  # the next start's sync picks the runs up
            log.warning("run index: cannot sync after a full queue: %s", exc)

    def _queue(self, item: tuple[RunFiles, RunMeta | None, UsageTally | None]) -> None:
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            self._behind = True

    async def _drain(self) -> None:
        while True:
            try:
                item = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            await self._write(item)

    async def _write(self, item: tuple[RunFiles, RunMeta | None, UsageTally | None]) -> None:
        files, meta, tally = item
        index = self.index

        def write() -> None:
            got = meta if meta is not None else files.read_meta()
            if got is not None:
                index.record_run(files, got, tally)

        try:
            await self._in_thread(write)
        except (OSError, sqlite3.Error) as exc:
            # The run files stay the truth: the next start's sync picks the run up.
            log.warning("run index: cannot record %s: %s", files.meta, exc)
        except Exception:  # a bug here must not end the daemon: the index is a cache
            log.exception("run index: cannot record %s", files.meta)

    # ---- AgentObserver --------------------------------------------------------------

    def on_lines(self, agent: Agent, stream: str, first_line_num: int, batch: LineBatch) -> None:
        pass

    def on_status(self, agent: Agent, old: Status | None, new: Status) -> None:
        if new is Status.STARTING or self.failed is not None:
            return
        tally: UsageTally | None = None
        if new.is_terminal:
            tally = self._tally(agent)
            self._tallies.pop(agent, None)
        self._queue((agent.files, run_meta(agent), tally))

    def on_removed(self, agent: Agent) -> None:
        # DELETE wrote deleted_at into the meta file: read it from there.
        self._tallies.pop(agent, None)
        self.counters.forget_agent(agent.name)
        if self.failed is None:
            self._queue((agent.files, None, None))

    def on_records(self, agent: Agent, found: Found, counts_by_type: Mapping[str, int]) -> None:
        if not any(counts_by_type.get(kind) for kind in _USAGE_KINDS):
            return  # the usual batch: responses, tool calls… nothing to tally
        entry = self._tallies.get(agent)
        if entry is None:
            tally = UsageTally(model_from_command(agent.spec.command))
            entry = self._tallies[agent] = (tally, {})
        tally, last = entry
        tally.add_found(found)
        if not counts_by_type.get("metric"):
            return  # a model or a file: no figure changed
        totals = tally.totals()
        tokens, costs = usage_growth(last, totals)
        for model, kind, count in tokens:
            self.counters.add_tokens(agent.name, model, kind, count)
        for model, usd in costs:
            self.counters.add_cost(agent.name, model, usd)
        self._tallies[agent] = (tally, totals)

    def _tally(self, agent: Agent) -> UsageTally:
        entry = self._tallies.get(agent)
        if entry is not None:
            return entry[0]
        return UsageTally(model_from_command(agent.spec.command))

    # ---- retention ------------------------------------------------------------------

    async def _retention_forever(self) -> None:
        while True:
            try:
                await self.apply_retention()
            except (OSError, sqlite3.Error) as exc:
                retention_log.warning("retention failed: %s", exc)
            except Exception:  # a bug here must not end the daemon
                retention_log.exception("retention failed")
            await trio.sleep(self.config.retention.interval_seconds)

    async def apply_retention(self) -> list[Removal]:
        """One pass: choose (policy), remove the files, drop the rows, log and count."""
        # Read on the trio thread: every listed run (the live ones among them) is kept.
        listed = frozenset(
            run_id(agent.files.directory.name, agent.files.stamp) for agent in self._agents.values()
        )
        index = self.index

        def stored_runs() -> list[StoredRun]:
            index.sync()  # runs added or removed on disk since (cheap when nothing changed)
            return index.stored_runs()

        stored = await self._in_thread(stored_runs)
        runs = [
            RunOnDisk(
                run.id,
                run.name,
                run.disk_bytes,
                run.started_ts,
                # A run not ended may be one being started (not listed yet).
                protected=run.id in listed or not run.ended,
            )
            for run in stored
        ]
        removals = choose_removals(runs, self.policy, time.time())
        if removals:
            logs_dir = self.config.logs_path

            def remove() -> list[int]:
                sizes = [_remove_run_files(logs_dir, removal.run) for removal in removals]
                index.forget(removal.run.id for removal in removals)
                return sizes

            sizes = await self._in_thread(remove)
            for removal, size in zip(removals, sizes, strict=True):
                retention_log.info(
                    "removed run %s (%d bytes): %s", removal.run.id, size, removal.reason
                )
            self.counters.add_removed(len(removals), sum(sizes))
        self.retention_passes += 1
        return removals


def _remove_run_files(logs_dir: Path, run: RunOnDisk) -> int:
    """Delete a run's files; the bytes they held."""
    name, _, stamp = run.id.partition("/")
    files = RunFiles(logs_dir / "agents" / name, stamp)
    removed = 0
    paths = [*(files.log(s) for s in STREAMS), files.events, files.meta.with_suffix(".json.tmp")]
    paths.append(files.meta)  # last: while it exists, the run still looks like one
    for path in paths:
        with contextlib.suppress(OSError):
            size = path.stat().st_size
            path.unlink()
            removed += size
    return removed
