"""The hub's trio side (timers, parking, shutdown) and the stream loop, without a
network: fake ASGI ``send``, autojump_clock. The pure parts are tested in tests/streaming."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing

from trio_wrapper.api import direct_body
from trio_wrapper.api.sse import SSEResponse
from trio_wrapper.core.lines import LineBatch
from trio_wrapper.core.status import Status
from trio_wrapper.runtime.hub import Hub, HubLimits


@dataclass
class FakeAgent:
    name: str = "a1"
    is_live: bool = True
    status: Status = Status.RUNNING
    exit_code: int | None = None
    exit_signal: str | None = None
    stop_reason: str | None = None
    status_detail: str = ""
    duration_seconds: float = 1.5


@dataclass
class Recorder:
    """An ASGI ``send`` that records (time, message) and can be made to block: a body
    send then waits until cancelled, or until ``aborted`` is set (hypercorn's send, which
    cancelling cannot end, returns once the socket is shut) and sends nothing."""

    sent: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    blocked: bool = False
    aborted: trio.Event = field(default_factory=trio.Event)

    async def __call__(self, message: dict[str, Any]) -> None:
        if self.blocked and message["type"] == "http.response.body":
            await self.aborted.wait()
            return
        self.sent.append((trio.current_time(), message))

    def events(self) -> list[tuple[float, str, dict[str, Any], str | None]]:
        out = []
        for moment, message in self.sent:
            for block in message.get("body", b"").decode().split("\n\n"):
                if not block.strip():
                    continue
                fields = dict(line.split(": ", 1) for line in block.splitlines())
                out.append((moment, fields["event"], json.loads(fields["data"]), fields.get("id")))
        return out


class Connection:
    """An ASGI connection's messages: the request's empty body, then nothing until
    ``disconnect``. ``receive`` is a memory channel's, as hypercorn's trio worker hands
    it (the hub's pacemaker reads it), or with ``pollable=False`` a plain function (the
    stream then waits in it)."""

    def __init__(self, pollable: bool = True) -> None:
        self.send, self.channel = trio.open_memory_channel[dict[str, Any]](10)
        self.send.send_nowait({"type": "http.request", "body": b"", "more_body": False})
        self.receive = self.channel.receive if pollable else self._receive

    async def _receive(self) -> dict[str, Any]:
        return await self.channel.receive()

    def disconnect(self) -> None:
        self.send.send_nowait({"type": "http.disconnect"})


def publish_line(hub: Hub, agent: FakeAgent, text: str, line_num: int) -> None:
    hub.on_lines(agent, "stdout", line_num, LineBatch([text.encode()]))  # type: ignore[arg-type]


def limits(**kwargs: Any) -> HubLimits:
    return HubLimits(**kwargs)


async def start_stream(
    nursery: trio.Nursery,
    hub: Hub,
    agent: FakeAgent | None,
    send: Recorder,
    *,
    pollable: bool = True,
    **kw: Any,
) -> Connection:
    response = SSEResponse(hub, agent, kw.get("last_event_id"), kw.get("history", 0))
    connection = Connection(pollable)
    nursery.start_soon(response.stream, send, connection.receive)
    await trio.testing.wait_all_tasks_blocked()
    return connection


both_waits = pytest.mark.parametrize("pollable", [True, False], ids=["parked", "in-receive"])


def abort_ends(monkeypatch: pytest.MonkeyPatch, *stuck: Recorder) -> None:
    """``abort_connection`` (shutting a socket down) ends the stuck sends, as it does a
    hypercorn send that cancelling cannot end."""

    def abort(peer: object) -> bool:
        for send in stuck:
            send.aborted.set()
        return True

    monkeypatch.setattr("trio_wrapper.runtime.hub.abort_connection", abort)


@both_waits
async def test_pings_after_15_s_of_silence(autojump_clock: trio.abc.Clock, pollable: bool) -> None:
    hub = Hub(limits())
    agent = FakeAgent()
    hub.on_status(agent, None, Status.RUNNING)  # type: ignore[arg-type]
    send = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)  # its pacemaker sends the pings
        await start_stream(nursery, hub, agent, send, pollable=pollable)
        await trio.sleep(46)
        nursery.cancel_scope.cancel()
    pings = [t for t, kind, _, _ in send.events() if kind == "ping"]
    assert pings == pytest.approx([15.0, 30.0, 45.0], abs=0.01)
    assert send.events()[0][1] == "connected"
    assert hub.total_clients == 0  # cancelled streams unregister themselves


@both_waits
async def test_no_ping_while_events_flow(autojump_clock: trio.abc.Clock, pollable: bool) -> None:
    hub = Hub(limits())
    agent = FakeAgent()
    send = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        await start_stream(nursery, hub, agent, send, pollable=pollable)
        for i in range(12):
            await trio.sleep(10)
            publish_line(hub, agent, f"line {i}", i + 1)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    kinds = [kind for _, kind, _, _ in send.events()]
    assert "ping" not in kinds
    assert kinds.count("log") == 12


@both_waits
async def test_a_disconnect_ends_an_idle_stream_within_the_poll_interval(
    autojump_clock: trio.abc.Clock, pollable: bool
) -> None:
    hub = Hub(limits())
    agent = FakeAgent()
    send = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        connection = await start_stream(nursery, hub, agent, send, pollable=pollable)
        await trio.sleep(3.3)
        assert hub.total_clients == 1
        left = trio.current_time()
        connection.disconnect()
        while hub.total_clients:  # noqa: ASYNC110 - the clock is virtual
            await trio.sleep(0.01)
        # Parked: seen by the pacemaker's next look; waiting in receive(): at once.
        assert trio.current_time() - left <= (hub.limits.poll_interval if pollable else 0.01)
        nursery.cancel_scope.cancel()
    assert [kind for _, kind, _, _ in send.events()] == ["connected"]
    assert hub.slow_disconnects_total == 0


async def test_a_busy_stream_sees_its_disconnect_too(autojump_clock: trio.abc.Clock) -> None:
    """A client that never idles (news at every wake) still ends when it leaves."""
    hub = Hub(limits())
    agent = FakeAgent()
    send = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        connection = await start_stream(nursery, hub, agent, send)

        async def firehose() -> None:
            for i in range(100_000):
                publish_line(hub, agent, f"line {i}", i + 1)
                await trio.sleep(0.005)

        nursery.start_soon(firehose)
        await trio.sleep(2)
        left = trio.current_time()
        connection.disconnect()
        while hub.total_clients:  # noqa: ASYNC110 - the clock is virtual
            await trio.sleep(0.005)
        assert trio.current_time() - left <= hub.limits.poll_interval + 0.02
        nursery.cancel_scope.cancel()


@both_waits
async def test_news_waits_for_the_flush_and_goes_out_in_one_send(
    autojump_clock: trio.abc.Clock, pollable: bool
) -> None:
    """One timer for all streams: the first line after a quiet spell goes out at once,
    what follows within the flush delay waits for the delay's end and rides along, and
    every client gets it in one send at the same moment; a later lone line goes at once."""
    hub = Hub(limits(coalesce=0.5, coalesce_per_client=0.01))
    agent = FakeAgent()
    sends = [Recorder() for _ in range(3)]
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        for send in sends:
            await start_stream(nursery, hub, agent, send, pollable=pollable)
        assert hub.flush_delay == pytest.approx(0.03)
        start = trio.current_time()
        for i in range(3):
            publish_line(hub, agent, f"burst {i}", i + 1)
            await trio.sleep(0.01)
        await trio.sleep(0.1)
        publish_line(hub, agent, "later", 4)
        await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    for send in sends:
        bodies = [(t - start, m["body"].count(b"event: log")) for t, m in send.sent[2:]]
        assert bodies == [(0, 1), (pytest.approx(0.03), 2), (pytest.approx(0.13), 1)]


async def test_without_its_flusher_the_hub_releases_news_at_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    hub = Hub(limits(coalesce=0.5, coalesce_per_client=0.01))  # hub.run() not started
    agent = FakeAgent()
    send = Recorder()
    async with trio.open_nursery() as nursery:
        await start_stream(nursery, hub, agent, send)
        start = trio.current_time()
        publish_line(hub, agent, "now", 1)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert [(t - start, kind) for t, kind, _, _ in send.events()][1:] == [(0, "log")]


async def test_news_is_not_held_once_the_hubs_timers_are_gone(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Cancelled without a shutdown (say, the daemon's nursery fails), the hub must not
    leave news waiting for a flush that will never come."""
    hub = Hub(limits(coalesce=0.5, coalesce_per_client=0.01))
    agent = FakeAgent()
    send = Recorder()
    timers = trio.CancelScope()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_run_in, hub, timers)
        await start_stream(nursery, hub, agent, send)
        publish_line(hub, agent, "held", 1)  # due in 10 ms, when the flusher is gone
        timers.cancel()
        await trio.testing.wait_all_tasks_blocked()
        publish_line(hub, agent, "after", 2)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert [d["data"]["line"] for _, kind, d, _ in send.events() if kind == "log"] == [
        "held",
        "after",
    ]


