"""SSE bodies written straight to hypercorn's connection (``api.direct_body``): the chain
is found on the installed hypercorn, the framing is h11's, and every case it cannot serve
(HTTP/1.0, HEAD, another server, a closed connection) goes through ASGI as before."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h11
import httpx
import pytest
import trio
import trio.testing
from httpx_sse import aconnect_sse

from tests.helpers import wait_for
from tests.live import ECHO, live_server, run_echo
from trio_wrapper.api import direct_body
from trio_wrapper.runtime import hub
from trio_wrapper.runtime.agent import AgentSpec


@pytest.fixture
def direct_sends(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every piece ``DirectBody`` wrote: by the stream (``send``, the data)
    or by the hub's flush (``write_now``, the framed chunk, negative here)."""
    sizes: list[int] = []
    original = direct_body.DirectBody.send
    original_now = direct_body.DirectBody.write_now

    async def counted(self: direct_body.DirectBody, data: bytes) -> bool:
        written = await original(self, data)
        if written:
            sizes.append(len(data))
        return written

    def counted_now(self: direct_body.DirectBody, framed: bytes) -> int:
        written = original_now(self, framed)
        if written > 0:
            sizes.append(-written)
        return written

    monkeypatch.setattr(direct_body.DirectBody, "send", counted)
    monkeypatch.setattr(direct_body.DirectBody, "write_now", counted_now)
    return sizes


async def test_a_live_stream_is_written_directly_and_parses(
    tmp_path: Path, direct_sends: list[int]
) -> None:
    """If hypercorn's private chain changed, this fails (no direct send) instead of the
    daemon quietly losing the speed."""
    async with live_server(tmp_path) as live, httpx.AsyncClient(base_url=live.url) as http:
        agent = await live.supervisor.start(AgentSpec("d1", ECHO, stdin=True))
        lines: list[str] = []
        kinds: list[str] = []

        async def listen(task_status: trio.TaskStatus[None]) -> None:
            async with aconnect_sse(http, "GET", "/api/agents/d1/stream") as source:
                task_status.started()
                async for sse in source.aiter_sse():
                    kinds.append(sse.event)
                    if sse.event == "log":
                        lines.append(json.loads(sse.data)["data"]["line"])

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                await nursery.start(listen)
                await wait_for(lambda: "connected" in kinds)
                for i in range(50):  # one at a time: many separate flushes
                    await agent.write_input(f"line {i}\n".encode(), eof=False, write_timeout=5)
                    await wait_for(lambda i=i: len(lines) > i)  # type: ignore[misc]
                await agent.write_input(b"", eof=True, write_timeout=5)
    assert lines == [f"line {i}" for i in range(50)]
    assert kinds[-1] == "complete"  # the body's end, through h11 after direct chunks
    assert len(direct_sends) >= 50
    # Lone lines are written by the hub's flush itself, the stream's task left parked.
    assert sum(size < 0 for size in direct_sends) >= 40


async def raw_exchange(port: int, request: bytes) -> bytes:
    """Everything the server sends on one connection until it closes it."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    data = b""
    async with stream:
        await stream.send_all(request)
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                data += chunk
    return data


async def test_http_10_and_head_go_through_asgi(tmp_path: Path, direct_sends: list[int]) -> None:
    async with live_server(tmp_path) as live:
        await run_echo(live, "old", 3)
        target = b"/api/agents/old/stream?history=10"
        old = await raw_exchange(
            live.port, b"GET " + target + b" HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
        )
        head, _, body = old.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert b"transfer-encoding" not in head.lower()  # no framing: body as it is
        assert body.startswith(b"event: connected\n")
        assert body.count(b"event: log\n") == 3
        headed = await raw_exchange(
            live.port,
            b"HEAD " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        assert headed.startswith(b"HTTP/1.1 200")
        assert headed.endswith(b"\r\n\r\n")  # the head only
    assert direct_sends == []


def test_a_send_that_is_not_hypercorns_has_no_direct_writer() -> None:
    async def send(message: Any) -> None:
        pass

    class Elsewhere:
        async def app_send(self, message: Any) -> None:
            pass

    assert direct_body.find(send) is None
    assert direct_body.find(Elsewhere().app_send) is None
    assert direct_body.find(None) is None


def sending_body() -> tuple[h11.Connection, h11.Connection]:
    """A server connection in SEND_BODY with chunked framing, and its client."""
    server, client = h11.Connection(h11.SERVER), h11.Connection(h11.CLIENT)
    server.receive_data(client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")])))
    server.receive_data(client.send(h11.EndOfMessage()))
    while server.next_event() is not h11.PAUSED and server.their_state is not h11.DONE:
        pass
    head = server.send(h11.Response(status_code=200, headers=[("Transfer-Encoding", "chunked")]))
    assert head is not None
    client.receive_data(head)
    assert isinstance(client.next_event(), h11.Response)
    return server, client


@contextmanager
def connected(
    server: h11.Connection, sndbuf: int | None = None
) -> Iterator[tuple[direct_body.DirectBody, trio.SocketStream, trio.SocketStream, trio.Lock]]:
    """A writer on one end of a real socket pair; the other end; the send lock."""
    a, b = trio.socket.socketpair()
    if sndbuf is not None:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    ours, theirs = trio.SocketStream(a), trio.SocketStream(b)
    lock = trio.Lock()
    with a, b:
        yield direct_body.DirectBody(ours, lock, server, a._sock), ours, theirs, lock  # type: ignore[attr-defined]


async def read_until(stream: trio.SocketStream, end: bytes) -> bytes:
    received = b""
    with trio.fail_after(10):
        while not received.endswith(end):
            received += await stream.receive_some()
    return received


def decoded(client: h11.Connection, received: bytes) -> bytes:
    """The body h11 reads from ``received``, which must end the message."""
    client.receive_data(received)
    got = b""
    while isinstance(event := client.next_event(), h11.Data):
        got += event.data
    assert isinstance(event, h11.EndOfMessage)
    return got


async def test_pieces_are_framed_as_h11_frames_them() -> None:
    server, client = sending_body()
    pieces = [b"event: log\ndata: {}\n\n", b"x" * 70_000, b"\r\n0\r\n"]
    with connected(server) as (writer, ours, theirs, _):
        for piece in pieces:
            assert await writer.send(piece)
        ending = server.send(h11.EndOfMessage())
        assert ending is not None
        await ours.send_all(ending)
        received = await read_until(theirs, b"0\r\n\r\n")
    assert received.startswith(b"15\r\nevent: log")
    assert decoded(client, received) == b"".join(pieces)


async def test_what_the_socket_does_not_take_goes_on_under_the_lock() -> None:
    """A piece far larger than the socket's buffer: the rest is written once the reader
    takes the first part, whole and in order."""
    server, client = sending_body()
    piece = bytes(range(256)) * 8_000  # 2 MB
    with connected(server, sndbuf=4096) as (writer, ours, theirs, _):
        received: list[bytes] = []

        async def read() -> None:
            received.append(await read_until(theirs, b"0\r\n\r\n"))

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)
                assert await writer.send(piece)
                assert await writer.send(b"tail")
                ending = server.send(h11.EndOfMessage())
                assert ending is not None
                await ours.send_all(ending)
    assert decoded(client, received[0]) == piece + b"tail"


async def test_a_closed_connection_or_a_finished_body_is_not_written() -> None:
    server, _ = sending_body()
    with connected(server) as (writer, _ours, theirs, _):
        await theirs.aclose()
        assert not await writer.send(b"data: late\n\n")  # EPIPE: not written
    assert not await writer.send(b"data: closed\n\n")  # EBADF, not another descriptor
    finished, _ = sending_body()
    finished.send(h11.EndOfMessage())
    with connected(finished) as (writer, *_):
        assert not await writer.send(b"data: after the end\n\n")


async def test_a_direct_write_waits_for_hypercorns_own_write(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Under the connection's send lock: never interleaved with a write of hypercorn's."""
    server, _ = sending_body()
    with connected(server) as (writer, ours, theirs, lock):
        done: list[bool] = []
        async with trio.open_nursery() as nursery:
            await lock.acquire()
            nursery.start_soon(_record, writer.send, b"later", done)
            await trio.sleep(1)
            assert done == []  # still waiting for the lock
            await ours.send_all(b"first")
            lock.release()
        assert done == [True]
        assert await read_until(theirs, b"later\r\n") == b"first5\r\nlater\r\n"


