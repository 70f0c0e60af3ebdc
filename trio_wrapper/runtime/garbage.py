"""A run taken off the list is collected soon, not whenever the collector gets round to it.

A run is a graph of objects that refer to each other (its agent, pipeline, extraction
side, observers' bound methods, its tasks' frames), so once it is unlisted (DELETE, or
replaced by a restart) only Python's cyclic garbage collector can free it, and with it
what it holds: its record store and its events, megabytes for a busy run. The daemon
runs that collector's oldest generation rarely (``daemon.GC_THRESHOLD``: its pauses
would show up as SSE latency), and the heap is given back only once the daemon is quiet
(``heap.QuietTrim``). Under steady work neither came: 16 Claude runs of 100,000 lines,
each deleted before the next started, grew the daemon by about 10 MB a run (59 to 234
MB), and only a quiet spell's collection and trim brought it back (to 63 MB).

So a removal asks for one full collection, :data:`COLLECT_DELAY_SECONDS` later: by then
the request that removed the run has answered and let go of it, and removals in a row
(a sweep of ended runs) share one collection. It costs about a millisecond: what the
daemon built at start is frozen out of the collector's reach, and lines and records are
bytes and ``gc=False`` structs, which it does not walk.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from trio_wrapper.core.lines import LineBatch
    from trio_wrapper.core.status import Status
    from trio_wrapper.extract.found import Found
    from trio_wrapper.runtime.agent import Agent

COLLECT_DELAY_SECONDS = 1.0


class RunGarbage:
    """An agent observer (``runtime.agent.AgentObserver``) that only cares about
    removals; :meth:`run` (in the daemon's nursery) does the collecting."""

    def __init__(
        self,
        delay: float = COLLECT_DELAY_SECONDS,
        collect: Callable[[], object] = gc.collect,
    ) -> None:
        self._delay = delay
        self._collect = collect
        self._wanted = trio.Event()
        self._scope = trio.CancelScope()
        self.collections = 0

    def on_removed(self, agent: Agent) -> None:
        self._wanted.set()

    def on_lines(self, agent: Agent, stream: str, first_line_num: int, batch: LineBatch) -> None:
        pass

    def on_status(self, agent: Agent, old: Status | None, new: Status) -> None:
        pass

    def on_records(self, agent: Agent, found: Found, counts_by_type: Mapping[str, int]) -> None:
        pass

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        with self._scope:
            while True:
                await self._wanted.wait()
                await trio.sleep(self._delay)
                # Removals from now on ask for the next collection; those before are in it.
                self._wanted = trio.Event()
                self._collect()
                self.collections += 1

    def close(self) -> None:
        self._scope.cancel()