async def _run_in(hub: Hub, scope: trio.CancelScope) -> None:
    with scope:
        await hub.run()


def test_the_pacemaker_reads_only_memory_channels() -> None:
    from trio_wrapper.api.sse_stream import _inbox

    connection = Connection()
    assert _inbox(connection.channel.receive) is connection.channel
    assert _inbox(Connection(pollable=False).receive) is None
    assert _inbox(connection.channel.receive_nowait) is None  # not its receive


@both_waits
async def test_stalled_client_is_dropped_by_the_sweep_after_two_minutes(
    autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch, pollable: bool
) -> None:
    hub = Hub(limits())
    agent = FakeAgent()
    send = Recorder()
    if pollable:  # hypercorn: the socket is shut; otherwise the send is cancelled
        abort_ends(monkeypatch, send)
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        await start_stream(nursery, hub, agent, send, pollable=pollable)
        assert hub.total_clients == 1
        await trio.sleep(10)
        send.blocked = True
        started = trio.current_time()
        publish_line(hub, agent, "nobody reads this", 1)
        with trio.fail_after(200):
            while hub.total_clients:  # noqa: ASYNC110 - the clock is virtual
                await trio.sleep(1)
        # Stuck since 10 s: the sweeps at 120 s (110 s stuck) spare it, the one at 150 s
        # drops it: the first sweep after two minutes of stalling.
        assert trio.current_time() - started == pytest.approx(140, abs=1.01)
        nursery.cancel_scope.cancel()
    assert hub.slow_disconnects_total == 1


