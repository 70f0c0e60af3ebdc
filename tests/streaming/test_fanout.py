"""Publishing and subscribing without trio: the pure fan-out with plain clients."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import pytest

from trio_wrapper.core.lines import LineBatch
from trio_wrapper.core.status import Status
from trio_wrapper.streaming.client import ClientState, FanoutClient
from trio_wrapper.streaming.fanout import Fanout


@dataclass(frozen=True)
class Limits:
    client_buffer: int = 100
    client_buffer_bytes: int = 64 * 1024 * 1024
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
        self, number: int, agent: str | None, limit: int, peer: tuple[str, int] | None = None
    ) -> None:
        super().__init__(number, agent, limit, peer)
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
