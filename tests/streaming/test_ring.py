"""Runs, the event ring, and the replay chosen from it: plain synchronous tests."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_wrapper.streaming.replay import Gap, select_replay
from trio_wrapper.streaming.ring import EventRing, Published


def test_run_wire_is_the_events_wires_joined() -> None:
    from trio_wrapper.extract import Metric, Session
    from trio_wrapper.extract.found import Found

    lines = [b"plain", b"caf\xc3\xa9 \xff", b'q"uote\\', b""]
    run = Published.of_lines("a-1", 7, 70, lines, "stderr", 3)
    twin = Published.of_lines("a-1", 7, 70, lines, "stderr", 3)
    twin.created = run.created
    assert run.wire() == b"".join(e.wire() for e in twin.events())
    assert run.wire(True) == b"".join(e.global_wire() for e in twin.events())
    records = Found.of([Session(line_num=1, key="model", value="o3"), Metric(2, "t", 5, "tokens")])
    run = Published.of_records("a-1", 1, 9, records)
    twin = Published.of_records("a-1", 1, 9, records)
    twin.created = run.created
    assert run.wire() == b"".join(e.wire() for e in twin.events())
    data = json.loads(run.wire().split(b"data: ", 1)[1].split(b"\n", 1)[0])["data"]
    assert data == {"type": "session", "line_num": 1, "key": "model", "value": "o3"}


# Lines as agents write them, and worse: quotes, backslashes, '","' itself, control
# characters, broken and truncated UTF-8, empty lines. Never a newline (a line has none).
_LINE_BYTES = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b'","', b'"', b"\\", b'\\","', b"\xe2\x82", b"\xac", b"\x00\x1f"]),
).map(lambda b: b.replace(b"\n", b""))


@given(
    lines=st.lists(_LINE_BYTES, min_size=1, max_size=30),
    seq=st.integers(1, 10**12),
    gseq=st.integers(1, 10**12),
    line_num=st.integers(1, 10**9),
)
def test_a_runs_frames_are_its_events_frames_whatever_the_lines(
    lines: list[bytes], seq: int, gseq: int, line_num: int
) -> None:
    """The frames of a run are built for all its lines at once (``_encode_lines``), by
    cutting one JSON list apart: byte for byte what each line's own event gives."""
    run = Published.of_lines("agent-1", seq, gseq, lines, "stdout", line_num)
    twin = Published.of_lines("agent-1", seq, gseq, lines, "stdout", line_num)
    twin.created = run.created
    assert run.wire() == b"".join(e.wire() for e in twin.events())
    assert run.wire(True) == b"".join(e.global_wire() for e in twin.events())


def test_a_runs_frames_hold_as_many_events_as_its_records() -> None:
    from trio_wrapper.extract import Error, Response
    from trio_wrapper.extract.found import Found

    found = Found.of([Response(n, f'said "{n}",\n"x"') for n in range(1, 6)] + [Error(9, "e", "s")])
    run = Published.of_records("a", 3, 30, found)
    twin = Published.of_records("a", 3, 30, found)
    twin.created = run.created
    assert run.wire(True) == b"".join(e.global_wire() for e in twin.events())
    assert run.wire(True).count(b"\n\nid: ") == 5
    assert [int(x.split(b"\n")[0]) for x in run.wire().split(b"id: ")[1:]] == list(range(3, 9))


def ring_of(first: int, last: int, capacity: int, run_size: int = 3) -> EventRing:
    ring = EventRing(capacity)
    for start in range(first, last + 1, run_size):
        lines = [b"x"] * min(run_size, last + 1 - start)
        ring.append(Published.of_lines("a", start, start, lines, "stdout", start))
    return ring


def test_replay_selection() -> None:
    ring = ring_of(1, 20, capacity=10)  # ids 11..20 retained
    assert (ring.oldest_id, ring.newest_id, len(ring)) == (11, 20, 10)
    assert select_replay(ring, None, 0) == ([], None)
    replay, gap = select_replay(ring, 15, 0)
    assert [e.seq for e in replay] == [16, 17, 18, 19, 20] and gap is None
    replay, gap = select_replay(ring, 10, 0)
    assert [e.seq for e in replay] == list(range(11, 21)) and gap is None
    replay, gap = select_replay(ring, 4, 0)
    assert gap == Gap(missed=6, first_id=5, last_id=10) and len(replay) == 10
    assert select_replay(ring, 20, 0) == ([], None)
    assert select_replay(ring, 99, 0) == ([], None)
    replay, _ = select_replay(ring, None, 3)
    assert [e.seq for e in replay] == [18, 19, 20]
    replay, _ = select_replay(ring, None, 500)
    assert [e.seq for e in replay] == list(range(11, 21))
    assert select_replay(EventRing(5), 3, 2) == ([], None)


