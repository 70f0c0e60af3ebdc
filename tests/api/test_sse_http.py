"""SSE over a real port: order, ids, resume, gaps, slow clients, disconnects."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from httpx_sse import aconnect_sse

from tests.helpers import PY, TRANSCRIPTS, wait_for
from tests.live import ECHO, live_server, run_echo
from trio_wrapper.runtime.agent import AgentSpec


async def collect(client: httpx.AsyncClient, path: str, **kw: Any) -> list[tuple[str, str, Any]]:
    """(event, id, data) until the server ends the stream."""
    out = []
    async with aconnect_sse(client, "GET", path, **kw) as source:
        async for sse in source.aiter_sse():
            out.append((sse.event, sse.id, json.loads(sse.data)))
    return out


async def test_order_ids_and_complete(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live, httpx.AsyncClient(base_url=live.url) as http:
        agent = await live.supervisor.start(AgentSpec("e1", ECHO, stdin=True))
        received: list[tuple[str, str, Any]] = []

        async def listen(task_status: trio.TaskStatus[None]) -> None:
            async with aconnect_sse(http, "GET", "/api/agents/e1/stream?history=10") as source:
                task_status.started()
                async for sse in source.aiter_sse():
                    received.append((sse.event, sse.id, json.loads(sse.data)))

        async with trio.open_nursery() as nursery:
            await nursery.start(listen)
            await wait_for(lambda: len(received) >= 1)
            payload = "".join(f"line {i}\n" for i in range(200)).encode()
            await agent.write_input(payload, eof=True, write_timeout=5)
        kinds = [k for k, _, _ in received]
        assert kinds[0] == "connected"
        assert received[0][2]["data"]["agent"] == "e1"
        assert kinds[1] == "state" and received[1][2]["data"]["state"] == "running"
        logs = [d["data"] for k, _, d in received if k == "log"]
        assert [entry["line"] for entry in logs] == [f"line {i}" for i in range(200)]
        assert [entry["line_num"] for entry in logs] == list(range(1, 201))
        ids = [int(i) for k, i, _ in received if k not in ("connected", "ping", "gap")]
        assert ids == list(range(1, len(ids) + 1))
        assert kinds[-1] == "complete"
        assert received[-1][2]["data"]["status"] == "completed"
        assert received[-1][2]["agent_name"] == "e1"


async def test_resume_history_and_finished_stream(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live, httpx.AsyncClient(base_url=live.url) as http:
        await run_echo(live, "r1", 30)
        # ids: 1 running, 2..31 log lines, 32 completed, 33 complete
        resumed = await collect(http, "/api/agents/r1/stream", headers={"Last-Event-ID": "20"})
        assert [i for _, i, _ in resumed if i] == [str(n) for n in range(21, 34)]
        assert resumed[-1][0] == "complete"
        via_query = await collect(http, "/api/agents/r1/stream?last_event_id=31")
        assert [(k, i) for k, i, _ in via_query] == [
            ("connected", ""),
            ("state", "32"),
            ("complete", "33"),
        ]
        history = await collect(http, "/api/agents/r1/stream?history=4")
        assert [i for _, i, _ in history if i] == ["30", "31", "32", "33"]
        plain = await collect(http, "/api/agents/r1/stream")
        assert [k for k, _, _ in plain] == ["connected", "complete"]
        done = await http.get("/api/agents/r1/stream", headers={"Last-Event-ID": "33"})
        assert done.status_code == 204  # EventSource stops reconnecting


async def test_gap_when_the_ring_no_longer_holds_the_events(tmp_path: Path) -> None:
    async with live_server(tmp_path, sse={"retained_events_per_agent": 10}) as live:
        async with httpx.AsyncClient(base_url=live.url) as http:
            await run_echo(live, "g1", 50)  # ids 1..53, ring keeps 44..53
            events = await collect(http, "/api/agents/g1/stream", headers={"Last-Event-ID": "5"})
        assert events[1][0] == "gap"
        assert events[1][2]["data"] == {"missed": 38, "first_id": 6, "last_id": 43}
        assert [i for _, i, _ in events if i] == [str(n) for n in range(44, 54)]


async def test_errors_are_json(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live, httpx.AsyncClient(base_url=live.url) as http:
        missing = await http.get("/api/agents/ghost/stream")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "agent_not_found"
        await run_echo(live, "x", 1)
        for query in ("history=-1", "history=abc", "history=999999", "last_event_id=abc"):
            bad = await http.get(f"/api/agents/x/stream?{query}")
            assert bad.status_code == 400, query
            assert bad.json()["error"]["code"] == "invalid_request"
        headers = (await http.get("/api/agents/x/stream")).headers
        assert headers["content-type"].startswith("text/event-stream")
        assert headers["cache-control"] == "no-cache"
        assert headers["x-accel-buffering"] == "no"


def task_count() -> int:
    def count(task: trio.lowlevel.Task) -> int:
        return 1 + sum(count(t) for n in task.child_nurseries for t in n.child_tasks)

    return count(trio.lowlevel.current_root_task())


async def settled(limit: float = 5.0) -> None:
    """Until every task is blocked (the server has finished what it was doing): no
    runnable task and no I/O for 50 ms, within ``limit``. A condition, not a guess at how
    long hypercorn takes; the hub's timers (every 0.5 s and more) leave room for it."""
    with trio.fail_after(limit):
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)


