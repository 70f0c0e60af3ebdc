"""The extraction worker: its wire format (pure), the process itself, and the daemon's
side of it: what it publishes, that it waits when the worker is behind, and that a
worker that dies loses nothing."""

from __future__ import annotations

import gc
import io
import os
import pickle
import signal
import sys
import weakref
from collections.abc import Sequence

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.extract.test_transcripts import FORMATS, lines_of
from tests.helpers import wait_for
from trio_wrapper.core.lines import Lines
from trio_wrapper.extract import make_extractor
from trio_wrapper.extract.found import Found
from trio_wrapper.extract.rules import parse_rules
from trio_wrapper.extract.store import ExtractionStore
from trio_wrapper.extract.worker import (
    Extracted,
    Feed,
    Finish,
    Hello,
    Open,
    PipeSink,
    ReplyReader,
    frame,
    serve,
)
from trio_wrapper.runtime.extraction import ExtractionWorker, RemoteExtraction

CLAUDE = "claude/vincent_stream_permission_allow_2.1.226.jsonl"
RULES = parse_rules(
    {"rules": [{"name": "ids", "type": "session", "regex": r'"request_id":"(\w+)"', "key": "req"}]},
    "test",
)


def batches(lines: list[bytes], size: int) -> list[list[bytes]]:
    return [lines[i : i + size] for i in range(0, len(lines), size)]


def local(fmt: str, parts: Sequence[Sequence[bytes]], rules: Sequence[object] = ()) -> Found:
    """What extraction in the daemon publishes for these batches, all together."""
    extractor = make_extractor(fmt, rules)  # type: ignore[arg-type]
    found = Found()
    first = 1
    for part in parts:
        found = found + Found.of(extractor.feed(part, first, "stdout"))
        first += len(part)
    return found + Found.of(extractor.finish())


def joined(founds: Sequence[Found]) -> Found:
    total = Found()
    for found in founds:
        total = total + found
    return total


# ---- the wire format, without a process -----------------------------------------------


def worker_input(fmt: str, parts: list[list[bytes]]) -> bytes:
    out = [frame(Hello(pickle.dumps(list(RULES)))), frame(Open(7, fmt))]
    first = 1
    for part in parts:
        data = b"\n".join(part)
        out += [frame(Feed(7, first, "stdout", len(part), len(data))), data]
        first += len(part)
    out.append(frame(Finish(7)))
    return b"".join(out)


@settings(max_examples=50, deadline=None)
@given(name=st.sampled_from(sorted(FORMATS)), size=st.integers(1, 5), cuts=st.data())
def test_serve_answers_each_feed_as_the_extractor_would(
    name: str, size: int, cuts: st.DataObject
) -> None:
    fmt = FORMATS[name]
    parts = batches(lines_of(name), size)
    sink = io.BytesIO()
    answers: list[int] = []  # what the idle trim is told: once per answer
    serve(io.BytesIO(worker_input(fmt, parts)), sink, lambda: answers.append(1))
    assert len(answers) == len(parts) + 1
    # The answers read back whatever way they arrive.
    output = sink.getvalue()
    points = sorted(cuts.draw(st.lists(st.integers(0, len(output)), max_size=8)))
    reader = ReplyReader()
    replies: list[tuple[Extracted, bytes, bytes]] = []
    for lo, hi in zip([0, *points], [*points, len(output)], strict=True):
        replies += reader.feed(output[lo:hi])
    assert len(replies) == len(parts) + 1  # one per Feed, one for Finish
    assert [reply.finished for reply, _, _ in replies] == [False] * len(parts) + [True]
    assert all(reply.run == 7 for reply, _, _ in replies)
    got = joined([Found(data, kinds, reply.usage) for reply, data, kinds in replies])
    want = local(fmt, parts, RULES)
    assert (got.data, got.kinds) == (want.data, want.kinds)
    assert list(got.usage) == list(want.usage)  # the condensed figures cross intact
    assert got, f"{name}: nothing extracted, the test would prove nothing"


class Trickle(io.RawIOBase):
    """A pipe's reading end as a reader sees it when writes come in pieces: each read
    gives at most ``most`` bytes, whatever was asked, and ``b""`` only at the end."""

    def __init__(self, data: bytes, most: int) -> None:
        self._data = memoryview(data)
        self._most = most

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self._most if size < 0 else min(size, self._most)
        piece, self._data = bytes(self._data[:size]), self._data[size:]
        return piece


