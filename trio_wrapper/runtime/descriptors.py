"""The descriptor budget's sampler: counts ``/proc/self/fd`` off the event loop, rarely
while far from the limit, often near it, and at once after a refusal (what was closed
since the last sample may have made room)."""

from __future__ import annotations

import os
import resource
from collections.abc import Callable

import trio

from trio_wrapper.core.descriptors import DescriptorBudget

QUIET_INTERVAL = 5.0  # seconds between samples while under half the ceiling
TIGHT_INTERVAL = 0.5  # ... and past it
FD_DIR = "/proc/self/fd"


def count_open_descriptors() -> int | None:
    """Descriptors open in this process, or None where ``/proc`` cannot tell."""
    try:
        return max(0, len(os.listdir(FD_DIR)) - 1)  # less the one listdir held
    except OSError:
        return None


def open_file_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class Descriptors:
    """The budget agents and SSE clients are admitted against (synchronously), and the
    task that keeps its count current."""

    def __init__(
        self,
        reserve: int,
        limit: int | None = None,
        count: Callable[[], int | None] = count_open_descriptors,
        intervals: tuple[float, float] = (QUIET_INTERVAL, TIGHT_INTERVAL),
    ) -> None:
        self.budget = DescriptorBudget(open_file_limit() if limit is None else limit, reserve)
        self._count = count
        self._quiet, self._tight = intervals
        self._hurry = trio.Event()
        self._scope = trio.CancelScope()
        initial = count()
        if initial is not None:
            self.budget.sampled(initial)

    def admit(self, what: str, cost: int) -> None:
        try:
            self.budget.admit(what, cost)
        except Exception:
            self._hurry.set()  # the next one may fit: count again now
            raise

    async def sample(self) -> None:
        in_use = await trio.to_thread.run_sync(self._count)
        if in_use is not None:
            self.budget.sampled(in_use)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Count now and then until ``close``."""
        task_status.started()
        with self._scope:
            while True:
                await self.sample()
                interval = self._tight if self.budget.is_tight() else self._quiet
                with trio.move_on_after(interval):
                    await self._hurry.wait()
                if self._hurry.is_set():
                    self._hurry = trio.Event()
                    await trio.sleep(0.05)  # a burst of refusals costs one count, not many

    def close(self) -> None:
        self._scope.cancel()
