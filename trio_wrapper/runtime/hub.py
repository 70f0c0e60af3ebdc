"""The event hub: the fan-out (``streaming.fanout``) with its timers and its waking.

Everything decided on plain data (numbering, rings, drop policy, replay, client states)
lives in ``streaming``; this module adds only what needs trio: how a client's stream is
parked and woken (``Client``), the three timers (flush, pace, sweep, all in ``Hub.run``),
and shutdown.

Idle clients are cheap (see ``Client``): their streams are parked, and one task of the
hub, the pacemaker, wakes them for their pings and reads their connections' disconnects.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from trio_wrapper.config import SseConfig
from trio_wrapper.core.descriptors import CLIENT_DESCRIPTORS
from trio_wrapper.core.errors import Refusal
from trio_wrapper.metrics.snapshot import SseFigures
from trio_wrapper.runtime.connections import abort_connection
from trio_wrapper.runtime.descriptors import Descriptors
from trio_wrapper.runtime.eventlog import LIMIT_LOG
from trio_wrapper.streaming.backlog import Backlog
from trio_wrapper.streaming.client import GONE, FanoutClient, Transition
from trio_wrapper.streaming.fanout import Fanout, Subscription
from trio_wrapper.streaming.ring import Published

PACE_SLICE = 500  # clients looked at between two checkpoints of the pacemaker
# The most a flush writes to a stream itself (``Hub.flush``), counted as the runs' ``size``
# (an upper bound of their frames): far less than a socket's buffer, so the socket
# nearly always takes it all at once; more waits for the stream's own send.
SEND_NOW_BYTES = 64 * 1024


class DirectWriter(Protocol):
    """A stream's connection, written to without its task (``api.direct_body.DirectBody``
    is one): the hub's flush writes small news this way, a syscall per client instead of
    a wake, a task switch and the stream loop's turn."""

    def frame(self, data: bytes) -> bytes:
        """``data`` framed for the connection; the same for every writer."""
        ...

    def ready(self) -> bool:
        """Nothing else is writing to the connection, and it takes body data."""
        ...

    def write_now(self, framed: bytes) -> int:
        """What the connection took at once of ``framed``; -1: it is closed."""
        ...


# The configurable limits' defaults are ``[sse]``'s, stated once, in ``config``.
_SSE = SseConfig()


@dataclass(frozen=True, slots=True)
class HubLimits:
    """The hub's sizes and periods. The configurable ones are ``[sse]``'s (``from_config``;
    the same defaults); the others are tuning kept out of the configuration."""

    client_buffer: int = _SSE.client_buffer
    client_buffers_total_bytes: int = _SSE.client_buffers_total_bytes
    retained_per_agent: int = _SSE.retained_events_per_agent
    retained_global: int = _SSE.retained_events_global
    retained_bytes_per_agent: int = _SSE.retained_bytes_per_agent
    retained_bytes_global: int = _SSE.retained_bytes_global
    max_clients: int = _SSE.max_clients
    max_clients_per_agent: int = _SSE.max_clients_per_agent
    ping_interval: float = _SSE.ping_interval_seconds
    stall_timeout: float = _SSE.stall_timeout_seconds
    sweep_interval: float = _SSE.sweep_interval_seconds
    # The pacemaker's period: how late a ping may be, and how soon a disconnect is seen.
    poll_interval: float = 0.5
    shutdown_grace: float = 1.0
    # The least time between two flushes (``Hub.flush_delay``): 0.015 ms a client, 10 ms
    # at most; news after a quiet spell goes out at once (``Hub._flush_loop``). A flush
    # writes small news to each stream itself (``Hub.flush``): at 100 clients and a line
    # a millisecond that is nearly all the socket's own ``send`` now, which left room for
    # a shorter delay (p99 about 10 ms at 0.03, 9 at 0.015, 11 at 0.01: below that the
    # sends' CPU starves the rest on a 2-core machine; docs/benchmarks.md).
    coalesce: float = 0.010
    coalesce_per_client: float = 1.5e-5

    @classmethod
    def from_config(cls, sse: SseConfig) -> HubLimits:
        """The limits ``[sse]`` sets; the rest keep their defaults."""
        return cls(
            client_buffer=sse.client_buffer,
            client_buffers_total_bytes=sse.client_buffers_total_bytes,
            retained_per_agent=sse.retained_events_per_agent,
            retained_global=sse.retained_events_global,
            retained_bytes_per_agent=sse.retained_bytes_per_agent,
            retained_bytes_global=sse.retained_bytes_global,
            max_clients=sse.max_clients,
            max_clients_per_agent=sse.max_clients_per_agent,
            ping_interval=sse.ping_interval_seconds,
            stall_timeout=sse.stall_timeout_seconds,
            sweep_interval=sse.sweep_interval_seconds,
        )