async def test_sweep_every_30_s_drops_clients_stuck_past_the_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    hub = Hub(limits())
    ended_at: list[float] = []

    async def stuck_client() -> None:
        # A client stuck somewhere its own deadline does not cover.
        await trio.sleep(5)
        sub = hub.subscribe(None, None, 0)
        sub.client.sending_since = trio.current_time()
        with trio.CancelScope() as sub.client.sending:
            await trio.sleep_forever()
        hub.unsubscribe(sub.client)
        ended_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        nursery.start_soon(stuck_client)
        await trio.sleep(200)
        await hub.shutdown()
    # Stuck since 5 s: the sweeps at 30, 60, 90, 120 find it younger than 120 s; 150 drops it.
    assert ended_at == [pytest.approx(150.0)]
    assert hub.total_clients == 0


@both_waits
async def test_shutdown_sends_shutdown_and_ends_the_stuck(
    autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch, pollable: bool
) -> None:
    hub = Hub(limits())
    agent = FakeAgent()
    hub.on_status(agent, None, Status.RUNNING)  # type: ignore[arg-type]
    polite, stuck = Recorder(), Recorder()
    if pollable:  # hypercorn: the socket is shut; otherwise the send is cancelled
        abort_ends(monkeypatch, stuck)
    async with trio.open_nursery() as nursery:
        await start_stream(nursery, hub, agent, polite, pollable=pollable)
        await start_stream(nursery, hub, None, stuck, pollable=pollable)
        stuck.blocked = True
        started = trio.current_time()
        await hub.shutdown()
        assert trio.current_time() - started <= hub.limits.shutdown_grace + 0.01
    assert [kind for _, kind, _, _ in polite.events()][-1] == "shutdown"
    assert polite.sent[-1][1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert hub.total_clients == 0
    assert hub.slow_disconnects_total == 0  # ended by the shutdown, not slow
    with pytest.raises(Exception, match="shutting down"):
        hub.subscribe(None, None, 0)


async def test_stream_ends_after_complete_and_sees_everything_in_order() -> None:
    hub = Hub(limits())
    agent = FakeAgent()
    send = Recorder()
    async with trio.open_nursery() as nursery:
        await start_stream(nursery, hub, agent, send)
        hub.on_status(agent, None, Status.RUNNING)  # type: ignore[arg-type]
        for i in range(5):
            publish_line(hub, agent, f"l{i}", i + 1)
        agent.status, agent.exit_code = Status.COMPLETED, 0
        hub.on_status(agent, Status.RUNNING, Status.COMPLETED)  # type: ignore[arg-type]
    events = send.events()
    assert [kind for _, kind, _, _ in events] == ["connected", "state"] + ["log"] * 5 + [
        "state",
        "complete",
    ]
    assert [int(i) for _, _, _, i in events if i] == list(range(1, 9))
    assert events[-1][2]["data"] == {"status": "completed", "exit_code": 0, "duration_seconds": 1.5}
    assert send.sent[-1][1]["more_body"] is False


async def test_finished_agent_replays_then_completes() -> None:
    hub = Hub(limits())
    agent = FakeAgent()
    hub.on_status(agent, None, Status.RUNNING)  # type: ignore[arg-type]
    publish_line(hub, agent, "only", 1)
    agent.status, agent.exit_code, agent.is_live = Status.FAILED, 2, False
    hub.on_status(agent, Status.RUNNING, Status.FAILED)  # type: ignore[arg-type]
    send = Recorder()
    async with trio.open_nursery() as nursery:
        await start_stream(nursery, hub, agent, send, history=2)
    kinds = [(kind, i) for _, kind, _, i in send.events()]
    assert kinds == [("connected", None), ("state", "3"), ("complete", "4")]
    # A past run the hub never saw: an unnumbered complete from the record.
    past = FakeAgent(name="old", is_live=False, status=Status.STOPPED)
    send = Recorder()
    async with trio.open_nursery() as nursery:
        await start_stream(nursery, hub, past, send, history=5)
    assert [(kind, i) for _, kind, _, i in send.events()] == [
        ("connected", None),
        ("complete", None),
    ]
    assert hub.total_clients == 0


def test_hub_limits_come_from_the_sse_section() -> None:
    from trio_wrapper.api.app import hub_limits
    from trio_wrapper.config import Config, SseConfig

    sse = SseConfig(
        client_buffer=7,
        ping_interval_seconds=3.0,
        stall_timeout_seconds=9.0,
        sweep_interval_seconds=4.0,
        retained_events_per_agent=11,
        retained_events_global=22,
        max_clients=33,
        max_clients_per_agent=5,
    )
    limits = HubLimits.from_config(sse)
    assert limits == hub_limits(Config(sse=sse))  # what api.app builds by hand today
    assert (limits.client_buffer, limits.ping_interval, limits.max_clients_per_agent) == (7, 3, 5)
    assert limits.poll_interval == HubLimits().poll_interval  # not configurable: the default
    assert HubLimits.from_config(SseConfig()) == HubLimits()


async def test_shutdown_returns_as_soon_as_the_last_stream_has_left(
    autojump_clock: trio.abc.Clock,
) -> None:
    hub = Hub(limits())
    agent = FakeAgent()
    sends = [Recorder(), Recorder()]
    async with trio.open_nursery() as nursery:
        await start_stream(nursery, hub, agent, sends[0])
        await start_stream(nursery, hub, None, sends[1])
        started = trio.current_time()
        await hub.shutdown()
        assert trio.current_time() == started  # woken by the last unsubscribe: no polling
    assert hub.total_clients == 0
    assert [[kind for _, kind, _, _ in s.events()][-1] for s in sends] == ["shutdown"] * 2


async def test_shutdown_without_clients_completes_even_when_cancelled() -> None:
    hub = Hub(limits())
    with trio.CancelScope() as scope:
        scope.cancel()
        await hub.shutdown()  # no checkpoint: the daemon's last cleanup can still run it
    assert hub.closing and hub._closed.is_set()


async def test_the_pacemaker_moves_a_client_it_reads_a_disconnect_for() -> None:
    from trio_wrapper.runtime.hub import Client
    from trio_wrapper.streaming.client import ClientState

    hub_client = Client(1, "a1", 3)
    connection = Connection()
    hub_client.inbox = connection.channel
    hub_client.pace(0.0)  # the request's body: let pass
    assert hub_client.state is ClientState.STREAMING
    connection.disconnect()
    hub_client.pace(0.0)
    assert hub_client.state is ClientState.GONE
    closed = Client(2, "a1", 3)
    closed.inbox = Connection().channel
    closed.inbox.close()
    closed.pace(0.0)
    assert closed.state is ClientState.GONE
    dropped = Client(3, "a1", 3)
    dropped.inbox = Connection().channel
    dropped.drop()
    dropped.inbox.close()
    dropped.pace(0.0)
    assert dropped.state is ClientState.DROPPED  # the first reason to end holds


async def test_wake_and_drop_end_the_waits_they_own() -> None:
    from trio_wrapper.runtime.hub import Client

    client = Client(1, "a1", 3)
    ended: list[str] = []

    async def wait_in(kind: str) -> None:
        with trio.CancelScope() as scope:
            setattr(client, kind, scope)
            await trio.sleep_forever()
        ended.append(kind)

    async def parked() -> None:
        await client.park()
        ended.append("parked")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(parked)
        await trio.testing.wait_all_tasks_blocked()
        client.wake()
        await trio.testing.wait_all_tasks_blocked()
        assert ended == ["parked"] and client.task is None
        client.wake()  # nothing to wake: a no-op
        nursery.start_soon(wait_in, "receiving")
        await trio.testing.wait_all_tasks_blocked()
        client.wake()
        await trio.testing.wait_all_tasks_blocked()
        assert ended == ["parked", "receiving"] and client.receiving is None
        nursery.start_soon(wait_in, "sending")
        await trio.testing.wait_all_tasks_blocked()
        client.wake()  # a send is not a wait: only a drop ends it
        await trio.testing.wait_all_tasks_blocked()
        assert ended == ["parked", "receiving"]
        client.drop()
        await trio.testing.wait_all_tasks_blocked()
        assert ended == ["parked", "receiving", "sending"]


def test_abort_connection_finds_the_tcp_socket_by_peer() -> None:
    import socket

    from trio_wrapper.runtime.connections import abort_connection

    left, right = socket.socketpair()  # AF_UNIX: skipped, not a match
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()) as client:
            server_side, peer = listener.accept()
            with server_side:
                assert abort_connection(("127.0.0.1", 1)) is False
                assert abort_connection(peer) is True
                client.settimeout(2)
                assert client.recv(10) == b""  # the server side was shut down
    left.close()
    right.close()
    assert abort_connection(None) is False


