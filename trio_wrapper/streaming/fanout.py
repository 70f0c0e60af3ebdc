"""Publishing and subscribing: per-agent sequence numbers and rings, and fan-out of each
delivery to the subscribers' buffers. Pure: no trio; the runtime's ``Hub`` adds the
timers and the waking (``runtime.hub``).

Publishing never waits: each client has a bounded buffer (``FanoutClient``; a list, not a
memory channel, because a slow client must lose its *oldest* events, and a channel can
only refuse the newest). A batch (everything one read produced) is appended to each
subscriber's buffer in one call. With no subscribers nothing is encoded; the rings keep
runs of raw lines (``streaming.ring``) until someone asks.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from trio_wrapper.core.errors import Refusal
from trio_wrapper.core.lines import LineBatch
from trio_wrapper.core.models import SseStats
from trio_wrapper.core.status import Status
from trio_wrapper.extract.found import Found
from trio_wrapper.streaming.backlog import Backlog
from trio_wrapper.streaming.client import FanoutClient, Transition
from trio_wrapper.streaming.replay import Gap, select_replay
from trio_wrapper.streaming.ring import EventRing, Published
from trio_wrapper.streaming.wire import Event

C = TypeVar("C", bound=FanoutClient)


class AgentView(Protocol):
    """What the fan-out reads of an agent (``runtime.agent.Agent`` has it all)."""

    @property
    def name(self) -> str: ...
    @property
    def status(self) -> Status: ...
    @property
    def status_detail(self) -> str | None: ...
    @property
    def exit_code(self) -> int | None: ...
    @property
    def duration_seconds(self) -> float: ...


class FanoutLimits(Protocol):
    """The sizes the fan-out needs (``runtime.hub.HubLimits`` has them)."""

    @property
    def client_buffer(self) -> int: ...
    @property
    def client_buffers_total_bytes(self) -> int: ...
    @property
    def retained_per_agent(self) -> int: ...
    @property
    def retained_global(self) -> int: ...
    @property
    def retained_bytes_per_agent(self) -> int: ...
    @property
    def retained_bytes_global(self) -> int: ...
    @property
    def max_clients(self) -> int: ...
    @property
    def max_clients_per_agent(self) -> int: ...


class AgentChannel(Generic[C]):
    """One agent's numbering, its ring of recent events and its subscribers."""

    __slots__ = ("clients", "complete", "next_seq", "ring")

    def __init__(self, retained: int, retained_bytes: int) -> None:
        self.next_seq = 1
        self.ring = EventRing(retained, max_bytes=retained_bytes)
        self.clients: set[C] = set()
        self.complete: Event | None = None


@dataclass(slots=True)
class Subscription(Generic[C]):
    client: C
    replay: list[Event]
    gap: Gap | None
    finished: bool  # the agent had finished: replay, then ``complete``, then end
    complete: Event | None  # its numbered ``complete`` event, when the hub saw it happen


ClientFactory = Callable[[int, "str | None", int, "tuple[str, int] | None", Backlog], C]