class Client(FanoutClient):
    """One SSE connection (``FanoutClient``), and how its stream is woken.

    An idle stream holds no event, no cancel scope, no timer and no wait on the
    connection: its task is parked (``task``) and ``wake`` reschedules it. The hub's
    pacemaker (``Hub.pace``) wakes it when its ping is due (``ping_at``) and reads what
    its connection sent (``inbox``) for it, so a disconnect is seen within
    ``poll_interval``.

    A connection whose ASGI ``receive`` is not a trio memory channel (hypercorn's trio
    worker hands one) cannot be read that way: its stream waits in ``receive()`` inside
    ``receiving``, which ``wake`` cancels. Such a stream also sends inside ``sending``,
    which a drop cancels.
    """

    __slots__ = ("inbox", "receiving", "sending", "task", "unsent", "writer")

    def __init__(
        self,
        number: int,
        agent: str | None,
        limit: int,
        peer: tuple[str, int] | None = None,
        backlog: Backlog | None = None,
    ) -> None:
        super().__init__(number, agent, limit, peer, backlog)
        self.inbox: trio.MemoryReceiveChannel[Any] | None = None  # the connection's messages
        self.task: trio.lowlevel.Task | None = None  # the stream, while parked
        self.receiving: trio.CancelScope | None = None  # the stream waits in ``receive()``
        self.sending: trio.CancelScope | None = None  # the stream sends, cancellably
        # Set by the stream when its connection can be written without it: the hub's
        # flush then writes small news itself (``Hub.flush``), and what the socket did
        # not take at once is left in ``unsent`` for the stream to send first.
        self.writer: DirectWriter | None = None
        self.unsent: memoryview | None = None

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
        elif self.receiving is not None:
            scope, self.receiving = self.receiving, None
            scope.cancel()

    def pace(self, now: float) -> None:
        """The pacemaker's look: read what the connection sent (its disconnect ends the
        stream; anything else, the request's empty body, is let pass), and wake the
        stream if the client is gone or its ping is due."""
        inbox = self.inbox
        if inbox is not None and self.state is not GONE:
            try:
                while True:
                    if inbox.receive_nowait()["type"] == "http.disconnect":
                        self.move(Transition.DISCONNECT)
                        break
            except trio.WouldBlock:
                pass
            except (trio.EndOfChannel, trio.ClosedResourceError):
                self.move(Transition.DISCONNECT)
        if self.state is GONE or now >= self.ping_at:
            self.wake()

    def drop(self) -> None:
        """End the stream now. If it is stuck in a send the server shields from
        cancellation, shut its socket so that send fails."""
        self.move(Transition.DROP)
        self.wake()
        if self.sending is not None:
            self.sending.cancel()
        if self.sending_since is not None:
            abort_connection(self.peer)


