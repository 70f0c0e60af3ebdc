"""Publishing and subscribing without trio: the pure fan-out with plain clients."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import pytest

from trio_wrapper.core.lines import LineBatch
from trio_wrapper.core.status import Status
from trio_wrapper.streaming.backlog import Backlog
from trio_wrapper.streaming.client import ClientState, FanoutClient
from trio_wrapper.streaming.fanout import Fanout


@dataclass(frozen=True)
class Limits:
    client_buffer: int = 100
    client_buffers_total_bytes: int = 64 * 1024 * 1024
    retained_per_agent: int = 1000
    retained_global: int = 10_000
    retained_bytes_per_agent: int = 2 * 1024 * 1024
    retained_bytes_global: int = 16 * 1024 * 1024
    max_clients: int = 20_000
    max_clients_per_agent: int = 10_000


@dataclass
class FakeAgent:
    name: str = "a1"
    status: Status = Status.RUNNING
    status_detail: str = ""
    exit_code: int | None = None
    duration_seconds: float = 1.5


class Woken(FanoutClient):
    """A client that counts its wake-ups, as the runtime's would reschedule its stream."""

    __slots__ = ("wakes",)

    def __init__(
        self,
        number: int,
        agent: str | None,
        limit: int,
        peer: tuple[str, int] | None = None,
        backlog: Backlog | None = None,
    ) -> None:
        super().__init__(number, agent, limit, peer, backlog)
        self.wakes = 0

    def wake(self) -> None:
        self.wakes += 1


def fanout(**kwargs: int) -> Fanout[Woken]:
    return Fanout(Limits(**kwargs), Woken)


def test_without_subscribers_nothing_is_built() -> None:
    hub = fanout(retained_per_agent=10, retained_global=20)
    agent = FakeAgent()
    batch = LineBatch([b"x"] * 1000)
    hub.on_lines(agent, "stdout", 1, batch)
    channel = hub.channels["a1"]
    assert channel.ring._runs[0]._events is None  # one run object, no Event per line
    assert [e.seq for e in channel.ring.since(0)] == list(range(991, 1001))
    assert [e.global_seq for e in hub.global_ring.since(0)] == list(range(981, 1001))
    assert channel.next_seq == 1001
    assert all(e._body is None for e in channel.ring.since(0))  # nothing encoded for nobody
    hub.on_lines(agent, "stderr", 1001, LineBatch([b"y"]))
    assert channel.ring.peek_last() is not None
    assert channel.ring.peek_last().seq == 1001  # type: ignore[union-attr]


def test_removed_agent_ends_its_streams() -> None:
    hub = fanout()
    agent = FakeAgent()
    sub = hub.subscribe("a1", None, 0)
    hub.on_removed(agent)
    assert sub.client.state is ClientState.ENDING and "a1" not in hub.channels
    assert sub.client.wakes == 1
    hub.unsubscribe(sub.client)
    assert hub.total_clients == 0
    assert sub.client.state is ClientState.CLOSED


def test_client_limits() -> None:
    hub = fanout(max_clients=3, max_clients_per_agent=2)
    hub.subscribe("a", None, 0)
    hub.subscribe("a", None, 0)
    with pytest.raises(Exception, match="too many SSE clients on 'a'"):
        hub.subscribe("a", None, 0)
    hub.subscribe(None, None, 0)
    with pytest.raises(Exception, match="too many SSE clients connected"):
        hub.subscribe("b", None, 0)
    hub.closing = True
    with pytest.raises(Exception, match="shutting down"):
        hub.subscribe(None, None, 0)


def test_without_a_timer_news_is_released_at_once_and_counted() -> None:
    hub = fanout(client_buffer=1)
    agent = FakeAgent()
    one, everyone = hub.subscribe("a1", None, 0).client, hub.subscribe(None, None, 0).client
    hub.on_lines(agent, "stdout", 1, LineBatch([b"x", b"y"]))
    for client in (one, everyone):
        assert client.released and not client.queued and client.wakes == 1
    hub.on_lines(agent, "stdout", 3, LineBatch([b"z"]))  # nobody took: the oldest goes
    assert hub.dropped_events_total == 4 and hub.events_total == 3
    runs, gap = one.take()
    assert gap is not None and gap.data() == {"missed": 2, "first_id": 1, "last_id": 2}
    assert [e.seq for run in runs for e in run.events()] == [3]
    assert msgspec.structs.asdict(hub.stats()) == {
        "total_agents": 1,
        "total_clients": 2,
        "agents": {"a1": 1},
        "events_clients": 1,
        "dropped_events_total": 4,
        "slow_disconnects_total": 0,
    }