class FakeWire:
    """A connection the hub's flush can write to itself (``DirectWriter``), standing in
    for ``api.direct_body.DirectBody``: ``takes`` caps what one ``write_now`` takes,
    ``closed`` fails every write, ``busy`` is a write of hypercorn's under way."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.takes: int | None = None
        self.closed = False
        self.busy = False
        self.drain = 0.001  # how long a write by the stream takes
        self.now_writes = 0  # by the flush
        self.stream_writes = 0  # by the stream's task

    frame = staticmethod(direct_body.frame)

    def ready(self) -> bool:
        return not self.busy

    def write_now(self, framed: bytes) -> int:
        if self.closed:
            return -1
        taken = len(framed) if self.takes is None else min(self.takes, len(framed))
        self.data += framed[:taken]
        self.now_writes += 1
        return taken

    async def send_rest(self, rest: bytes | memoryview) -> bool:
        await trio.sleep(self.drain)
        if self.closed:
            return False
        self.data += rest
        self.stream_writes += 1
        return True

    async def send(self, data: bytes) -> bool:
        return await self.send_rest(direct_body.frame(data))

    def events(self) -> list[tuple[str, str | None]]:
        """(event, id) of every event in the chunked body written so far."""
        body, rest = b"", bytes(self.data)
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            assert rest[n : n + 2] == b"\r\n", "a chunk's framing"
            body, rest = body + rest[:n], rest[n + 2 :]
        out = []
        for block in body.decode().split("\n\n"):
            if block.strip():
                fields = dict(line.split(": ", 1) for line in block.splitlines())
                out.append((fields["event"], fields.get("id")))
        return out


@pytest.fixture
def wires(monkeypatch: pytest.MonkeyPatch) -> list[FakeWire]:
    """Every stream started gets a ``FakeWire`` as its direct writer, in this list."""
    made: list[FakeWire] = []

    def find(send: object) -> FakeWire:
        made.append(FakeWire())
        return made[-1]

    monkeypatch.setattr("trio_wrapper.api.sse_stream.direct_body.find", find)
    return made


async def test_the_flush_writes_small_news_itself_and_leaves_the_streams_parked(
    autojump_clock: trio.abc.Clock, wires: list[FakeWire]
) -> None:
    hub = Hub(limits(coalesce=0.5, coalesce_per_client=0.01))
    agent = FakeAgent()
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        for _ in range(3):
            await start_stream(nursery, hub, agent, Recorder())
        parked = [client.task for client in hub.clients]
        for i in range(4):
            publish_line(hub, agent, f"line {i}", i + 1)
            await trio.sleep(0.005)
        await trio.sleep(0.1)
        assert [client.task for client in hub.clients] == parked  # never woken
        nursery.cancel_scope.cancel()
    for wire in wires:
        # The first line at once, the next three at the flush delay's end, in one write.
        assert (wire.now_writes, wire.stream_writes) == (2, 0)
        assert wire.events() == [("log", str(i)) for i in range(1, 5)]


async def test_what_the_socket_did_not_take_goes_from_the_stream_first(
    autojump_clock: trio.abc.Clock, wires: list[FakeWire]
) -> None:
    hub = Hub(limits(coalesce=0.5, coalesce_per_client=0.01))
    agent = FakeAgent()
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        await start_stream(nursery, hub, agent, Recorder())
        wires[0].takes = 7  # a few bytes of the chunk, then the socket is full
        wires[0].drain = 0.05  # and it drains slowly
        publish_line(hub, agent, "first", 1)
        await trio.testing.wait_all_tasks_blocked()
        wires[0].takes = None
        publish_line(hub, agent, "second", 2)  # arrives while the rest is being sent
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    wire = wires[0]
    assert wire.now_writes == 1  # the second line found the stream busy: it sent it
    assert wire.stream_writes == 2
    assert wire.events() == [("log", "1"), ("log", "2")]


async def test_a_closed_connection_ends_the_stream(
    autojump_clock: trio.abc.Clock, wires: list[FakeWire]
) -> None:
    hub = Hub(limits())
    agent = FakeAgent()
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        await start_stream(nursery, hub, agent, Recorder())
        wires[0].closed = True
        publish_line(hub, agent, "lost", 1)
        await trio.sleep(0.1)
        assert hub.total_clients == 0  # the stream saw it and left
        nursery.cancel_scope.cancel()
    assert hub.slow_disconnects_total == 0  # gone, not stalled


async def test_the_streams_send_what_the_flush_leaves_them(
    autojump_clock: trio.abc.Clock, wires: list[FakeWire]
) -> None:
    """A busy connection, news too big for one write, a gap, the agent's end: the
    stream's own send, in order."""
    hub = Hub(limits(client_buffer=2))
    agent = FakeAgent()
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        await start_stream(nursery, hub, agent, Recorder())
        wire = wires[0]
        wire.busy = True
        publish_line(hub, agent, "while hypercorn writes", 1)
        await trio.sleep(0.1)
        assert (wire.now_writes, wire.stream_writes) == (0, 1)
        wire.busy = False
        hub.on_lines(agent, "stdout", 2, LineBatch([b"x" * 70_000]))  # type: ignore[arg-type]
        await trio.sleep(0.1)
        assert (wire.now_writes, wire.stream_writes) == (0, 2)
        for client in hub.clients:
            client.task, task = None, client.task  # as if mid-send: the flush waits
            for n in range(3, 6):
                publish_line(hub, agent, f"l{n}", n)  # a limit of 2: one is lost
            client.task = task
        client.wake()
        await trio.sleep(0.1)
        assert (wire.now_writes, wire.stream_writes) == (0, 3)
        publish_line(hub, agent, "l6", 6)
        await trio.sleep(0.1)
        assert wire.now_writes == 1
        agent.status, agent.exit_code = Status.COMPLETED, 0
        hub.on_status(agent, Status.RUNNING, Status.COMPLETED)  # type: ignore[arg-type]
        await trio.sleep(0.1)
        assert hub.total_clients == 0
        nursery.cancel_scope.cancel()
    assert wire.now_writes == 1
    assert [kind for kind, _ in wire.events()] == [
        *["log"] * 2,
        "gap",
        *["log"] * 3,
        "state",
        "complete",
    ]
