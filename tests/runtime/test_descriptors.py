"""The descriptor sampler: counts at start, again after a refusal (not only on its timer),
and the count of this process is a real one."""

from __future__ import annotations

import os

import pytest
import trio

from trio_wrapper.core.errors import Refusal
from trio_wrapper.runtime.descriptors import Descriptors, count_open_descriptors


def test_counts_this_process_descriptors() -> None:
    before = count_open_descriptors()
    assert before is not None
    fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(10)]
    try:
        assert count_open_descriptors() == before + 10
    finally:
        for fd in fds:
            os.close(fd)


async def test_a_refusal_makes_it_count_again_at_once() -> None:
    counts = iter([90, 90, 10, 10])
    counted: list[trio.Event] = [trio.Event() for _ in range(4)]
    calls = 0

    def count() -> int:  # in a worker thread, except the first (in __init__)
        nonlocal calls
        if calls:
            trio.from_thread.run_sync(counted[calls].set)
        calls += 1
        return next(counts)

    # Timers of a minute: within this test only a refusal can make it count again.
    descriptors = Descriptors(reserve=10, limit=100, count=count, intervals=(60.0, 60.0))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(descriptors.run)
        with trio.fail_after(10):
            await counted[1].wait()  # its first round: 90 in use
        with pytest.raises(Refusal):
            descriptors.admit("agent", 8)
        with trio.fail_after(10):
            await counted[2].wait()
            # The count is applied once the thread is back: nothing to wait on but it.
            while descriptors.budget.estimate != 10:  # noqa: ASYNC110
                await trio.sleep(0.01)
        descriptors.admit("agent", 8)  # 10 in use now
        assert descriptors.budget.estimate == 18
        assert calls == 3
        nursery.cancel_scope.cancel()


async def test_without_proc_the_budget_stays_as_it_was() -> None:
    descriptors = Descriptors(reserve=10, limit=100, count=lambda: None)
    await descriptors.sample()
    assert descriptors.budget.estimate == 0
    descriptors.admit("agent", 8)