class Hub(Fanout[Client]):
    """The fan-out, with its flush timer, pacemaker, sweeper and shutdown."""

    limits: HubLimits

    def __init__(
        self, limits: HubLimits | None = None, descriptors: Descriptors | None = None
    ) -> None:
        super().__init__(limits or HubLimits(), Client)
        self.descriptors = descriptors
        self.subscriptions_total = 0  # asked for, refused or not: activity (heap.QuietTrim)
        self._closed = trio.Event()
        self._flusher: trio.lowlevel.Task | None = None  # waiting for the first news
        self._flushing = False  # ``run`` started the flusher; without it, no delay
        self._all_gone: trio.Event | None = None  # set at shutdown when no client is left

    # ---- flushing ---------------------------------------------------------------------

    @property
    def flush_delay(self) -> float:
        limits = self.limits
        return min(limits.coalesce, len(self.clients) * limits.coalesce_per_client)

    def _news_due(self) -> None:
        if not self._flushing:
            self.flush()
        elif self._flusher is not None:
            task, self._flusher = self._flusher, None
            trio.lowlevel.reschedule(task)

    async def _flush_loop(self) -> None:
        """One timer for all streams, adapting to the load: news that comes after a quiet
        spell (nothing flushed for ``flush_delay``) goes out at once, and while news keeps
        coming it waits until ``flush_delay`` after the previous flush, so flushes never
        come closer together than that: every client that has news is released at once.
        A timer per stream would cost each of them a cancel scope and a deadline per
        send; a fixed delay after the first news would hold every lone line for it."""
        last_flush = -math.inf
        while not self._closed.is_set():
            if not self._due:
                self._flusher = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(self._abort_flusher)
                continue
            due = last_flush + self.flush_delay
            if trio.current_time() < due:
                await trio.sleep_until(due)
            else:
                # Idle until now: one turn of the scheduler, so that what the same read
                # of the child published goes in the same send, then out.
                await trio.lowlevel.cancel_shielded_checkpoint()
            self.flush()
            last_flush = trio.current_time()

    def flush(self) -> None:
        """Release every client with news. A parked stream whose news is small is
        written to right here (``DirectWriter``) and stays parked; the others are woken
        and send it themselves. At 100 clients on one agent this is most of a flush's
        work, and the frame is built once for all whose news is the same runs."""
        due, self._due = self._due, []
        if not due:
            return
        now = trio.current_time()
        ping_interval = self.limits.ping_interval
        last_runs: Sequence[Published] = ()
        last_global = False
        framed = b""
        for client in due:
            client.queued = False
            client.released = True
            writer = client.writer
            if writer is None or client.task is None or not writer.ready():
                client.wake()
                continue
            runs = client.take_plain(SEND_NOW_BYTES)
            if runs is None:
                client.wake()
                continue
            use_global = client.agent is None
            if runs != last_runs or use_global != last_global:
                framed = writer.frame(b"".join([run.wire(use_global) for run in runs]))
                last_runs, last_global = runs, use_global
            written = writer.write_now(framed)
            client.sent()
            if written == len(framed):
                client.ping_at = now + ping_interval
                continue
            if written < 0:
                client.move(Transition.DISCONNECT)  # the connection is closed
            else:
                client.unsent = memoryview(framed)[written:]
            client.wake()

    def _abort_flusher(self, _: object) -> trio.lowlevel.Abort:
        self._flusher = None
        return trio.lowlevel.Abort.SUCCEEDED

    def _stop_flusher(self) -> None:
        """No flusher from now on, so news goes out at once."""
        self._flushing = False
        if self._flusher is not None:
            task, self._flusher = self._flusher, None
            trio.lowlevel.reschedule(task)

    # ---- subscribing ------------------------------------------------------------------

    def subscribe(
        self,
        agent_name: str | None,
        last_event_id: int | None,
        history: int,
        *,
        agent_live: bool = True,
        peer: tuple[str, int] | None = None,
    ) -> Subscription[Client]:
        """The fan-out's subscribe, refused first (``too_many_open_files``) when the
        daemon is short of descriptors; a client refused by a limit is logged (throttled)."""
        self.subscriptions_total += 1
        try:
            if self.descriptors is not None and not self.closing:
                self.descriptors.admit("SSE client", CLIENT_DESCRIPTORS)
            return super().subscribe(
                agent_name, last_event_id, history, agent_live=agent_live, peer=peer
            )
        except Refusal as err:
            LIMIT_LOG.refused(err)
            raise

    def unsubscribe(self, client: Client) -> None:
        super().unsubscribe(client)
        if self._all_gone is not None and not self.clients:
            self._all_gone.set()

    # ---- figures ----------------------------------------------------------------------

    def sse_figures(self) -> SseFigures:
        """For the metrics model (its ``SseSource``)."""
        return SseFigures(
            clients_by_agent=self.clients_by_agent(),
            dropped_events_total=self.dropped_events_total,
            slow_disconnects_total=self.slow_disconnects_total,
            events_clients=len(self.global_clients),
        )

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
        timeout = self.limits.stall_timeout
        stalled = [client for client in self.clients if client.stalled(now, timeout)]
        for client in stalled:
            client.drop()
        return len(stalled)

    async def shutdown(self) -> None:
        """Tell every stream to send ``shutdown`` and end; drop the ones that cannot within
        the grace, and give those the grace again to go."""
        self.closing = True
        self._all_gone = all_gone = trio.Event()
        for client in self.clients:
            client.move(Transition.SHUT_DOWN)
            client.wake()
        # Without clients, no checkpoint: a shutdown in a cancelled scope still completes.
        if self.clients:
            with trio.move_on_after(self.limits.shutdown_grace):
                await all_gone.wait()
        for client in list(self.clients):
            client.drop()
        if self.clients:
            with trio.move_on_after(self.limits.shutdown_grace):
                await all_gone.wait()
        self._closed.set()
        self._stop_flusher()


__all__ = ["Client", "Hub", "HubLimits"]
