"""Deadlines that do not linger: long sleeps in slices (the same wake-up time as
trio.sleep, and a cancelled one leaves no entry in trio's deadline heap for longer than
a slice; trio.sleep's stays until its deadline), and trio sweeping stale entries at a
margin of 64 instead of 1,000."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from trio_wrapper.runtime import deadlines
from trio_wrapper.runtime.deadlines import (
    SLICE_SECONDS,
    STALE_DEADLINES,
    sleep_in_slices,
    sweep_stale_deadlines_sooner,
)


def stale_deadlines() -> int:
    """Entries of trio's deadline heap whose scope no longer has that deadline (exited or
    changed). Private to trio: the test says so instead of guessing if it moves."""
    try:
        heap = trio._core._run.GLOBAL_RUN_CONTEXT.runner.deadlines._heap
    except AttributeError:
        pytest.skip("trio's deadline heap is not where this test looks (trio changed)")
    return sum(1 for deadline, _, scope in heap if deadline != scope._registered_deadline)


async def test_it_wakes_when_trio_sleep_would(autojump_clock: trio.testing.MockClock) -> None:
    for seconds in (0.0, 0.25, SLICE_SECONDS, 95.5, 3600.0):
        start = trio.current_time()
        await sleep_in_slices(seconds)
        assert trio.current_time() - start == pytest.approx(seconds, abs=1e-6)


async def test_it_wakes_at_most_a_slice_apart(autojump_clock: trio.testing.MockClock) -> None:
    wakes: list[float] = []
    real_sleep_until = trio.sleep_until

    async def spy(deadline: float) -> None:
        await real_sleep_until(deadline)
        wakes.append(trio.current_time())

    start = trio.current_time()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trio, "sleep_until", spy)
        await sleep_in_slices(35.0, slice_seconds=10.0)
    assert [round(w - start, 6) for w in wakes] == [10.0, 20.0, 30.0, 35.0]


async def test_zero_is_still_a_checkpoint() -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        await sleep_in_slices(0)
    assert scope.cancelled_caught


@pytest.mark.parametrize("seconds", [-1.0, float("nan")])
async def test_bad_durations_are_refused(seconds: float) -> None:
    with pytest.raises(ValueError):
        await sleep_in_slices(seconds)


async def cancelled_early(sleeper: Callable[[float], Awaitable[None]]) -> int:
    """An hour's timer cancelled after a second (a run that ended); the stale entries
    left a slice and a second later."""
    async with trio.open_nursery() as nursery:
        scope = trio.CancelScope()

        async def timer() -> None:
            with scope:
                await sleeper(3600.0)

        nursery.start_soon(timer)
        await trio.sleep(1.0)
        scope.cancel()
    await trio.sleep(SLICE_SECONDS + 1.0)
    return stale_deadlines()


async def test_a_cancelled_timer_leaves_the_deadline_heap_within_a_slice(
    autojump_clock: trio.testing.MockClock,
) -> None:
    assert await cancelled_early(sleep_in_slices) == 0


async def test_trio_sleep_leaves_its_entry_for_the_whole_hour(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """What the slices are for: the same timer on trio.sleep is still in the heap."""
    assert await cancelled_early(trio.sleep) == 1


async def cancel_many_hour_long_timeouts(count: int) -> None:
    """What requests do under load: each sends its answer under a long timeout, done at
    once (Quart's 60 s for a response)."""
    for _ in range(count):
        with trio.move_on_after(3600.0):
            await trio.lowlevel.checkpoint()


async def test_trio_keeps_a_thousand_stale_deadlines_by_default(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # What the daemon changes: here, trio as it comes (the setting is per process).
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(deadlines.trio_run, deadlines.TRIO_PRUNE_THRESHOLD, 1000)
        await cancel_many_hour_long_timeouts(900)
        await trio.sleep(1.0)  # the run loop turns: a sweep would come now
        assert stale_deadlines() == 900


async def test_after_the_tuning_they_are_swept_at_a_margin_of_64(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        # undone after the test, whatever it sets
        patch.setattr(deadlines.trio_run, deadlines.TRIO_PRUNE_THRESHOLD, 1000)
        assert sweep_stale_deadlines_sooner()
        assert getattr(deadlines.trio_run, deadlines.TRIO_PRUNE_THRESHOLD) == STALE_DEADLINES
        await cancel_many_hour_long_timeouts(900)
        await trio.sleep(1.0)
        assert stale_deadlines() <= STALE_DEADLINES


def test_the_tuning_says_when_trio_has_no_such_setting() -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.delattr(deadlines.trio_run, deadlines.TRIO_PRUNE_THRESHOLD)
        assert not sweep_stale_deadlines_sooner()
        assert not hasattr(deadlines.trio_run, deadlines.TRIO_PRUNE_THRESHOLD)
