"""A run taken off the list is freed within a second, not whenever the collector runs."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any, cast

import pytest
import trio
import trio.testing

from tests.helpers import wait_for
from trio_wrapper.core.spec import AgentSpec
from trio_wrapper.runtime.agent import Agent
from trio_wrapper.runtime.garbage import RunGarbage
from trio_wrapper.runtime.supervisor import Supervisor


@pytest.fixture
def collector_off() -> Iterator[None]:
    """Python's own collections off: only ours may free a cycle."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


class _Cycle:
    def __init__(self) -> None:
        self.me = self


async def test_removals_in_a_row_share_one_collection_a_delay_later(
    autojump_clock: trio.testing.MockClock, collector_off: None
) -> None:
    garbage = RunGarbage(delay=1.0)
    cycle = _Cycle()
    ref = weakref.ref(cycle)
    del cycle
    async with trio.open_nursery() as nursery:
        await nursery.start(garbage.run)
        await trio.sleep(5)
        assert garbage.collections == 0  # nothing removed: nothing collected
        for _ in range(3):
            garbage.on_removed(cast(Agent, None))
            await trio.sleep(0.2)
        assert ref() is not None and garbage.collections == 0
        await trio.sleep(0.9)
        assert ref() is None and garbage.collections == 1
        await trio.sleep(5)
        assert garbage.collections == 1
        garbage.on_removed(cast(Agent, None))  # a later removal: a collection of its own
        await trio.sleep(1.1)
        assert garbage.collections == 2
        garbage.close()


async def test_a_deleted_run_is_freed_by_the_collection(
    supervisor: Supervisor, collector_off: None
) -> None:
    """A run is a cycle: with the collector off it outlives its DELETE until the
    collection that its removal asked for."""
    garbage = RunGarbage(delay=0.05)
    supervisor.observers.append(garbage)
    async with trio.open_nursery() as nursery:
        await nursery.start(garbage.run)
        agent = await supervisor.start(AgentSpec(name="short", command=["echo", "hello"]))
        await wait_for(lambda: not supervisor.agents["short"].is_live)
        ref: weakref.ref[Any] = weakref.ref(agent)
        del agent
        await supervisor.remove("short")
        assert ref() is not None  # unlisted, but a cycle: still there
        await wait_for(lambda: ref() is None)
        assert garbage.collections >= 1
        garbage.close()
