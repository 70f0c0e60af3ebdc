"""The fan-out client as plain data: its drop policy and its state machine."""

from __future__ import annotations

import pytest

from trio_wrapper.streaming.backlog import Backlog
from trio_wrapper.streaming.client import (
    TRANSITIONS,
    ClientState,
    FanoutClient,
    Step,
    Transition,
)
from trio_wrapper.streaming.replay import Gap
from trio_wrapper.streaming.ring import Published
from trio_wrapper.streaming.wire import Event

S = ClientState
T = Transition

# The whole table, written out again: (state, input) -> the state after, None: ignored.
EXPECTED: dict[tuple[ClientState, Transition], ClientState | None] = {
    (S.STREAMING, T.END): S.ENDING,
    (S.STREAMING, T.SHUT_DOWN): S.SHUTTING_DOWN,
    (S.STREAMING, T.DISCONNECT): S.GONE,
    (S.STREAMING, T.DROP): S.DROPPED,
    (S.STREAMING, T.CLOSE): S.CLOSED,
    (S.ENDING, T.END): None,
    (S.ENDING, T.SHUT_DOWN): S.SHUTTING_DOWN,  # both send what is buffered; shutdown says so
    (S.ENDING, T.DISCONNECT): S.GONE,
    (S.ENDING, T.DROP): S.DROPPED,
    (S.ENDING, T.CLOSE): S.CLOSED,
    (S.SHUTTING_DOWN, T.END): None,  # the ``shutdown`` event is sent all the same
    (S.SHUTTING_DOWN, T.SHUT_DOWN): None,
    (S.SHUTTING_DOWN, T.DISCONNECT): S.GONE,
    (S.SHUTTING_DOWN, T.DROP): S.DROPPED,
    (S.SHUTTING_DOWN, T.CLOSE): S.CLOSED,
    (S.GONE, T.END): None,
    (S.GONE, T.SHUT_DOWN): None,
    (S.GONE, T.DISCONNECT): None,
    (S.GONE, T.DROP): S.DROPPED,  # a drop also cuts a send short; gone does not
    (S.GONE, T.CLOSE): S.CLOSED,
    (S.DROPPED, T.END): None,
    (S.DROPPED, T.SHUT_DOWN): None,
    (S.DROPPED, T.DISCONNECT): None,  # the pacemaker read the disconnect after the sweep
    (S.DROPPED, T.DROP): None,
    (S.DROPPED, T.CLOSE): S.CLOSED,
    (S.CLOSED, T.END): None,
    (S.CLOSED, T.SHUT_DOWN): None,
    (S.CLOSED, T.DISCONNECT): None,  # the pacemaker's slice outlived the stream
    (S.CLOSED, T.DROP): None,
    (S.CLOSED, T.CLOSE): None,
}


def client_in(state: ClientState, agent: str | None = "a1") -> FanoutClient:
    client = FanoutClient(1, agent, limit=3)
    client.state = state
    return client


def test_the_table_covers_every_state_and_input() -> None:
    assert set(EXPECTED) == {(s, t) for s in ClientState for t in Transition}
    assert set(TRANSITIONS) == set(ClientState)


@pytest.mark.parametrize(
    ("state", "transition"), list(EXPECTED), ids=[f"{s.name}-{t.name}" for s, t in EXPECTED]
)
def test_every_transition(state: ClientState, transition: Transition) -> None:
    client = client_in(state)
    target = EXPECTED[state, transition]
    assert client.move(transition) is (target is not None)
    assert client.state is (state if target is None else target)


def test_a_new_client_streams_and_no_state_is_left_for_good_but_closed() -> None:
    client = FanoutClient(7, None, limit=1)
    assert client.state is S.STREAMING and client.id == "c7"
    for state in ClientState:
        moves = TRANSITIONS[state]
        assert S.STREAMING not in moves.values()  # nothing goes back to streaming
        assert (moves.get(T.CLOSE) is S.CLOSED) is (state is not S.CLOSED)