async def _record(send: Callable[[bytes], Awaitable[bool]], data: bytes, done: list[bool]) -> None:
    done.append(await send(data))


async def test_a_client_that_falls_behind_gets_every_chunk_whole_and_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub's flush writes small news itself, and what a full socket does not take goes
    from the stream's task: with a client that stops reading for a while (a small receive
    buffer), the body must still be chunked correctly, every event once, in order."""
    partial: list[tuple[int, int]] = []
    original_now = direct_body.DirectBody.write_now

    def recorded(self: direct_body.DirectBody, framed: bytes) -> int:
        written = original_now(self, framed)
        if written != len(framed):
            partial.append((written, len(framed)))
        return written

    monkeypatch.setattr(direct_body.DirectBody, "write_now", recorded)
    # News bigger than SEND_NOW_BYTES is sent by the stream's task, not the flush. On a
    # loaded machine a late flush finds more than 64 KiB waiting, and the socket would
    # then fill in that send instead, missing the path under test; so the flush takes
    # everything here, whatever its size, until the socket is full.
    monkeypatch.setattr(hub, "SEND_NOW_BYTES", 1 << 30)
    lines = 3000
    # The child prints once the stream is open: lines printed before would be replayed by
    # the stream's task, which could fill the socket itself, and the flush's own writes
    # (the path under test) would then never meet a full socket.
    go = tmp_path / "go"
    printer = [
        sys.executable,
        "-c",
        "import os, sys, time\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.005)\n"
        f"for i in range({lines}):\n"
        "    print(f'{i:05d} ' + 'x' * 300, flush=True)\n"
        "    if i % 10 == 0: time.sleep(0.001)\n",
    ]
    async with live_server(tmp_path) as live:
        await live.supervisor.start(AgentSpec("slow", printer))
        sock = trio.socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await sock.connect(("127.0.0.1", live.port))
        stream = trio.SocketStream(sock)
        async with stream:
            await stream.send_all(
                b"GET /api/agents/slow/stream?history=10000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            )
            with trio.fail_after(10):
                received = await stream.receive_some(65536)  # the head: the stream is open
            go.touch()
            await trio.sleep(1.5)  # not reading: the daemon's socket fills
            with trio.fail_after(30):
                while not received.endswith(b"0\r\n\r\n"):
                    received += await stream.receive_some(65536)
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(received)
    assert isinstance(client.next_event(), h11.Response)
    body = b""
    while isinstance(event := client.next_event(), h11.Data):
        body += event.data
    assert isinstance(event, h11.EndOfMessage)  # every chunk framed right, to the end
    events = [block for block in body.split(b"\n\n") if block.strip()]
    logs = [
        json.loads(e.split(b"data: ", 1)[1])["data"]["line"] for e in events if b"event: log" in e
    ]
    assert [int(line[:5]) for line in logs] == list(range(lines))
    assert b"event: gap" not in body
    assert b"event: complete" in events[-1]
    assert partial, "the socket never filled: the test did not test the rest's path"