@pytest.mark.parametrize("most", [1, 7, 4096])
def test_serve_reads_frames_that_come_in_pieces(most: int) -> None:
    """A short read is not the end of the input: the worker reads on. (It used to take a
    short read for the end, and exit with its runs half done.)"""
    parts = batches(lines_of("codex/plain_exec_v0.93_gaia_go.txt"), 3)
    whole, pieces = io.BytesIO(), io.BytesIO()
    serve(io.BytesIO(worker_input("text", parts)), whole)
    serve(Trickle(worker_input("text", parts), most), pieces)  # type: ignore[arg-type]
    assert pieces.getvalue() == whole.getvalue()
    assert len(whole.getvalue()) > 1000, "nothing answered: the test would prove nothing"


def test_the_pipe_sink_sends_every_byte_in_order_whatever_each_write_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write into a full pipe takes what fits when a signal or a ptrace stop (a
    profiler) comes. Each answer (header, records, kinds) must still arrive whole and in
    order: ``sys.stdout.buffer`` once sent records out of step with their header there,
    and the daemon, reading garbage, gave the worker up."""
    received = bytearray()
    takes = iter([3, 1, 5000, 2, 70_000, 1, 10**9] * 1000)

    def partial_writev(fd: int, buffers: Sequence[memoryview]) -> int:
        joined = b"".join(buffers)
        piece = joined[: next(takes)]
        received.extend(piece)
        return len(piece)

    monkeypatch.setattr(os, "writev", partial_writev)
    sink = PipeSink(-1)
    answers = [os.urandom(n) for n in (17, 0, 100_000, 3, 250_000, 1)]
    want = bytearray()
    for i in range(0, len(answers), 3):
        for part in answers[i : i + 3]:
            sink.write(part)
            want.extend(part)
        sink.flush()
    assert bytes(received) == bytes(want)
    sink.flush()  # nothing pending: nothing sent
    assert bytes(received) == bytes(want)


def test_the_pipe_sink_delivers_an_answer_larger_than_the_pipe() -> None:
    """On a real pipe narrower than the answer, read in small pieces."""
    read_end, write_end = os.pipe()
    try:
        big = [os.urandom(300_000), b"kinds", frame(Finish(1))]
        sink = PipeSink(write_end)
        got = bytearray()

        async def main() -> None:
            async with trio.open_nursery() as nursery:

                def send() -> None:
                    for part in big:
                        sink.write(part)
                    sink.flush()
                    os.close(write_end)

                nursery.start_soon(trio.to_thread.run_sync, send)
                while True:
                    piece = await trio.to_thread.run_sync(os.read, read_end, 1000)
                    if not piece:
                        break
                    got.extend(piece)

        trio.run(main)
        assert bytes(got) == b"".join(big)
    finally:
        os.close(read_end)


def test_worker_ignores_finish_for_a_run_it_does_not_know() -> None:
    sink = io.BytesIO()
    serve(io.BytesIO(frame(Hello(pickle.dumps([]))) + frame(Finish(3))), sink)
    assert sink.getvalue() == b""


# ---- the process and the daemon's side ----------------------------------------------------


class Published:
    def __init__(self) -> None:
        self.founds: list[Found] = []
        self.store = ExtractionStore("claude-stream-json")

    def __call__(self, found: Found) -> None:
        self.founds.append(found)

    @property
    def total(self) -> Found:
        return joined(self.founds)


def feed_all(side: object, parts: list[list[bytes]]) -> None:
    first = 1
    for part in parts:
        side.feed(Lines(b"\n".join(part), len(part)), first, "stdout")  # type: ignore[attr-defined]
        first += len(part)


async def started(nursery: trio.Nursery, **kwargs: int) -> ExtractionWorker:
    worker = ExtractionWorker(RULES, **kwargs)
    await nursery.start(worker.run)
    assert worker.process is not None
    return worker


async def test_remote_run_publishes_what_local_extraction_would(nursery: trio.Nursery) -> None:
    worker = await started(nursery)
    parts = batches(lines_of(CLAUDE), 3)
    out = Published()
    side = worker.open("claude-stream-json", out.store, out)
    assert isinstance(side, RemoteExtraction)
    feed_all(side, parts)
    with trio.fail_after(10):
        await side.finish()
    want = local("claude-stream-json", parts, RULES)
    assert (out.total.data, out.total.kinds) == (want.data, want.kinds)
    assert out.store.format == "claude-stream-json"
    assert worker.bytes_in_flight == 0
    assert not side.is_local


async def test_pipeline_waits_while_the_worker_is_behind(nursery: trio.Nursery) -> None:
    worker = await started(nursery, max_in_flight=100)
    assert worker.process is not None
    out = Published()
    side = worker.open("claude-stream-json", out.store, out)
    await side.wait_room()  # room at first
    room = trio.Event()

    async def pipeline() -> None:
        await side.wait_room()
        room.set()

    os.kill(worker.process.pid, signal.SIGSTOP)
    try:
        feed_all(side, batches(lines_of(CLAUDE), 2))
        assert worker.bytes_in_flight > 100
        async with trio.open_nursery() as pipelines:
            pipelines.start_soon(pipeline)
            # The daemon has gone as far as it can; only an answer could make room, and
            # the stopped worker gives none.
            await trio.testing.wait_all_tasks_blocked()
            assert not room.is_set(), "no room while the worker holds too much"
            os.kill(worker.process.pid, signal.SIGCONT)
            with trio.fail_after(10):
                await room.wait()
    finally:
        os.kill(worker.process.pid, signal.SIGCONT)
    with trio.fail_after(10):
        await side.finish()
    assert worker.bytes_in_flight == 0


async def test_a_worker_that_dies_loses_nothing(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    worker = await started(nursery)
    assert worker.process is not None
    parts = batches(lines_of(CLAUDE), 2)
    out = Published()
    side = worker.open("claude-stream-json", out.store, out)
    assert isinstance(side, RemoteExtraction)
    os.kill(worker.process.pid, signal.SIGSTOP)  # it answers nothing from here on
    feed_all(side, parts)
    os.kill(worker.process.pid, signal.SIGKILL)
    await wait_for(lambda: side.is_local, 10)
    assert not worker.alive
    assert worker.bytes_in_flight == 0
    # The daemon's log says so, with its event and fields.
    (died,) = [r for r in caplog.records if getattr(r, "event", "") == "extraction_worker_died"]
    assert died.runs == 1 and died.reason == "it exited"  # type: ignore[attr-defined]
    with trio.fail_after(10):
        await side.finish()
    # Every batch the worker held was extracted here, by one extractor from the start.
    want = local("claude-stream-json", parts, RULES)
    assert (out.total.data, out.total.kinds) == (want.data, want.kinds)
    # And a run opened now extracts in the daemon at once.
    later = worker.open("text", ExtractionStore("text"), Published())
    assert not isinstance(later, RemoteExtraction)


async def test_an_agent_that_ends_before_the_answers_extracts_them_here(
    nursery: trio.Nursery,
) -> None:
    worker = await started(nursery)
    assert worker.process is not None
    parts = batches(lines_of(CLAUDE), 4)
    out = Published()
    side = worker.open("claude-stream-json", out.store, out)
    os.kill(worker.process.pid, signal.SIGSTOP)
    try:
        feed_all(side, parts)
        side.finish_now()  # cancelled: no waiting
    finally:
        os.kill(worker.process.pid, signal.SIGCONT)
    want = local("claude-stream-json", parts, RULES)
    assert (out.total.data, out.total.kinds) == (want.data, want.kinds)
    # The worker's late answers are not published twice. It answers in the order it was
    # sent to: once a run opened after them has its last answer, they were all read.
    after = Published()
    probe = worker.open("claude-stream-json", after.store, after)
    feed_all(probe, parts[:1])
    with trio.fail_after(10):
        await probe.finish()
    assert isinstance(probe, RemoteExtraction) and not probe.is_local  # the worker answered
    assert (out.total.data, out.total.kinds) == (want.data, want.kinds)
    assert worker.alive


async def test_the_worker_process_is_reaped_with_its_owner() -> None:
    async with trio.open_nursery() as nursery:
        worker = await started(nursery)
        process = worker.process
        assert process is not None and process.returncode is None
        nursery.cancel_scope.cancel()
    assert process.returncode is not None
    assert not worker.alive


@pytest.mark.parametrize("fmt", ["text", "auto"])
async def test_text_and_auto_run_in_the_worker_too(nursery: trio.Nursery, fmt: str) -> None:
    worker = await started(nursery)
    name = "codex/plain_exec_v0.114.0_claude-os-worker.txt"
    parts = batches(lines_of(name), 7)
    out = Published()
    store = ExtractionStore(fmt)
    side = worker.open(fmt, store, out)
    feed_all(side, parts)
    with trio.fail_after(10):
        await side.finish()
    want = local(fmt, parts, RULES)
    assert (out.total.data, out.total.kinds) == (want.data, want.kinds)
    assert store.format == "text"  # auto decided, and the worker said so


async def test_a_worker_that_answers_garbage_is_left_and_nothing_lost(
    nursery: trio.Nursery,
) -> None:
    worker = ExtractionWorker(RULES)
    # Not the worker: a process that answers one well-formed length, then nonsense.
    worker_command = [
        sys.executable,
        "-c",
        "import sys; sys.stdout.buffer.write(b'\\x00\\x00\\x00\\x03abc'); sys.stdout.flush();"
        " sys.stdin.buffer.read()",
    ]
    worker.command = worker_command
    await nursery.start(worker.run)
    parts = batches(lines_of(CLAUDE), 2)
    out = Published()
    side = worker.open("claude-stream-json", out.store, out)
    feed_all(side, parts)
    with trio.fail_after(10):
        await side.finish()
    assert not worker.alive
    want = local("claude-stream-json", parts, RULES)
    assert (out.total.data, out.total.kinds) == (want.data, want.kinds)


async def test_every_pipeline_waiting_for_room_is_woken(nursery: trio.Nursery) -> None:
    worker = await started(nursery, max_in_flight=100)
    assert worker.process is not None
    sides = [worker.open("claude-stream-json", Published().store, Published()) for _ in range(2)]
    woken: list[int] = []

    async def pipeline(i: int) -> None:
        side = sides[i]
        feed_all(side, batches(lines_of(CLAUDE), 4))
        await side.wait_room()
        woken.append(i)

    os.kill(worker.process.pid, signal.SIGSTOP)
    try:
        async with trio.open_nursery() as pipelines:
            pipelines.start_soon(pipeline, 0)
            pipelines.start_soon(pipeline, 1)
            # Both have fed and gone as far as they can; the stopped worker answers nothing.
            await trio.testing.wait_all_tasks_blocked()
            assert woken == [], "both wait while the worker is stopped"
            os.kill(worker.process.pid, signal.SIGCONT)
            with trio.fail_after(10):
                await wait_for(lambda: len(woken) == 2, 10)
    finally:
        os.kill(worker.process.pid, signal.SIGCONT)
    assert sorted(woken) == [0, 1]


async def test_going_local_keeps_the_format_auto_decided(nursery: trio.Nursery) -> None:
    worker = await started(nursery)
    assert worker.process is not None
    lines = lines_of("codex/plain_exec_v0.114.0_claude-os-worker.txt")
    out = Published()
    store = ExtractionStore("auto")
    side = worker.open("auto", store, out)
    assert isinstance(side, RemoteExtraction)
    feed_all(side, [lines[:20]])
    await wait_for(lambda: worker.bytes_in_flight == 0, 10)
    assert store.format == "text"
    os.kill(worker.process.pid, signal.SIGKILL)
    await wait_for(lambda: side.is_local, 10)
    side.feed(Lines(b"\n".join(lines[20:]), len(lines) - 20), 21, "stdout")
    with trio.fail_after(10):
        await side.finish()
    assert store.format == "text"


async def test_a_run_whose_local_extraction_fails_is_not_left_waiting(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Extractors never raise on any input known; should one fail while taking over from
    a dead worker, the agent's end is still not held up and the worker's room is given
    back (the failure is logged, the daemon goes on)."""

    def broken(*args: object) -> object:
        raise RuntimeError("an extractor bug")

    worker = await started(nursery)
    assert worker.process is not None
    out = Published()
    side = worker.open("claude-stream-json", out.store, out)
    monkeypatch.setattr("trio_wrapper.runtime.extraction.local_extraction", broken)
    os.kill(worker.process.pid, signal.SIGSTOP)
    feed_all(side, batches(lines_of(CLAUDE), 2))
    assert worker.bytes_in_flight > 0
    with trio.fail_after(5):  # finish() would otherwise wait for an answer that never comes
        async with trio.open_nursery() as inner:
            inner.start_soon(side.finish)
            await trio.testing.wait_all_tasks_blocked()  # finish() waits for the answer
            os.kill(worker.process.pid, signal.SIGKILL)
    assert not worker.alive
    assert worker.bytes_in_flight == 0


async def test_an_answered_run_is_not_kept_by_the_idle_worker(nursery: trio.Nursery) -> None:
    # The reader waiting for the next answer must not hold the last run it answered:
    # through its ``publish`` that is the agent, kept alive after its DELETE (with its
    # records and its observers) until some other run's answer came.
    worker = await started(nursery)
    out = Published()
    side = worker.open("claude-stream-json", out.store, out)
    feed_all(side, batches(lines_of(CLAUDE), 50))
    with trio.fail_after(10):
        await side.finish()
    assert out.total.data  # it was answered
    gone = weakref.ref(out)
    del side, out
    await trio.testing.wait_all_tasks_blocked()
    gc.collect()
    assert gone() is None, [type(r).__name__ for r in gc.get_referrers(gone())]