def test_the_streams_next_step_in_each_state() -> None:
    # With nothing buffered; with news held for the flush; with news the flush released.
    expected = {
        S.STREAMING: (Step.IDLE, Step.HOLD, Step.SEND),
        S.ENDING: (Step.SEND, Step.SEND, Step.SEND),
        S.SHUTTING_DOWN: (Step.SEND, Step.SEND, Step.SEND),
        S.GONE: (Step.STOP, Step.STOP, Step.STOP),
        S.DROPPED: (Step.STOP, Step.STOP, Step.STOP),
        S.CLOSED: (Step.IDLE, Step.HOLD, Step.SEND),  # never asked: the stream has ended
    }
    for state, (empty, held, released) in expected.items():
        client = client_in(state)
        assert client.next_step() is empty, state
        client.push(Published.of_lines("a1", 1, 1, [b"x"], "stdout", 1))
        assert client.next_step() is held, state
        client.released = True
        assert client.next_step() is released, state


def test_news_waits_for_its_release() -> None:
    client = FanoutClient(1, "a1", limit=3)
    client.push(Published.of_lines("a1", 1, 1, [b"x"], "stdout", 1))
    assert client.next_step() is Step.HOLD
    client.released = True
    assert client.next_step() is Step.SEND
    client.take()
    assert not client.released and client.next_step() is Step.IDLE


def test_stalled_counts_from_the_start_of_the_send() -> None:
    client = FanoutClient(1, "a1", limit=3)
    assert not client.stalled(1000.0, 120.0)  # not sending
    client.sending_since = 10.0
    assert not client.stalled(129.9, 120.0)
    assert client.stalled(130.0, 120.0)


def test_wake_is_the_runtimes_business() -> None:
    client = FanoutClient(1, "a1", limit=3)
    client.wake()  # nothing to wake without a runtime: no error, no change
    assert client.state is S.STREAMING


def test_client_buffer_counts_events_and_drops_the_oldest_deliveries() -> None:
    client = FanoutClient(1, "a1", limit=30)
    deliveries = [
        Published.of_lines("a1", first, 1000 + first, [b"x"] * 10, "stdout", first)
        for first in range(1, 51, 10)
    ]  # five reads of ten lines: ids 1..50
    dropped = [client.push(d) for d in deliveries]
    assert dropped == [0, 0, 0, 10, 10]
    assert client.buffered == 30
    runs, gap = client.take()
    assert gap == Gap(missed=20, first_id=1, last_id=20)
    assert [e.seq for run in runs for e in run.events()] == list(range(21, 51))
    assert client.take() == ([], None)
    assert client.buffered == 0
    # One read larger than the limit is still delivered whole.
    assert client.push(Published.of_lines("a1", 51, 51, [b"y"] * 5000, "stdout", 51)) == 0
    assert client.take()[0][0].count == 5000
    # The all-agents stream counts in global ids.
    everyone = FanoutClient(2, None, limit=1)
    everyone.push(Published.of_lines("a1", 1, 101, [b"z"] * 2, "stdout", 1))
    everyone.push(Published.of_lines("a2", 1, 103, [b"z"], "stdout", 1))
    assert everyone.take()[1] == Gap(missed=2, first_id=101, last_id=102)


def test_client_buffer_holds_as_many_lines_whatever_the_write_size() -> None:
    # 100 lines in one read or one line per read: the same 100 fit, the 101st drops one.
    whole = FanoutClient(1, "a1", limit=100)
    assert whole.push(Published.of_lines("a1", 1, 1, [b"x"] * 100, "stdout", 1)) == 0
    single = FanoutClient(2, "a1", limit=100)
    assert [
        single.push(Published.of_lines("a1", i, i, [b"x"], "stdout", i)) for i in range(1, 101)
    ] == [0] * 100
    assert single.push(Published.of_lines("a1", 101, 101, [b"x"], "stdout", 101)) == 1
    assert single.take()[1] == Gap(missed=1, first_id=1, last_id=1)


def test_an_idle_client_holds_no_buffer() -> None:
    client = FanoutClient(1, "a1", limit=3)
    assert client.batches is None
    client.push(Published.of_lines("a1", 1, 1, [b"x"], "stdout", 1))
    client.take()
    assert client.batches is None


