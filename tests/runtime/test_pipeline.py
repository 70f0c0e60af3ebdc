"""The line pipeline: same lines whether chunks stay in memory or come back from the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_wrapper.core.lines import LineBatch
from trio_wrapper.runtime.pipeline import MAX_DEFER_SECONDS, LinePipeline


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


def feed_through(
    tmp: Path, chunks: list[tuple[str, bytes]], budget: int, keep_whole: bool = True
) -> tuple[list[tuple[str, bytes]], int]:
    logs = {"stdout": tmp / "out.log", "stderr": tmp / "err.log"}
    for path in logs.values():
        path.write_bytes(b"")
    got: list[tuple[str, bytes]] = []

    def deliver(stream: str, batch: LineBatch) -> None:
        got.extend((stream, line) for line in batch.lines)

    pipeline = LinePipeline(
        logs, deliver, max_line_bytes=8, memory_budget=budget, keep_whole=keep_whole
    )
    offsets = {"stdout": 0, "stderr": 0}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pipeline.run)
            for stream, chunk in chunks:
                append(logs[stream], chunk)  # the log file first, as the reader does
                pipeline.submit(stream, offsets[stream], chunk, busy=True)
                offsets[stream] += len(chunk)
            pipeline.end("stdout")
            pipeline.end("stderr")

    trio.run(main)
    return got, pipeline.deferred_bytes


chunk_lists = st.lists(
    st.tuples(
        st.sampled_from(["stdout", "stderr"]),
        st.binary(min_size=1, max_size=30).map(lambda b: b.replace(b"\x00", b"\n")),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(chunks=chunk_lists)
def test_file_fallback_gives_the_same_lines(
    tmp_path_factory: pytest.TempPathFactory, chunks: list[tuple[str, bytes]]
) -> None:
    in_memory, deferred_none = feed_through(tmp_path_factory.mktemp("m"), chunks, 1 << 20)
    from_file, deferred = feed_through(tmp_path_factory.mktemp("f"), chunks, 10)
    split_at_once, _ = feed_through(tmp_path_factory.mktemp("s"), chunks, 10, keep_whole=False)
    assert deferred_none == 0
    assert from_file == in_memory == split_at_once
    total = sum(len(c) for _, c in chunks)
    assert deferred >= max(0, total - 10 - 30)


def test_a_line_read_back_is_joined_to_what_memory_holds_of_it(tmp_path: Path) -> None:
    """A piece read back from the log begins with the line left unfinished before it,
    taken again from the log, unless the log does not hold those bytes (it could not take
    them, or they changed): then the line's start comes from memory."""
    log = tmp_path / "out.log"
    got: list[bytes] = []
    pipeline = LinePipeline(
        {"stdout": log}, lambda _s, b: got.extend(b.lines), max_line_bytes=100, memory_budget=16
    )

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pipeline.run)
            # In memory: "first\nhello wor"; the log has other bytes where "hello wor" is.
            log.write_bytes(b"first\nXXXXXXXXX")
            pipeline.submit("stdout", 0, b"first\nhello wor", busy=True)
            # Over the memory budget: read back from the log, after the unfinished line.
            append(log, b"ld\nnext li")
            pipeline.submit("stdout", 15, b"ld\nnext li", busy=True)
            append(log, b"ne\nlast\n")
            pipeline.submit("stdout", 25, b"ne\nlast\n", busy=True)
            pipeline.end("stdout")

    trio.run(main)
    assert pipeline.deferred_bytes == 18
    assert got == [b"first", b"hello world", b"next line", b"last"]


def test_lines_keep_read_order_across_streams(tmp_path: Path) -> None:
    chunks = [("stdout", b"a1\n"), ("stderr", b"b1\n"), ("stdout", b"a2\na3\n"), ("stderr", b"b2")]
    got, _ = feed_through(tmp_path, chunks, 4)
    assert got == [
        ("stdout", b"a1"),
        ("stderr", b"b1"),
        ("stdout", b"a2"),
        ("stdout", b"a3"),
        ("stderr", b"b2"),
    ]


async def test_busy_reader_goes_first_then_lines_follow(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    # The clock stands still unless the test moves it: "busy" cannot time out behind it.
    log = tmp_path / "out.log"
    log.write_bytes(b"")
    seen: list[bytes] = []
    pipeline = LinePipeline({"stdout": log}, lambda _s, b: seen.extend(b.lines), max_line_bytes=100)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pipeline.run)
        append(log, b"x\ny\n")
        pipeline.submit("stdout", 0, b"x\ny\n", busy=True)
        await trio.testing.wait_all_tasks_blocked()
        assert seen == []  # the reader is busy: line work waits
        pipeline.idle("stdout")
        await pipeline.wait_idle()
        assert seen == [b"x", b"y"]
        pipeline.end("stdout")
    assert pipeline.done.is_set()


async def test_a_reader_busy_for_good_holds_line_work_back_only_so_long(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    log = tmp_path / "out.log"
    log.write_bytes(b"")
    seen: list[bytes] = []
    pipeline = LinePipeline({"stdout": log}, lambda _s, b: seen.extend(b.lines), max_line_bytes=100)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pipeline.run)
        append(log, b"x\n")
        pipeline.submit("stdout", 0, b"x\n", busy=True)
        await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(MAX_DEFER_SECONDS / 2)
        await trio.testing.wait_all_tasks_blocked()
        assert seen == []
        mock_clock.jump(MAX_DEFER_SECONDS / 2)
        await pipeline.wait_idle()
        assert seen == [b"x"]  # still busy, but the deferral is over
        pipeline.end("stdout")
    assert pipeline.done.is_set()


async def test_chunks_waiting_in_memory_go_through_line_work_together(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    # A line per write: the reads queued while line work was behind become one batch,
    # then an end-of-stream (and another stream's chunk) are not merged across.
    log = tmp_path / "out.log"
    log.write_bytes(b"")
    seen: list[list[bytes]] = []
    pipeline = LinePipeline(
        {"stdout": log, "stderr": tmp_path / "err.log"},
        lambda _s, b: seen.append(list(b.lines)),
        max_line_bytes=100,
    )
    offset = 0
    for line in [b"a\n", b"b\n", b"c", b"d\n"]:
        append(log, line)
        pipeline.submit("stdout", offset, line, busy=False)
        offset += len(line)
    pipeline.submit("stderr", 0, b"e\n", busy=False)
    pipeline.submit("stdout", offset, b"f\n", busy=False)
    pipeline.end("stdout")
    pipeline.end("stderr")
    await pipeline.run()
    assert seen == [[b"a", b"b", b"cd"], [b"e"], [b"f"]]
    assert pipeline.deliveries == 3