def test_a_finished_agent_is_replayed_not_subscribed() -> None:
    hub = fanout()
    agent = FakeAgent()
    hub.on_status(agent, None, Status.RUNNING)
    agent.status, agent.exit_code = Status.COMPLETED, 0
    hub.on_status(agent, Status.RUNNING, Status.COMPLETED)
    sub = hub.subscribe("a1", None, 5)
    assert sub.finished and sub.complete is not None and sub.complete.type == "complete"
    assert [e.type for e in sub.replay] == ["state", "state", "complete"]
    assert sub.complete.data == {"status": "completed", "exit_code": 0, "duration_seconds": 1.5}
    assert hub.total_clients == 0
    past = hub.subscribe("old", None, 5, agent_live=False)
    assert past.finished and past.complete is None and past.replay == []


def test_the_clients_furthest_behind_lose_their_oldest_past_the_total() -> None:
    # Each read: 100 lines of 100 bytes, 14,800 bytes held until its frames are built.
    hub = fanout(client_buffer=1_000_000, client_buffers_total_bytes=10 * 14_800)
    agent = FakeAgent()
    slow = [hub.subscribe(None, None, 0).client for _ in range(3)]
    fast = hub.subscribe("a1", None, 0).client
    for first in range(1, 1001, 100):  # ten reads fill the total exactly: counted once
        hub.on_lines(agent, "stdout", first, LineBatch([b"x" * 100] * 100))
        fast.take()
        fast.sent()
    assert (hub.backlog.bytes, hub.backlog.runs, hub.dropped_events_total) == (148_000, 10, 0)
    hub.on_lines(agent, "stdout", 1001, LineBatch([b"x" * 100] * 100))
    # Over: the oldest runs go from every slow client until 7/8 of the total is left.
    assert hub.backlog.bytes <= 148_000 * 7 // 8
    assert hub.dropped_events_total == 3 * 300
    for client in slow:
        runs, gap = client.take()
        assert gap is not None and gap.data() == {"missed": 300, "first_id": 1, "last_id": 300}
        assert runs[0].gseq == 301
    runs, gap = fast.take()  # kept up: lost nothing
    assert gap is None and [run.gseq for run in runs] == [1001]
    for client in [*slow, fast]:
        hub.unsubscribe(client)
    assert (hub.backlog.bytes, hub.backlog.runs) == (0, 0)


def test_the_newest_run_is_kept_whatever_its_size() -> None:
    hub = fanout(client_buffers_total_bytes=1000)
    client = hub.subscribe("a1", None, 0).client
    hub.on_lines(FakeAgent(), "stdout", 1, LineBatch([b"x" * 5000]))
    assert hub.dropped_events_total == 0 and client.buffered == 1


def test_what_cannot_be_dropped_does_not_make_every_delivery_shed() -> None:
    # Runs of 100 lines of 100 bytes: 14,800 bytes held, 77,200 with both frames (``size``,
    # what a send's slice counts). Two clients are stuck in sends (in flight: counted, not
    # droppable), which keeps the total above 7/8 of the limit after a shed.
    held, size = 14_800, 77_200
    hub = fanout(client_buffer=1_000_000, client_buffers_total_bytes=10 * held)
    agent = FakeAgent()
    stuck = [hub.subscribe(None, None, 0).client for _ in range(2)]
    for first in range(1, 1001, 100):
        hub.on_lines(agent, "stdout", first, LineBatch([b"x" * 100] * 100))
        if first == 301:
            assert len(stuck[0].take(max_bytes=4 * size)[0]) == 4  # runs 1-4
        if first == 801:
            assert len(stuck[1].take(max_bytes=9 * size)[0]) == 9  # runs 1-9
    assert hub.backlog.bytes == 10 * held and hub.dropped_events_total == 0
    hub.on_lines(agent, "stdout", 1001, LineBatch([b"x" * 100] * 100))
    # stuck[0] loses runs 5-10 (but the newest), freeing nothing while stuck[1]'s send
    # holds 5-9; stuck[1] loses run 10, which frees it: still above 7/8 of the limit.
    assert hub.dropped_events_total == 700 and hub.backlog.bytes == 10 * held
    assert hub._shed_above == 10 * held + 10 * held // 8
    hub.on_lines(agent, "stdout", 1101, LineBatch([b"x" * 100] * 100))
    assert hub.dropped_events_total == 700  # under the raised mark: no shed, no loss
    for client in stuck:
        client.sent()
    hub.on_lines(agent, "stdout", 1201, LineBatch([b"y"]))
    assert hub._shed_above == hub.backlog.limit  # back under the limit: the mark is reset


def test_news_published_during_shutdown_is_not_buffered() -> None:
    hub = fanout()
    client = hub.subscribe("a1", None, 0).client
    hub.on_lines(FakeAgent(), "stdout", 1, LineBatch([b"x"]))
    hub.closing = True
    hub.on_lines(FakeAgent(), "stdout", 2, LineBatch([b"y"]))
    assert client.buffered == 1 and hub.channels["a1"].ring.newest_id == 2