def test_gap_data_is_the_gap_events_payload() -> None:
    assert Gap(3, 4, 6).data() == {"missed": 3, "first_id": 4, "last_id": 6}


@given(
    total=st.integers(min_value=0, max_value=60),
    capacity=st.integers(min_value=1, max_value=25),
    run_size=st.integers(min_value=1, max_value=9),
    start=st.integers(min_value=-5, max_value=70),
)
def test_ring_since_is_exact(total: int, capacity: int, run_size: int, start: int) -> None:
    ring = ring_of(1, total, capacity, run_size)
    retained = list(range(max(1, total - capacity + 1), total + 1))
    assert [e.seq for e in ring.since(start)] == [i for i in retained if i >= start]
    assert [e.line_num for e in ring.since(start)] == [i for i in retained if i >= start]


def test_long_lines_are_bounded_by_bytes_not_count() -> None:
    """A thousand 64 KiB lines would be 64 MiB under a count bound alone."""
    ring = EventRing(1000, max_bytes=1024 * 1024)
    line = b"y" * 65536
    for seq in range(1, 101):
        ring.append(Published.of_lines("a", seq, seq, [line], "stdout", seq))
    assert ring.retained_bytes <= 1024 * 1024
    kept = ring.since(0)
    # Each run weighs its line and, once streamed, its two frames: 3 fit in 1 MiB.
    weight = 65536 + 48 + 2 * (65536 + 32768 + 160 + 1)
    assert (1024 * 1024) // weight == 3
    assert len(kept) == 3
    assert [e.seq for e in kept] == list(range(98, 101))  # the newest, in order
    # A resume from before them learns what it missed.
    replay, gap = select_replay(ring, 10, 0)
    assert gap == Gap(missed=87, first_id=11, last_id=97)
    assert [e.seq for e in replay] == list(range(98, 101))


def test_the_newest_publish_is_kept_whatever_its_size() -> None:
    ring = EventRing(1000, max_bytes=100)
    ring.append(Published.of_lines("a", 1, 1, [b"z" * 500, b"z" * 500], "stdout", 1))
    assert [e.seq for e in ring.since(0)] == [1, 2]
    ring.append(Published.of_lines("a", 3, 3, [b"z" * 500], "stdout", 3))
    assert [e.seq for e in ring.since(0)] == [3]


def test_short_lines_are_still_bounded_by_count() -> None:
    ring = EventRing(10, max_bytes=1 << 20)
    for seq in range(1, 51):
        ring.append(Published.of_lines("a", seq, seq, [b"x"], "stdout", seq))
    assert (ring.oldest_id, ring.newest_id, len(ring)) == (41, 50, 10)


def test_a_ring_keeps_a_reads_lines_as_one_buffer() -> None:
    """Streamed and replayed, a run of lines stays one buffer: a bytes object per line,
    kept for as long as the ring holds the run, would pin the allocator's arenas after a
    flood (the daemon's RSS ratcheting up wave after wave)."""
    from trio_wrapper.core.lines import LineSplitter

    (batch,) = [LineSplitter().feed(b"one\ntwo \xff\n\nfour\npartial")]
    lines = batch.lines
    run = Published.of_lines("a", 1, 1, lines, "stdout", 1)
    text = len(b"onetwo \xfffour")
    # As a split run counts: text, a bytes object a line, two frames.
    assert run.size == text + 4 * 48 + 2 * (text + text // 2 + 4 * (160 + 1))
    ring = EventRing(100)
    ring.append(run)
    assert "two \ufffd".encode() in run.wire() and run.wire(True)
    expected = [b"one", b"two \xff", b"", b"four"]
    assert [e.line for e in ring.since(0)] == expected
    assert [e.line for e in ring.since(0)] == expected
    assert list(lines) == expected
    # Nothing above split it for good, nor kept the events.
    assert lines._list is None and run._events is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("agent", ["a", "a-much-longer-agent-name"])
@pytest.mark.parametrize("line", [b"", b"ok", b"x" * 80, b'{"quoted": "json"}' * 20])
def test_a_runs_weight_covers_its_text_and_both_frames(agent: str, line: bytes) -> None:
    """What a slow client's buffer and a ring count must not be less than what a streamed
    run really holds: for short lines the frames are most of it."""
    run = Published.of_lines(agent, 1, 1, [line] * 100, "stdout", 1)
    held = 100 * (len(line) + 48) + len(run.wire()) + len(run.wire(True))
    assert held <= run.size <= 2 * held