async def test_connect_disconnect_cycles_leave_nothing_behind(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        await live.supervisor.start(AgentSpec("idle", ["sleep", "60"]))
        # Warm up httpx's pool and hypercorn's per-connection tasks once.
        async with (
            httpx.AsyncClient(base_url=live.url) as http,
            aconnect_sse(http, "GET", "/api/agents/idle/stream") as source,
        ):
            async for _ in source.aiter_sse():
                break
        await wait_for(lambda: live.hub.total_clients == 0, 1)  # noticed within a second

        async def look_often() -> None:
            # The hub's pacemaker reads the connections every half second; a hundred
            # cycles go faster with a look every 10 ms as well.
            while True:
                await live.hub.pace()
                await trio.sleep(0.01)

        # Counted without ``look_often``, which is cancelled before the count after.
        await settled()
        before = task_count()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(look_often)
            for _ in range(100):
                async with (
                    httpx.AsyncClient(base_url=live.url) as http,
                    aconnect_sse(http, "GET", "/api/agents/idle/stream") as source,
                ):
                    async for sse in source.aiter_sse():
                        assert sse.event == "connected"
                        break
                await wait_for(lambda: live.hub.total_clients == 0, 1)
            nursery.cancel_scope.cancel()
        await settled()
        assert live.hub.total_clients == 0
        assert live.hub.stats().agents == {}
        assert task_count() <= before


# Waits for a stdin line (when given one), then writes in bursts of 50 lines with a pause
# between: many reads, so many deliveries.
BURSTS = [
    PY,
    "-c",
    "import sys, time\n"
    "if len(sys.argv) > 2: sys.stdin.readline()\n"
    "for i in range(int(sys.argv[1])):\n"
    "    print(f'event number {i} with some padding', flush=(i % 50 == 49))\n"
    "    if i % 50 == 49: time.sleep(0.002)\n",
]


def paused_socket(port: int, path: str) -> socket.socket:
    """A client with a tiny receive buffer that reads nothing until told to."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


@pytest.mark.parametrize(
    "bound",
    [
        # The buffer (in events) holds a third of the burst: a client that reads nothing loses.
        {"client_buffer": 10_000},
        # All buffers together hold 2 MiB (the burst weighs ~7.5 MB once framed): the same.
        # The reader shares that bound, and a shed takes the oldest runs, its own too
        # once the paused client's are gone: the room left must outlast the reader's
        # lag on a loaded machine (256 KiB did not, in a full suite beside 3 busy loops).
        {"client_buffers_total_bytes": 2 * 1024 * 1024},
    ],
    ids=["events", "total-bytes"],
)
async def test_a_paused_client_gets_a_gap_while_another_gets_everything(
    tmp_path: Path, bound: dict[str, int]
) -> None:
    lines = 30_000
    async with live_server(tmp_path, sse=bound) as live:
        agent = await live.supervisor.start(
            AgentSpec("fire", [*BURSTS, str(lines), "gated"], stdin=True)
        )
        paused = paused_socket(live.port, "/api/agents/fire/stream")
        try:
            received: list[tuple[str, str, Any]] = []
            async with (
                httpx.AsyncClient(base_url=live.url, timeout=30) as http,
                trio.open_nursery() as nursery,
            ):
                await wait_for(lambda: live.hub.total_clients == 1)

                async def reader(task_status: trio.TaskStatus[None]) -> None:
                    async with aconnect_sse(http, "GET", "/api/agents/fire/stream") as src:
                        task_status.started()
                        async for sse in src.aiter_sse():
                            received.append((sse.event, sse.id, sse.data))

                await nursery.start(reader)
                await wait_for(lambda: live.hub.total_clients == 2)
                await agent.write_input(b"go\n", eof=True, write_timeout=5)
            kinds = [k for k, _, _ in received]
            assert "gap" not in kinds
            ids = [int(i) for k, i, _ in received if k not in ("connected", "ping", "gap")]
            assert ids == list(range(ids[0], ids[0] + len(ids)))
            assert kinds[-1] == "complete"
            assert live.hub.dropped_events_total > 0
            # Now the paused client reads: it was told what it lost.
            paused.settimeout(5)
            data = b""
            while b"event: complete" not in data:
                chunk = await trio.to_thread.run_sync(paused.recv, 65536)
                if not chunk:
                    break
                data += chunk
        finally:
            paused.close()
        assert b"event: gap" in data
        gap_line = data.split(b"event: gap\ndata: ", 1)[1].split(b"\n", 1)[0]
        assert json.loads(gap_line)["data"]["missed"] > 0


async def test_a_client_far_behind_catches_up_in_slices_and_ends(tmp_path: Path) -> None:
    # 120,000 lines of ~40 bytes: ~11 MB held for a client that reads nothing, sent a slice
    # (4 MiB) at a time once it reads; the stream ends only after the last slice.
    lines = 120_000
    async with live_server(tmp_path) as live:
        spec = AgentSpec("far", [*BURSTS, str(lines), "gated"], stdin=True)
        agent = await live.supervisor.start(spec)
        paused = paused_socket(live.port, "/api/agents/far/stream")
        try:
            await wait_for(lambda: live.hub.total_clients == 1)
            await agent.write_input(b"go\n", eof=True, write_timeout=5)
            await wait_for(lambda: not agent.is_live, 30)
            assert live.hub.backlog.bytes > 8 * 1024 * 1024
            paused.settimeout(10)
            data = bytearray()
            while not data.endswith(b"\r\n0\r\n\r\n"):  # the chunked body's end
                chunk = await trio.to_thread.run_sync(paused.recv, 1 << 20)
                assert chunk, "the connection closed before the stream ended"
                data += chunk
        finally:
            paused.close()
        assert b"event: gap" not in data
        assert data.count(b"event: log") == lines
        assert b"event: complete" in data[-4096:]
        assert live.hub.dropped_events_total == 0
        await wait_for(lambda: live.hub.total_clients == 0)
        assert (live.hub.backlog.bytes, live.hub.backlog.runs) == (0, 0)


async def test_shutdown_with_a_paused_client_still_ends(tmp_path: Path) -> None:
    with trio.fail_after(15):
        async with live_server(tmp_path, sse={"client_buffer": 5_000}) as live:
            await live.supervisor.start(AgentSpec("talk", [*BURSTS, "20000"]))
            paused = paused_socket(live.port, "/api/agents/talk/stream")
            await wait_for(lambda: live.hub.total_clients == 1)
            await wait_for(lambda: live.hub.dropped_events_total > 0)
        # live_server's exit ran hub.shutdown + hypercorn's graceful stop + agent stop.
        paused.close()


async def test_extraction_events_follow_their_lines(tmp_path: Path) -> None:
    transcript = TRANSCRIPTS / "codex" / "vincent_success.jsonl"
    async with live_server(tmp_path) as live, httpx.AsyncClient(base_url=live.url) as http:
        agent = await live.supervisor.start(AgentSpec("x1", ["cat", str(transcript)]))
        await wait_for(lambda: not agent.is_live)
        events = await collect(http, "/api/agents/x1/stream?history=100")
        kinds = [k for k, _, _ in events]
        extractions = [d["data"] for k, _, d in events if k == "extraction"]
        assert extractions[0] == {
            "type": "session",
            "line_num": 1,
            "key": "session_id",
            "value": "019fe041-fb59-77a0-bce2-6d07f49e917c",
        }
        assert {"type": "response", "line_num": 3, "text": "hello"} in extractions
        # Each extraction comes after the log line it was found on.
        first_log = kinds.index("log")
        assert kinds.index("extraction") > first_log
        assert kinds[-1] == "complete"


async def test_metrics_count_the_connected_clients(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live, httpx.AsyncClient(base_url=live.url) as http:
        await live.supervisor.start(AgentSpec("watched", ["sleep", "30"]))
        async with aconnect_sse(http, "GET", "/api/agents/watched/stream") as source:
            events = source.aiter_sse()  # held: a dropped generator would close the stream
            assert (await anext(events)).event == "connected"
            sse_json = (await http.get("/api/metrics")).json()["sse"]
            assert sse_json == {"total_agents": 1, "total_clients": 1, "agents": {"watched": 1}}
            text = (await http.get("/metrics")).text
            assert 'trio_wrapper_sse_clients{agent="watched"} 1' in text
            stats = (await http.get("/api/sse/stats")).json()
            assert stats["agents"] == {"watched": 1} and stats["total_clients"] == 1
            await events.aclose()
        await wait_for(lambda: live.hub.total_clients == 0, 1)
        assert (await http.get("/api/metrics")).json()["sse"]["total_clients"] == 0


def raw_get(port: int, target: str, headers: str = "", host: str = "127.0.0.1") -> socket.socket:
    """A GET sent on a plain socket; the caller reads what comes back."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode())
    return sock


def read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and whatever body came with them."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "closed before the response head"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}
    while len(rest) < int(fields.get("content-length", 0)):
        rest += sock.recv(65536)
    return int(status_line.split()[1]), fields, rest


async def test_a_stream_costs_its_connection_two_tasks(tmp_path: Path) -> None:
    """The stream runs in hypercorn's own task for the request (no request nursery, no
    message task): per idle stream, hypercorn's connection task and that one."""
    async with live_server(tmp_path) as live:
        await live.supervisor.start(AgentSpec("idle", ["sleep", "60"]))
        await settled()
        before = task_count()
        socks = [raw_get(live.port, "/api/agents/idle/stream") for _ in range(10)]
        socks += [raw_get(live.port, "/api/events") for _ in range(10)]
        try:
            await wait_for(lambda: live.hub.total_clients == 20)
            await settled()
            assert task_count() - before == 2 * 20
        finally:
            for sock in socks:
                sock.close()
        await wait_for(lambda: live.hub.total_clients == 0, 1)  # gone within a second


async def test_streams_keep_every_guard_and_header(tmp_path: Path) -> None:
    origin = "http://dash.example"
    sections: dict[str, dict[str, Any]] = {
        "auth": {"token": "sekret", "protect_reads": True},
        "cors": {"allow_origins": [origin]},
    }
    async with live_server(tmp_path, **sections) as live:
        agent = await live.supervisor.start(AgentSpec("done", ["true"]))
        await wait_for(lambda: not agent.is_live)
        await live.supervisor.start(AgentSpec("idle", ["sleep", "60"]))
        cors = f"Origin: {origin}\r\n"

        def ask(target: str, headers: str = "", host: str = "127.0.0.1") -> tuple[Any, ...]:
            with raw_get(live.port, target, headers, host) as sock:
                return read_head(sock)

        status, fields, _ = await trio.to_thread.run_sync(
            ask, "/api/events?access_token=sekret", cors, "evil.example"
        )
        assert status == 403  # DNS-rebinding guard first
        status, fields, body = await trio.to_thread.run_sync(ask, "/api/agents/idle/stream", cors)
        assert status == 401 and fields["www-authenticate"].startswith("Bearer")
        assert fields["access-control-allow-origin"] == origin
        for target, headers in [
            ("/api/agents/idle/stream?access_token=sekret", cors),
            ("/api/events", cors + "Authorization: Bearer sekret\r\n"),
        ]:
            status, fields, body = await trio.to_thread.run_sync(ask, target, headers)
            assert status == 200, target
            assert fields["content-type"] == "text/event-stream; charset=utf-8"
            assert fields["cache-control"] == "no-cache"
            assert fields["x-accel-buffering"] == "no"
            assert fields["transfer-encoding"] == "chunked"
            assert "content-length" not in fields
            assert fields["access-control-allow-origin"] == origin
            assert fields["vary"] == "Origin"
        status, fields, body = await trio.to_thread.run_sync(
            ask, "/api/agents/ghost/stream?access_token=sekret", cors
        )
        assert status == 404 and fields["content-type"].startswith("application/json")
        assert json.loads(body)["error"]["code"] == "agent_not_found"
        assert fields["access-control-allow-origin"] == origin
        seen = "Last-Event-ID: 3\r\n"  # 1 running, 2 completed, 3 complete
        status, fields, _ = await trio.to_thread.run_sync(
            ask, "/api/agents/done/stream?access_token=sekret", cors + seen
        )
        assert status == 204
        status, _, body = await trio.to_thread.run_sync(
            ask, "/api/agents/idle/stream?access_token=sekret&history=x"
        )
        assert status == 400 and json.loads(body)["error"]["code"] == "invalid_request"


async def test_a_stream_reached_through_asgi_app_still_streams(tmp_path: Path) -> None:
    """``SSEApp`` serves stream requests without quart-trio's request nursery; one that
    reaches ``asgi_app`` directly (middleware wrapping it, say) takes quart-trio's way,
    whose message task sees the disconnect and cancels the stream."""
    from tests.helpers import make_config
    from trio_wrapper.api.app import create_app, hub_limits
    from trio_wrapper.runtime.hub import Hub
    from trio_wrapper.runtime.supervisor import Supervisor

    config = make_config(tmp_path)
    hub = Hub(hub_limits(config))
    app = create_app(config, Supervisor(config, observers=[hub]), hub)
    scope = {
        "type": "http",
        "http_version": "1.1",
        "asgi": {"version": "3.0", "spec_version": "2.1"},
        "method": "GET",
        "scheme": "http",
        "path": "/api/events",
        "raw_path": b"/api/events",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8151),
        "extensions": {},
    }

    async def stream_once(entry: Any) -> None:
        to_app, from_peer = trio.open_memory_channel[dict[str, Any]](10)
        to_app.send_nowait({"type": "http.request", "body": b"", "more_body": False})
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(hub.run)
            nursery.start_soon(entry, scope, from_peer.receive, send)
            await wait_for(lambda: len(sent) >= 2)
            assert sent[0]["status"] == 200
            assert b"event: connected" in sent[1]["body"]
            assert hub.total_clients == 1
            to_app.send_nowait({"type": "http.disconnect"})
            await wait_for(lambda: hub.total_clients == 0, 1)
            nursery.cancel_scope.cancel()

    await stream_once(app.asgi_app)  # quart-trio's way: SSEConnection
    await stream_once(app)  # SSEApp's own way


async def test_behind_a_proxy_the_sweep_still_finds_a_stalled_clients_socket(
    tmp_path: Path,
) -> None:
    """With ``forwarded_hops`` the request's client is the forwarded address, but the hub
    keeps the TCP peer: that is what a stalled client's socket is shut down by."""
    from trio_wrapper.runtime.connections import abort_connection

    async with live_server(tmp_path, server={"forwarded_hops": 1}) as live:
        await live.supervisor.start(AgentSpec("watched", ["sleep", "30"]))
        sock = raw_get(live.port, "/api/agents/watched/stream", "X-Forwarded-For: 203.0.113.7\r\n")
        try:
            status, _, _ = await trio.to_thread.run_sync(read_head, sock)
            assert status == 200
            await wait_for(lambda: live.hub.total_clients == 1)
            (client,) = live.hub.clients
            assert client.peer == sock.getsockname()
            assert await trio.to_thread.run_sync(abort_connection, client.peer)
            await wait_for(lambda: live.hub.total_clients == 0)
        finally:
            sock.close()