class Fanout(Generic[C]):
    """Every agent's channel and every client. Subclasses decide when released news
    reaches the streams (``_news_due``) and how a stream is woken (``FanoutClient.wake``).
    """

    def __init__(self, limits: FanoutLimits, new_client: ClientFactory[C]) -> None:
        self.limits = limits
        self._new_client = new_client
        self.channels: dict[str, AgentChannel[C]] = {}
        self.global_ring = EventRing(
            limits.retained_global, use_global=True, max_bytes=limits.retained_bytes_global
        )
        self.global_clients: set[C] = set()
        self.backlog = Backlog(limits.client_buffers_total_bytes)
        # Above this, shed (``_shed``): the limit, or more while what cannot be dropped
        # (clients' newest runs, sends under way) keeps the total above it.
        self._shed_above = self.backlog.limit
        self.next_global_seq = 1
        self.dropped_events_total = 0
        self.slow_disconnects_total = 0
        self.events_total = 0
        self.clients: set[C] = set()
        self._client_ids = itertools.count(1)
        self.closing = False
        # Clients with news since the last flush.
        self._due: list[C] = []

    # ---- publishing (the AgentObserver seam; synchronous, never waits) ----------------

    def _channel(self, name: str) -> AgentChannel[C]:
        channel = self.channels.get(name)
        if channel is None:
            channel = self.channels[name] = AgentChannel(
                self.limits.retained_per_agent, self.limits.retained_bytes_per_agent
            )
        return channel

    def on_lines(
        self, agent: AgentView, stream: str, first_line_num: int, batch: LineBatch
    ) -> None:
        channel = self._channel(agent.name)
        count = len(batch.lines)
        run = Published.of_lines(
            agent.name, channel.next_seq, self.next_global_seq, batch.lines, stream, first_line_num
        )
        channel.next_seq += count
        self.next_global_seq += count
        self.events_total += count
        self._deliver(channel, run)

    def publish(self, agent_name: str, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Numbered events other than log lines: (type, data) pairs, e.g. extractions."""
        channel = self._channel(agent_name)
        events = []
        for type_, data in items:
            events.append(Event(agent_name, channel.next_seq, self.next_global_seq, type_, data))
            channel.next_seq += 1
            self.next_global_seq += 1
        self.events_total += len(events)
        if events:
            self._deliver(channel, Published.of_events(events))

    def on_records(self, agent: AgentView, found: Found, counts_by_type: Mapping[str, int]) -> None:
        channel = self._channel(agent.name)
        count = len(found)
        run = Published.of_records(agent.name, channel.next_seq, self.next_global_seq, found)
        channel.next_seq += count
        self.next_global_seq += count
        self.events_total += count
        self._deliver(channel, run)

    def on_status(self, agent: AgentView, old: Status | None, new: Status) -> None:
        items: list[tuple[str, dict[str, Any]]] = [
            ("state", {"state": new.value, "detail": agent.status_detail})
        ]
        if new.is_terminal:
            items.append(("complete", complete_data(agent)))
        self.publish(agent.name, items)
        if new.is_terminal:
            channel = self._channel(agent.name)
            channel.complete = channel.ring.peek_last()

    def on_removed(self, agent: AgentView) -> None:
        channel = self.channels.pop(agent.name, None)
        if channel is not None:
            for client in channel.clients:
                client.move(Transition.END)
                client.wake()

    def _deliver(self, channel: AgentChannel[C], run: Published) -> None:
        # The hot path: once per read, a few attribute tests per subscriber.
        channel.ring.append(run)
        self.global_ring.append(run)
        if self.closing:
            return  # streams send what they hold, then ``shutdown``: nothing more
        dropped = 0
        due = self._due
        for client in channel.clients:
            if not client.queued:
                client.queued = True
                due.append(client)
            dropped += client.push(run)
        for client in self.global_clients:
            if not client.queued:
                client.queued = True
                due.append(client)
            dropped += client.push(run)
        backlog = self.backlog
        if backlog.bytes > self._shed_above:
            dropped += self._shed()
        elif self._shed_above > backlog.limit and backlog.bytes <= backlog.limit:
            self._shed_above = backlog.limit
        self.dropped_events_total += dropped
        if due:
            self._news_due()

    def _shed(self) -> int:
        """Bring what client buffers hold together back to 7/8 of its limit by dropping
        the oldest runs first, wherever they wait: the clients furthest behind lose
        theirs, and a run waited for by several goes from all of them (it is only freed
        then). The room left makes the next shed wait for an eighth of the limit's worth
        of news; while what cannot be dropped (clients' newest runs, sends under way)
        keeps the total above 7/8, the next shed waits for an eighth more than is left
        (each shed looks at every client). Returns how many events were dropped."""
        backlog = self.backlog
        target = backlog.limit - backlog.limit // 8
        behind = []
        for client in self.clients:
            oldest = client.oldest
            if oldest is not None:
                behind.append((oldest.gseq, client.number, client))
        heapq.heapify(behind)
        dropped = 0
        while behind and backlog.bytes > target:
            _, number, client = behind[0]
            dropped += client.drop_oldest()
            oldest = client.oldest
            if oldest is None:
                heapq.heappop(behind)
            else:
                heapq.heapreplace(behind, (oldest.gseq, number, client))
        self._shed_above = max(backlog.limit, backlog.bytes + backlog.limit // 8)
        return dropped

    # ---- flushing ---------------------------------------------------------------------

    def _news_due(self) -> None:
        """Some client has news. Without a flush timer (this class), release it at once."""
        self.flush()

    def flush(self) -> None:
        """Release every client with news: their streams send what they hold."""
        due, self._due = self._due, []
        for client in due:
            client.queued = False
            client.released = True
            client.wake()

    # ---- subscribing ------------------------------------------------------------------

    def subscribe(
        self,
        agent_name: str | None,
        last_event_id: int | None,
        history: int,
        *,
        agent_live: bool = True,
        peer: tuple[str, int] | None = None,
    ) -> Subscription[C]:
        """Register a client and take what it must be replayed, in one synchronous step, so
        nothing published meanwhile is doubled or missed.

        For an agent that has finished (its ``complete`` is known, or it is a past run the
        hub never saw) the client is not registered: the stream replays and ends.
        """
        if self.closing:
            raise Refusal("shutting_down", "the daemon is shutting down")
        if len(self.clients) >= self.limits.max_clients:
            raise Refusal("too_many_clients", "too many SSE clients connected")
        client = self._new_client(
            next(self._client_ids), agent_name, self.limits.client_buffer, peer, self.backlog
        )
        if agent_name is None:
            replay, gap = select_replay(self.global_ring, last_event_id, history)
            self.global_clients.add(client)
            self.clients.add(client)
            return Subscription(client, replay, gap, finished=False, complete=None)
        channel = self.channels.get(agent_name)
        if channel is None:
            if not agent_live:
                return Subscription(client, [], None, finished=True, complete=None)
            channel = self._channel(agent_name)
        if len(channel.clients) >= self.limits.max_clients_per_agent:
            raise Refusal("too_many_clients", f"too many SSE clients on {agent_name!r}")
        replay, gap = select_replay(channel.ring, last_event_id, history)
        if channel.complete is not None:
            return Subscription(client, replay, gap, finished=True, complete=channel.complete)
        channel.clients.add(client)
        self.clients.add(client)
        return Subscription(client, replay, gap, finished=False, complete=None)

    def new_client_id(self) -> str:
        """An id for a client served without subscribing (a past run's whole stream), in
        the form subscribers' ids have (``c7``)."""
        return f"c{next(self._client_ids)}"

    def unsubscribe(self, client: C) -> None:
        client.move(Transition.CLOSE)
        client.clear()
        self.clients.discard(client)
        if client.agent is None:
            self.global_clients.discard(client)
            return
        channel = self.channels.get(client.agent)
        if channel is not None:
            channel.clients.discard(client)

    # ---- figures ----------------------------------------------------------------------

    @property
    def total_clients(self) -> int:
        return len(self.clients)

    def clients_by_agent(self) -> dict[str, int]:
        """Subscribers per agent, for agents that have any."""
        return {name: len(ch.clients) for name, ch in self.channels.items() if ch.clients}

    def stats(self) -> SseStats:
        per_agent = self.clients_by_agent()
        return SseStats(
            total_agents=len(per_agent),
            total_clients=len(self.clients),
            agents=per_agent,
            events_clients=len(self.global_clients),
            dropped_events_total=self.dropped_events_total,
            slow_disconnects_total=self.slow_disconnects_total,
        )


def complete_data(agent: AgentView) -> dict[str, Any]:
    """The ``complete`` event's data."""
    return {
        "status": agent.status.value,
        "exit_code": agent.exit_code,
        "duration_seconds": round(agent.duration_seconds, 3),
    }


__all__ = [
    "AgentChannel",
    "AgentView",
    "Fanout",
    "FanoutLimits",
    "Subscription",
    "complete_data",
]
