"""I/O faults stay on the agent they hit: counted, reported, never raised into the daemon.

Faults are injected deterministically: a file deleted or truncated under the pipeline.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import trio

from trio_wrapper.core.lines import LineBatch
from trio_wrapper.runtime.pipeline import LinePipeline

GUARD = 30.0  # against a hung test only: never a measure of speed


# ---- the line pipeline: bytes it cannot have are a gap, never an exception ----------


class Seen:
    def __init__(self) -> None:
        self.lines: list[tuple[str, bytes]] = []
        self.lost: list[tuple[str, int, str | None]] = []

    def deliver(self, stream: str, batch: LineBatch) -> None:
        self.lines.extend((stream, line) for line in batch.lines)

    def gap(self, stream: str, count: int, why: str | None) -> None:
        self.lost.append((stream, count, why))


async def run_pipeline(pipeline: LinePipeline, feed: Callable[[], None]) -> None:
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pipeline.run)
            feed()
    assert pipeline.done.is_set()


async def test_read_back_from_a_deleted_log_is_counted_lost_not_raised(tmp_path: Path) -> None:
    # Issue 15, item 1: FileNotFoundError from here took the whole daemon down.
    log = tmp_path / "out.log"
    data = b"one\ntwo\nthree\n"
    log.write_bytes(data)
    seen = Seen()
    pipeline = LinePipeline(
        {"stdout": log}, seen.deliver, max_line_bytes=100, memory_budget=0, lost=seen.gap
    )

    def feed() -> None:
        pipeline.submit("stdout", 0, data, busy=False)  # over the budget: only on disk
        log.unlink()
        pipeline.end("stdout")

    await run_pipeline(pipeline, feed)
    assert seen.lines == []
    why = "cannot read back stdout log: No such file or directory"
    assert seen.lost == [("stdout", len(data), why)]


async def test_a_log_truncated_under_the_pipeline_gives_what_is_left_and_counts_the_rest(
    tmp_path: Path,
) -> None:
    log = tmp_path / "out.log"
    data = b"first\nsecond\nthird\n"
    log.write_bytes(data)
    seen = Seen()
    pipeline = LinePipeline(
        {"stdout": log}, seen.deliver, max_line_bytes=100, memory_budget=0, lost=seen.gap
    )

    def feed() -> None:
        pipeline.submit("stdout", 0, data, busy=False)
        os.truncate(log, 9)  # "first\nsec"
        pipeline.end("stdout")

    await run_pipeline(pipeline, feed)
    # The line the truncation cut ends where the bytes end: never glued to later ones.
    assert seen.lines == [("stdout", b"first"), ("stdout", b"sec")]
    assert seen.lost == [("stdout", len(data) - 9, "stdout log was truncated under its reader")]


async def test_a_log_deleted_under_a_given_descriptor_is_still_read_whole(
    tmp_path: Path,
) -> None:
    # The agent hands its own descriptors: a deleted log still reads, nothing is lost.
    log = tmp_path / "out.log"
    data = b"a\nb\nc\n"
    log.write_bytes(data)
    fd = os.open(log, os.O_RDWR | os.O_APPEND)
    try:
        seen = Seen()
        pipeline = LinePipeline(
            {"stdout": log},
            seen.deliver,
            max_line_bytes=100,
            memory_budget=0,
            read_fds={"stdout": fd},
            lost=seen.gap,
        )

        def feed() -> None:
            pipeline.submit("stdout", 0, data, busy=False)
            log.unlink()
            pipeline.end("stdout")

        await run_pipeline(pipeline, feed)
        assert [line for _, line in seen.lines] == [b"a", b"b", b"c"]
        assert seen.lost == []
        os.fstat(fd)  # still ours: the pipeline never closes what it was given
    finally:
        os.close(fd)


async def test_bytes_the_log_could_not_take_with_memory_full_are_a_gap(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    log.write_bytes(b"")
    seen = Seen()
    pipeline = LinePipeline(
        {"stdout": log}, seen.deliver, max_line_bytes=100, memory_budget=4, lost=seen.gap
    )

    def feed() -> None:
        pipeline.submit("stdout", 0, b"ok\n", busy=False)  # fits in memory
        with log.open("ab") as handle:
            handle.write(b"par")  # the disk took 3 bytes of the next chunk
        pipeline.submit("stdout", 0, b"partial line\n", busy=False, stored=3)
        pipeline.submit("stdout", 3, b"gone too\n", busy=False, stored=0)
        pipeline.end("stdout")

    await run_pipeline(pipeline, feed)
    assert [line for _, line in seen.lines] == [b"ok", b"par"]
    assert seen.lost == [("stdout", 10 + 9, None)]  # one gap: the caller knows why
