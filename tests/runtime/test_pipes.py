"""How much a pipe read asks for: a page for a slow writer, everything for a flood."""

from __future__ import annotations

import itertools
import os
import sys

import pytest

from tests.helpers import PY, wait_for
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
    """``os.read`` with what each call of an agent's reader asked for and got, by
    descriptor (other callers, such as trio's own pipes, are let through unrecorded)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads: dict[int, list[tuple[int, int]]] = {}
        real = os.read
        reader = Agent._read.__code__

        def read(fd: int, n: int) -> bytes:
            data = real(fd, n)
            if sys._getframe(1).f_code is reader:
                self.reads.setdefault(fd, []).append((n, len(data)))
            return data

        monkeypatch.setattr(os, "read", read)

    def asks(self) -> list[int]:
        return [asked for reads in self.reads.values() for asked, _ in reads]

    def check_each_ask(self) -> None:
        """Every ask follows from the read before it on the same pipe."""
        for reads in self.reads.values():
            assert reads[0][0] == MIN_READ
            for (asked, got), (next_ask, _) in itertools.pairwise(reads):
                assert next_ask == next_read_size(got, asked, MOST), reads


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
    assert spy.asks() and max(spy.asks()) == MIN_READ, spy.reads  # a megabyte a line, before
    spy.check_each_ask()

    spy.reads.clear()
    # One write of 8 MiB: the pipe is full whenever the reader comes, so its first read
    # (a page) fills, and the next asks for all it may.
    code = f"import sys; sys.stdout.buffer.write(bytes({8 * MOST}))"
    flood = await supervisor.start(AgentSpec("flood", [PY, "-c", code], format="none"))
    await wait_for(lambda: not flood.is_live, 20)
    assert flood.stats["stdout"].bytes == 8 * MOST
    assert MOST in spy.asks(), spy.reads
    spy.check_each_ask()