def test_a_send_takes_a_slice_and_holds_it_until_sent() -> None:
    backlog = Backlog(10**9)
    client = FanoutClient(1, "a1", 1_000_000, None, backlog)
    runs = [Published.of_lines("a1", f, f, [b"x" * 52] * 10, "stdout", f) for f in range(1, 51, 10)]
    for run in runs:
        client.push(run)
    weight = runs[0].weight()
    assert weight == 10 * (52 + 48)
    assert (backlog.bytes, backlog.runs) == (5 * weight, 5)
    # At most max_bytes of runs a send (their size: what they can come to hold, frames
    # included); the rest stays released for the next one.
    taken, gap = client.take(max_bytes=2 * runs[0].size + 1)
    assert (list(taken), gap, client.buffered) == (runs[:2], None, 30)
    assert client.released and client.next_step() is Step.SEND
    assert backlog.bytes == 5 * weight  # still held by the send under way
    client.sent()
    assert backlog.bytes == 3 * weight
    # The first run always goes, whatever its size.
    taken, _ = client.take(max_bytes=1)
    assert list(taken) == runs[2:3]
    # Built frames count too, while held.
    frames = len(taken[0].wire())
    assert backlog.bytes == 3 * weight + frames
    client.clear()
    assert (backlog.bytes, backlog.runs, client.batches) == (0, 0, None)


def test_a_run_shared_by_clients_is_counted_once() -> None:
    backlog = Backlog(10**9)
    clients = [FanoutClient(n, None, 100, None, backlog) for n in range(3)]
    run = Published.of_lines("a1", 1, 1, [b"y" * 100] * 4, "stdout", 1)
    for client in clients:
        client.push(run)
    assert (backlog.bytes, backlog.runs, run.holders) == (run.weight(), 1, 3)
    clients[0].take()
    clients[0].sent()
    clients[1].push(Published.of_lines("a1", 5, 5, [b"z"], "stdout", 5))  # drops nothing
    clients[1].clear()
    assert (backlog.runs, run.holders) == (1, 1)
    clients[2].drop_oldest()
    assert (backlog.bytes, backlog.runs, run.holders) == (0, 0, 0)


def test_the_last_client_to_let_a_run_go_drops_its_frames() -> None:
    backlog = Backlog(10**9)
    clients = [FanoutClient(n, None, 100, None, backlog) for n in range(2)]
    run = Published.of_lines("a1", 1, 1, [b"line"] * 3, "stdout", 1)
    text_only = run.weight()
    for client in clients:
        client.push(run)
    for client in clients:
        runs, _ = client.take()
        frames = b"".join(r.wire(True) for r in runs)  # what the send writes
        assert frames.count(b"event: log") == 3
        client.sent()
        # Built once for both clients, kept while one of them still holds the run...
        assert run.weight() > text_only or client is clients[-1]
    # ... and gone with the last: a ring keeping the run for replays holds its text only.
    assert (run.holders, run.weight(), backlog.bytes) == (0, text_only, 0)
    assert run.wire(True) == frames  # streamed again, encoded again, the same


def test_take_plain_takes_everything_or_leaves_it_to_the_stream() -> None:
    backlog = Backlog(10**9)
    client = FanoutClient(1, "a1", 4, None, backlog)
    runs = [Published.of_lines("a1", n, n, [b"x" * 20], "stdout", n) for n in (1, 2)]
    for run in runs:
        client.push(run)
    assert client.take_plain(max_bytes=runs[0].size) is None  # both would not fit
    assert client.buffered == 2 and client.batches  # left untouched
    client.released = True
    taken = client.take_plain(max_bytes=2 * runs[0].size)
    assert taken == runs
    assert (client.batches, client.buffered, client.released) == (None, 0, False)
    assert client.next_step() is Step.IDLE
    assert backlog.runs == 2  # held by the write under way...
    client.sent()
    assert backlog.runs == 0  # ... until it is over
    assert client.take_plain(10**9) is None  # nothing buffered


def test_take_plain_leaves_a_gap_an_end_and_a_complete_to_the_stream() -> None:
    lost = FanoutClient(1, "a1", 1)
    for n in (1, 2):
        lost.push(Published.of_lines("a1", n, n, [b"x"], "stdout", n))  # the first is lost
    assert lost.take_plain(10**9) is None
    assert lost.take()[1] == Gap(missed=1, first_id=1, last_id=1)
    ending = client_in(S.ENDING)
    ending.push(Published.of_lines("a1", 1, 1, [b"x"], "stdout", 1))
    assert ending.take_plain(10**9) is None
    done = FanoutClient(1, "a1", 10)
    done.push(Published.of_events([Event("a1", 1, 1, "complete", {"status": "completed"})]))
    assert done.take_plain(10**9) is None
    assert done.buffered == 1
