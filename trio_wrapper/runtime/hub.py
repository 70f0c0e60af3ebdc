"""The event hub: per-agent sequence numbers and rings, and fan-out to SSE clients.

Publishing never waits: each client has a bounded buffer (a list, not a memory channel,
because a slow client must lose its *oldest* events, and a channel can only refuse the
newest). A batch (everything one read produced) is appended to each subscriber's buffer in
one call, and the client's task is woken once. With no subscribers nothing is encoded;
the rings keep runs of raw lines (``event_ring``) until someone asks.

Idle clients are cheap (see ``Client``): their streams are parked, and one task of the
hub, the pacemaker, wakes them for their pings and reads their connections' disconnects.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from trio_wrapper.core.errors import Refusal
from trio_wrapper.core.lines import LineBatch
from trio_wrapper.core.status import Status
from trio_wrapper.extract.found import Found
from trio_wrapper.metrics.snapshot import SseFigures
from trio_wrapper.runtime.connections import abort_connection
from trio_wrapper.streaming.ring import EventRing, Run
from trio_wrapper.streaming.wire import Event

if TYPE_CHECKING:
    from trio_wrapper.runtime.agent import Agent

log = logging.getLogger("trio_wrapper.runtime.hub")

PACE_SLICE = 500  # clients looked at between two checkpoints of the pacemaker


@dataclass(frozen=True, slots=True)
class HubLimits:
    client_buffer: int = 100
    retained_per_agent: int = 1000
    retained_global: int = 10_000
    max_clients: int = 20_000
    max_clients_per_agent: int = 10_000
    ping_interval: float = 15.0
    stall_timeout: float = 120.0
    sweep_interval: float = 30.0
    # The pacemaker's period: how late a ping may be, and how soon a disconnect is seen.
    poll_interval: float = 0.5
    shutdown_grace: float = 1.0
    # How long news waits for the next flush (``Hub.flush_delay``): 0.05 ms a client, 10 ms
    # at most. Each send costs about the same CPU whatever it carries (about 30 us): at
    # 100 clients this keeps the daemon under two thirds of a core for an agent printing
    # a line every millisecond, with a p99 delay of about 16 ms (docs/benchmarks.md).
    coalesce: float = 0.010
    coalesce_per_client: float = 5e-5


@dataclass(frozen=True, slots=True)
class Gap:
    missed: int
    first_id: int
    last_id: int

    def data(self) -> dict[str, int]:
        return {"missed": self.missed, "first_id": self.first_id, "last_id": self.last_id}


class Client:
    """One SSE connection: its buffer, and how its stream is woken.

    The buffer is counted in deliveries: a delivery is what one read of the agent's output
    produced (one line or a 64 KiB read's worth). Counting single lines would make a client
    that keeps up perfectly lose lines whenever an agent prints a burst; counting reads
    loses only for a client that missed ``limit`` consecutive wake-ups. ``push`` is O(1)
    while the client keeps up.

    Thousands of clients sit idle for hours, and each keeps what its idle stream holds
    (the goal is 20 KB a client, hypercorn's own connection included). So an idle client
    holds no buffer (the list is made by the first push after each ``take``), and its
    stream no event, no cancel scope, no timer and no wait on the connection: the stream
    task is parked (``task``) and ``wake`` reschedules it. The hub's pacemaker
    (``Hub.pace``) wakes it when its ping is due (``ping_at``) and reads what its
    connection sent (``inbox``) for it, so a disconnect is seen within ``poll_interval``.

    A connection whose ASGI ``receive`` is not a trio memory channel (hypercorn's trio
    worker hands one) cannot be read that way: its stream waits in ``receive()`` inside
    ``scope`` (``waiting``), and ``wake`` cancels that scope.
    """

    __slots__ = (
        "_first_missed",
        "_last_missed",
        "_missed",
        "agent",
        "batches",
        "dropped",
        "ended",
        "gone",
        "inbox",
        "limit",
        "number",
        "peer",
        "ping_at",
        "queued",
        "released",
        "scope",
        "sending_since",
        "shutting_down",
        "task",
        "waiting",
    )

    def __init__(
        self,
        number: int,
        agent: str | None,
        limit: int,
        peer: tuple[str, int] | None = None,
    ) -> None:
        self.number = number
        self.peer = peer  # the TCP peer, to abort a connection the server won't let go
        self.agent = agent  # None: the all-agents stream
        self.limit = limit
        self.batches: list[Run] | None = None
        self._missed = 0
        self._first_missed = 0
        self._last_missed = 0
        self.inbox: trio.MemoryReceiveChannel[Any] | None = None  # the connection's messages
        self.task: trio.lowlevel.Task | None = None  # the stream, while parked
        self.ping_at = math.inf  # when the stream's next ping is due
        self.queued = False  # in the hub's list for its next flush
        self.released = False  # the flush came: send what is buffered
        # The scope the stream is blocked in (sending, or waiting in ``receive()``), so it
        # can be cancelled; ``waiting``: that block is the wait, which ``wake`` ends.
        self.scope: trio.CancelScope | None = None
        self.waiting = False
        self.sending_since: float | None = None
        self.shutting_down = False  # the daemon stops: send ``shutdown`` and end
        self.ended = False  # the agent was removed: end quietly
        self.dropped = False  # stalled, or still there at shutdown: end now
        self.gone = False  # the client disconnected

    @property
    def id(self) -> str:
        return f"c{self.number}"

    def push(self, run: Run) -> int:
        """Queue one delivery (a run, shared by every client and encoded once for all).
        Past the limit, the oldest deliveries go. Returns how many events were dropped."""
        batches = self.batches
        if batches is None:
            batches = self.batches = []
        batches.append(run)
        if len(batches) <= self.limit:
            return 0
        lost = batches.pop(0)  # at most ``limit`` (100) pointers moved
        first = lost.first_id(self.agent is None)
        if not self._missed:
            self._first_missed = first
        self._last_missed = first + lost.count - 1
        self._missed += lost.count
        return lost.count

    def park(self) -> Awaitable[object]:
        """Block the calling stream until ``wake``: await the result at once. (Not an
        async function: a parked stream then keeps no frame of this method.)"""
        self.task = trio.lowlevel.current_task()
        return trio.lowlevel.wait_task_rescheduled(self._unpark)  # noqa: ASYNC105

    def _unpark(self, _: object) -> trio.lowlevel.Abort:
        self.task = None  # cancelled from outside (the server stops)
        return trio.lowlevel.Abort.SUCCEEDED

    def wake(self) -> None:
        """End the stream's wait (a no-op unless it is parked or waiting)."""
        task = self.task
        if task is not None:
            self.task = None
            trio.lowlevel.reschedule(task)
        elif self.waiting:
            self.waiting = False
            assert self.scope is not None
            self.scope.cancel()

    def pace(self, now: float) -> None:
        """The pacemaker's look: read what the connection sent (its disconnect ends the
        stream; anything else, the request's empty body, is let pass), and wake the
        stream if the client is gone or its ping is due."""
        inbox = self.inbox
        if inbox is not None and not self.gone:
            try:
                while True:
                    if inbox.receive_nowait()["type"] == "http.disconnect":
                        self.gone = True
                        break
            except trio.WouldBlock:
                pass
            except (trio.EndOfChannel, trio.ClosedResourceError):
                self.gone = True
        if self.gone or now >= self.ping_at:
            self.wake()

    @property
    def has_news(self) -> bool:
        """Something to send, or a reason to end."""
        return bool(self.batches or self.shutting_down or self.ended or self.dropped)

    def take(self) -> tuple[list[Run], Gap | None]:
        """Everything buffered, and the gap before it if some was lost."""
        gap = None
        if self._missed:
            gap = Gap(self._missed, self._first_missed, self._last_missed)
            self._missed = 0
        runs = self.batches or []
        self.batches = None
        self.released = False
        return runs, gap


class AgentChannel:
    """One agent's numbering, its ring of recent events and its subscribers."""

    __slots__ = ("clients", "complete", "next_seq", "ring")

    def __init__(self, retained: int) -> None:
        self.next_seq = 1
        self.ring = EventRing(retained)
        self.clients: set[Client] = set()
        self.complete: Event | None = None


@dataclass(slots=True)
class Subscription:
    client: Client
    replay: list[Event]
    gap: Gap | None
    finished: bool  # the agent had finished: replay, then ``complete``, then end
    complete: Event | None  # its numbered ``complete`` event, when the hub saw it happen


class Hub:
    def __init__(self, limits: HubLimits | None = None) -> None:
        self.limits = limits or HubLimits()
        self.channels: dict[str, AgentChannel] = {}
        self.global_ring = EventRing(self.limits.retained_global, use_global=True)
        self.global_clients: set[Client] = set()
        self.next_global_seq = 1
        self.dropped_events_total = 0
        self.slow_disconnects_total = 0
        self.events_total = 0
        self.clients: set[Client] = set()
        self._client_ids = itertools.count(1)
        self.closing = False
        self._closed = trio.Event()
        # Clients with news since the last flush, and the flusher waiting for the first.
        self._due: list[Client] = []
        self._flusher: trio.lowlevel.Task | None = None
        self._flushing = False  # ``run`` started the flusher; without it, no delay

    # ---- publishing (the AgentObserver seam; synchronous, never waits) ----------------

    def _channel(self, name: str) -> AgentChannel:
        channel = self.channels.get(name)
        if channel is None:
            channel = self.channels[name] = AgentChannel(self.limits.retained_per_agent)
        return channel

    def on_lines(self, agent: Agent, stream: str, first_line_num: int, batch: LineBatch) -> None:
        channel = self._channel(agent.name)
        count = len(batch.lines)
        run = Run.of_lines(
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
            self._deliver(channel, Run.of_events(events))

    def on_records(self, agent: Agent, found: Found, counts_by_type: Mapping[str, int]) -> None:
        channel = self._channel(agent.name)
        count = len(found)
        run = Run.of_records(agent.name, channel.next_seq, self.next_global_seq, found)
        channel.next_seq += count
        self.next_global_seq += count
        self.events_total += count
        self._deliver(channel, run)

    def on_status(self, agent: Agent, old: Status | None, new: Status) -> None:
        items: list[tuple[str, dict[str, Any]]] = [
            ("state", {"state": new.value, "detail": agent.status_detail})
        ]
        if new.is_terminal:
            items.append(("complete", complete_data(agent)))
        self.publish(agent.name, items)
        if new.is_terminal:
            channel = self._channel(agent.name)
            channel.complete = channel.ring.peek_last()

    def on_removed(self, agent: Agent) -> None:
        channel = self.channels.pop(agent.name, None)
        if channel is not None:
            for client in channel.clients:
                client.ended = True
                client.wake()

    def _deliver(self, channel: AgentChannel, run: Run) -> None:
        channel.ring.append(run)
        self.global_ring.append(run)
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
        self.dropped_events_total += dropped
        if due:
            if not self._flushing:
                self.flush()
            elif self._flusher is not None:
                task, self._flusher = self._flusher, None
                trio.lowlevel.reschedule(task)

    # ---- flushing ---------------------------------------------------------------------

    @property
    def flush_delay(self) -> float:
        limits = self.limits
        return min(limits.coalesce, len(self.clients) * limits.coalesce_per_client)

    def flush(self) -> None:
        """Release every client with news: their streams send what they hold."""
        due, self._due = self._due, []
        for client in due:
            client.queued = False
            client.released = True
            client.wake()

    async def _flush_loop(self) -> None:
        """One timer for all streams: news waits ``flush_delay`` after the first of it, then
        every client that has some is released at once. A timer per stream would cost
        each of them a cancel scope and a deadline per send."""
        while not self._closed.is_set():
            if not self._due:
                self._flusher = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(self._abort_flusher)
                continue
            await trio.sleep(self.flush_delay)
            self.flush()

    def _abort_flusher(self, _: object) -> trio.lowlevel.Abort:
        self._flusher = None
        return trio.lowlevel.Abort.SUCCEEDED

    # ---- subscribing ------------------------------------------------------------------

    def subscribe(
        self,
        agent_name: str | None,
        last_event_id: int | None,
        history: int,
        *,
        agent_live: bool = True,
        peer: tuple[str, int] | None = None,
    ) -> Subscription:
        """Register a client and take what it must be replayed, in one synchronous step, so
        nothing published meanwhile is doubled or missed.

        For an agent that has finished (its ``complete`` is known, or it is a past run the
        hub never saw) the client is not registered: the stream replays and ends.
        """
        if self.closing:
            raise Refusal("shutting_down", "the daemon is shutting down")
        if len(self.clients) >= self.limits.max_clients:
            raise Refusal("too_many_clients", "too many SSE clients connected")
        client = Client(next(self._client_ids), agent_name, self.limits.client_buffer, peer)
        if agent_name is None:
            replay, gap = _select_replay(self.global_ring, last_event_id, history)
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
        replay, gap = _select_replay(channel.ring, last_event_id, history)
        if channel.complete is not None:
            return Subscription(client, replay, gap, finished=True, complete=channel.complete)
        channel.clients.add(client)
        self.clients.add(client)
        return Subscription(client, replay, gap, finished=False, complete=None)

    def unsubscribe(self, client: Client) -> None:
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

    def sse_figures(self) -> SseFigures:
        """For the metrics model (its ``SseSource``)."""
        return SseFigures(
            clients_by_agent={n: len(c.clients) for n, c in self.channels.items() if c.clients},
            dropped_events_total=self.dropped_events_total,
            slow_disconnects_total=self.slow_disconnects_total,
            events_clients=len(self.global_clients),
        )

    def stats(self) -> dict[str, Any]:
        per_agent = {name: len(ch.clients) for name, ch in self.channels.items() if ch.clients}
        return {
            "total_agents": len(per_agent),
            "total_clients": len(self.clients),
            "agents": per_agent,
            "events_clients": len(self.global_clients),
            "dropped_events_total": self.dropped_events_total,
            "slow_disconnects_total": self.slow_disconnects_total,
        }

    # ---- lifecycle --------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The hub's timers, until ``shutdown``: the flusher (``_flush_loop``), the
        pacemaker (``pace``, every ``poll_interval``) and the sweeper (``sweep``, every
        ``sweep_interval``)."""
        try:
            async with trio.open_nursery() as nursery:
                self._flushing = True
                nursery.start_soon(self._flush_loop)
                nursery.start_soon(self._every, self.limits.poll_interval, self.pace)
                nursery.start_soon(self._every, self.limits.sweep_interval, self._sweep_now)
                task_status.started()
        finally:
            # Cancelled or shut down: no flusher from now on, so news goes out at once.
            self._flushing = False
            self._flusher = None
            self.flush()

    async def _every(self, interval: float, step: Callable[[], Awaitable[object]]) -> None:
        due = trio.current_time()
        while not self._closed.is_set():
            due = max(due + interval, trio.current_time())  # on a schedule; none made up
            with trio.move_on_at(due):
                await self._closed.wait()
            await step()

    async def pace(self) -> None:
        """Wake the streams whose ping is due, and read every pollable connection (see
        ``Client``), a slice at a time so that ten thousand clients don't hold the loop."""
        now = trio.current_time()
        for index, client in enumerate(list(self.clients)):
            if index and not index % PACE_SLICE:
                await trio.lowlevel.checkpoint()
            client.pace(now)

    async def _sweep_now(self) -> None:
        self.sweep()

    def sweep(self) -> int:
        """Drop the clients stuck in one send for the stall timeout or more. A send has no
        deadline of its own (hypercorn shields its socket writes, and each deadline would
        linger in trio's deadline heap): this is what ends a client that reads nothing."""
        now = trio.current_time()
        dropped = 0
        for client in list(self.clients):
            since = client.sending_since
            if since is not None and now - since >= self.limits.stall_timeout:
                self._drop(client)
                dropped += 1
        return dropped

    @staticmethod
    def _drop(client: Client) -> None:
        """Cancel the client's stream; if it is stuck in a send the server shields from
        cancellation, shut its socket so that send fails."""
        client.dropped = True
        client.wake()
        if client.scope is not None:
            client.scope.cancel()
        if client.sending_since is not None:
            abort_connection(client.peer)

    async def shutdown(self) -> None:
        """Tell every stream to send ``shutdown`` and end; cancel the ones that cannot."""
        self.closing = True
        for client in self.clients:
            client.shutting_down = True
            client.wake()
        with trio.move_on_after(self.limits.shutdown_grace):
            while self.clients:  # noqa: ASYNC110 - streams remove themselves as they end
                await trio.sleep(0.01)
        for client in list(self.clients):
            self._drop(client)
        with trio.move_on_after(self.limits.shutdown_grace):
            while self.clients:  # noqa: ASYNC110 - streams remove themselves as they end
                await trio.sleep(0.01)
        self._closed.set()
        self._flushing = False
        if self._flusher is not None:
            task, self._flusher = self._flusher, None
            trio.lowlevel.reschedule(task)


def _select_replay(
    ring: EventRing, last_event_id: int | None, history: int
) -> tuple[list[Event], Gap | None]:
    newest = ring.newest_id
    if newest is None:
        return [], None
    if last_event_id is not None:
        if last_event_id >= newest:
            return [], None
        oldest = ring.oldest_id or 0
        gap = None
        if last_event_id + 1 < oldest:
            gap = Gap(oldest - last_event_id - 1, last_event_id + 1, oldest - 1)
        return ring.since(last_event_id + 1), gap
    return ring.last(history), None


def complete_data(agent: Agent) -> dict[str, Any]:
    return {
        "status": agent.status.value,
        "exit_code": agent.exit_code,
        "duration_seconds": round(agent.duration_seconds, 3),
    }


__all__ = ["Client", "Gap", "Hub", "HubLimits", "Subscription", "complete_data"]
