"""How much a pipe read asks for: a page for a slow writer, everything for a flood."""

from __future__ import annotations

import itertools
import os
import sys

import pytest

from tests.helpers import PY, wait_for
from trio_wrapper.runtime.agent import Agent, AgentSpec
from trio_wrapper.runtime.pipes import (
    MIN_READ,
    PAUSE_BELOW_BYTES,
    READ_PAUSE_SECONDS,
    ReadPacer,
    next_read_size,
)
from trio_wrapper.runtime.supervisor import Supervisor

MOST = 1024 * 1024
MANY_LINES_A_READ = 100


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


def test_a_slow_writer_is_never_paused_for() -> None:
    pacer = ReadPacer()
    assert not pacer.at_empty_pipe()  # nothing read yet: wait for the pipe
    for _ in range(3):
        pacer.waited(0.05, paused=False)  # a line every 50 ms
        assert not pacer.after_read(80, MIN_READ)
        assert not pacer.at_empty_pipe()


def test_a_burst_of_small_writes_is_read_a_millisecond_at_a_time() -> None:
    pacer = ReadPacer()
    pacer.waited(READ_PAUSE_SECONDS / 10, paused=False)  # the pipe was readable at once
    assert pacer.after_read(40, MIN_READ)  # it emptied the pipe: pause before the next
    pacer.waited(READ_PAUSE_SECONDS, paused=True)
    assert not pacer.after_read(MIN_READ, MIN_READ)  # filled its ask: more is waiting
    assert not pacer.after_read(PAUSE_BELOW_BYTES, MOST)  # a big read: the writer is fast
    assert pacer.at_empty_pipe()  # empty after data: still a burst, pause again
    pacer.waited(READ_PAUSE_SECONDS, paused=True)
    assert not pacer.at_empty_pipe()  # nothing came in a pause: wait for the pipe
    pacer.waited(1.0, paused=False)
    assert not pacer.after_read(40, MIN_READ)  # a long wait: no longer a burst


def test_a_pipe_refilled_between_two_reads_is_a_burst() -> None:
    """The writer on the other core: the reader never finds the pipe empty, so it never
    waits for it, yet each read empties it (CI saw reads of 1,411, 810, 162… bytes
    microseconds apart)."""
    pacer = ReadPacer()
    pacer.waited(0.05, paused=False)  # a long wait: not known as a burst
    assert not pacer.after_read(1411, MIN_READ)  # emptied the pipe once: may be a slow writer
    assert pacer.after_read(810, MIN_READ)  # refilled at once and emptied again: pause
    pacer.waited(READ_PAUSE_SECONDS, paused=True)
    assert pacer.after_read(3000, MIN_READ)


def test_a_flood_is_no_burst() -> None:
    pacer = ReadPacer()
    pacer.waited(0.05, paused=False)
    assert not pacer.after_read(MIN_READ, MIN_READ)  # more is waiting: a flood
    assert not pacer.after_read(500_000, MOST)  # caught the writer mid-write: emptied
    assert not pacer.after_read(20_000, MOST)  # a little more: one small read, not two
    assert not pacer.after_read(MOST, MOST)
    pacer.waited(0.05, paused=False)  # a wait between two emptying reads
    assert not pacer.after_read(80, MIN_READ)
    assert not pacer.at_empty_pipe()


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


@pytest.mark.parametrize("writer_core", ["same", "other"])
async def test_a_line_per_write_is_read_a_millisecond_at_a_time(
    supervisor: Supervisor, monkeypatch: pytest.MonkeyPatch, writer_core: str
) -> None:
    """20,000 lines, one ``write(2)`` each, as fast as the child can. Read as they came,
    the reads followed each other within microseconds, six to twenty lines each; paused
    in the burst, reads come about a millisecond apart, many lines each. The writer runs
    on the reader's core (the reader finds the pipe empty between writes) or on another
    (it may never find it empty): both are paused for."""
    cores = sorted(os.sched_getaffinity(0))
    if writer_core == "other" and len(cores) < 2:
        pytest.skip("one CPU here: no other core for the writer")
    reader = cores[0]
    writer = reader if writer_core == "same" else cores[1]
    spy = ReadSpy(monkeypatch)
    lines = 20_000
    code = (
        f"import os\nos.sched_setaffinity(0, {{{writer}}})\n"
        f"for i in range({lines}):\n    os.write(1, b'line %d\\n' % i)"
    )
    os.sched_setaffinity(0, {reader})  # this thread: the daemon's, whose reader it is
    try:
        agent = await supervisor.start(AgentSpec("burst", [PY, "-c", code], format="none"))
        await wait_for(lambda: not agent.is_live, 20)
    finally:
        os.sched_setaffinity(0, cores)
    assert agent.stats["stdout"].lines == lines
    reads = sum(len(each) for each in spy.reads.values())
    # Paused: about a thousand lines a read, quiet or loaded (a loaded machine makes
    # reads fewer and bigger, not more). Read as they came: six to twenty.
    assert lines / reads >= MANY_LINES_A_READ, spy.reads
    spy.check_each_ask()
