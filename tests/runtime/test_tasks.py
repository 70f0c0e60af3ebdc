"""The daemon's task count follows tasks as they start and end."""

from __future__ import annotations

import trio

from trio_wrapper.runtime.tasks import TaskCount


async def test_the_count_starts_from_the_tasks_alive_and_follows_them() -> None:
    counter = TaskCount()
    async with trio.open_nursery() as outer:
        outer.start_soon(trio.sleep_forever)  # alive before the count starts
        await trio.testing.wait_all_tasks_blocked()
        counter.install()
        start = counter.count()
        assert start >= 3  # the root task's tree: at least this test and the sleeper
        release = trio.Event()
        async with trio.open_nursery() as inner:
            for _ in range(5):
                inner.start_soon(release.wait)
            await trio.testing.wait_all_tasks_blocked()
            assert counter.count() == start + 5
            release.set()
        assert counter.count() == start
        outer.cancel_scope.cancel()
    assert counter.count() == start - 1  # the sleeper ended
    counter.uninstall()
    async with trio.open_nursery() as after:
        after.start_soon(trio.sleep, 0)
    assert counter.count() == start - 1  # no longer followed
