"""How much a pipe read asks for: a page for a slow writer, everything for a flood."""

from __future__ import annotations

import os
import sys

import pytest

from tests.helpers import PY, wait_for
from trio_wrapper.runtime import agent as agent_module
from trio_wrapper.runtime.agent import Agent, AgentSpec
from trio_wrapper.runtime.pipes import MIN_READ, next_read_size
from trio_wrapper.runtime.supervisor import Supervisor

MOST = 1024 * 1024


def test_a_read_that_filled_its_ask_is_followed_by_the_biggest() -> None:
    assert next_read_size(MIN_READ, MIN_READ, MOST) == MOST
    assert next_read_size(MOST, MOST, MOST) == MOST


def test_a_short_read_asks_twice_what_came_at_least_a_page() -> None:
    assert next_read_size(80, MOST, MOST) == MIN_READ
    assert next_read_size(0, MIN_READ, MOST) == MIN_READ
    assert next_read_size(10_000, MOST, MOST) == 20_000
    assert next_read_size(700_000, MOST, MOST) == MOST  # never more than the most


def test_the_most_wins_over_the_page() -> None:
    assert next_read_size(10, 100, 100) == 100


class ReadSpy:
    """``os.read`` with what each call of an agent's reader asked for (other callers, such
    as trio's own pipes, are let through unrecorded)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.asked: dict[int, list[int]] = {}
        real = os.read
        reader = Agent._read.__code__

        def read(fd: int, n: int) -> bytes:
            if sys._getframe(1).f_code is reader:
                self.asked.setdefault(fd, []).append(n)
            return real(fd, n)

        monkeypatch.setattr(agent_module.os, "read", read)

    def all_asks(self) -> list[int]:
        return [n for asks in self.asked.values() for n in asks]


async def test_a_slow_writer_is_read_a_page_at_a_time_and_a_flood_a_megabyte_at_a_time(
    supervisor: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = ReadSpy(monkeypatch)
    code = (
        "import time\nfor i in range(5):\n    print(f'line {i}', flush=True)\n    time.sleep(0.05)"
    )
    slow = await supervisor.start(AgentSpec("slow", [PY, "-c", code], format="none"))
    await wait_for(lambda: not slow.is_live, 10)
    assert slow.stats["stdout"].lines == 5
    asks = spy.all_asks()
    assert asks and max(asks) == MIN_READ, asks  # a megabyte per line, before

    spy.asked.clear()
    flood = await supervisor.start(
        AgentSpec("flood", ["head", "-c", str(8 * MOST), "/dev/zero"], format="none")
    )
    await wait_for(lambda: not flood.is_live, 20)
    assert flood.stats["stdout"].bytes == 8 * MOST
    asks = spy.all_asks()
    assert asks.count(MOST) >= 7, asks  # after the first page, all it may
