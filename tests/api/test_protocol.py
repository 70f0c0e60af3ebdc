"""What is answered below the routes, over a real hypercorn: request heads over the
limit, requests that are not HTTP, huge bodies, and what reaches the logs (issue 15,
item 7)."""

from __future__ import annotations

import contextlib
import json
import logging
from functools import partial
from pathlib import Path

import pytest
import trio
from hypercorn.trio import serve

from tests.helpers import make_config
from tests.live import live_server
from trio_wrapper.api.app import create_app, hub_limits
from trio_wrapper.api.logredact import redact
from trio_wrapper.daemon import hypercorn_config
from trio_wrapper.runtime.hub import Hub
from trio_wrapper.runtime.supervisor import Supervisor


async def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """``request`` on a new connection; one answer read (head, then ``Content-Length``
    bytes: quart-trio keeps a connection open even after ``Connection: close``)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        with contextlib.suppress(trio.BrokenResourceError):
            await stream.send_all(request)  # may be answered and closed before
        data = b""

        async def more() -> bool:
            nonlocal data
            with contextlib.suppress(trio.BrokenResourceError):
                chunk = await stream.receive_some(65536)
                data += chunk
                return bool(chunk)
            return False

        with trio.fail_after(10):
            while b"\r\n\r\n" not in data and await more():
                pass
            head, _, body = data.partition(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")
            fields = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}
            while len(body) < int(fields.get("content-length", 0)) and await more():
                body = data[len(head) + 4 :]
    return int(status_line.split()[1]), fields, body


def get(header: bytes = b"", target: bytes = b"/api/health") -> bytes:
    return (
        b"GET "
        + target
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + header
        + b"Connection: close\r\n\r\n"
    )


def assert_json_error(answer: tuple[int, dict[str, str], bytes], status: int, code: str) -> str:
    got, fields, body = answer
    assert got == status, (got, body)
    assert fields["content-type"] == "application/json; charset=utf-8"
    assert int(fields["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert error["code"] == code
    return str(error["message"])


async def test_a_huge_header_gets_a_json_431(tmp_path: Path) -> None:
    """100 KB arrives in several reads: hypercorn's h11 layer refuses it (was: 431 with an
    empty body)."""
    async with live_server(tmp_path) as live:
        answer = await exchange(live.port, get(b"X-Big: " + b"x" * 100_000 + b"\r\n"))
        message = assert_json_error(answer, 431, "headers_too_large")
        assert "16384" in message and answer[1]["connection"] == "close"


async def test_a_head_over_the_limit_that_arrives_whole_gets_a_json_431(tmp_path: Path) -> None:
    """2 KB in one read: h11 takes it whole (its buffer limit only counts incomplete
    heads), so the app measures it."""
    async with live_server(tmp_path, limits={"max_header_bytes": 1024}) as live:
        ok = await exchange(live.port, get(b"X-Fine: " + b"x" * 800 + b"\r\n"))
        assert ok[0] == 200
        answer = await exchange(live.port, get(b"X-Big: " + b"x" * 2000 + b"\r\n"))
        assert_json_error(answer, 431, "headers_too_large")
        many = b"".join(b"X-H%d: yy\r\n" % i for i in range(200))
        assert_json_error(await exchange(live.port, get(many)), 431, "headers_too_large")
        # The URL counts too.
        answer = await exchange(live.port, get(target=b"/api/agents/" + b"a" * 2000))
        assert_json_error(answer, 431, "headers_too_large")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /api/health HTTP/1.1\r\nConnection: close\r\n\r\n",  # no Host
        b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\x00b\r\n\r\n",
        b"POST /api/agents HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
    ],
    ids=["garbage", "no-host", "nul-in-header", "bad-length"],
)
async def test_a_request_that_is_not_http_gets_a_json_400(
    tmp_path: Path, request_bytes: bytes
) -> None:
    async with live_server(tmp_path) as live:
        answer = await exchange(live.port, request_bytes)
        assert_json_error(answer, 400, "invalid_request")


def test_access_tokens_are_redacted() -> None:
    assert redact("GET /api/events?access_token=abc&history=1") == (
        "GET /api/events?access_token=[redacted]&history=1"
    )
    assert redact("q: access%5Ftoken=abc") == "q: access%5Ftoken=[redacted]"
    assert redact("ACCESS_TOKEN=x y") == "ACCESS_TOKEN=[redacted] y"


async def test_no_log_line_holds_the_token(
    tmp_path: Path, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    """hypercorn's access log (when one is configured) and our own log lines."""
    config = make_config(tmp_path, server={"port": 0}, auth={"token": "T0KEN"})
    hub = Hub(hub_limits(config))
    supervisor = Supervisor(config, observers=[hub])
    app = create_app(config, supervisor, hub)
    hc = hypercorn_config(config)
    hc.accesslog = logging.getLogger("hypercorn.access")
    hc.access_log_format = '"%(R)s" q=%(q)s auth=%({authorization}i)s ref=%(f)s'
    stop = trio.Event()
    await nursery.start(hub.run)
    await nursery.start(supervisor.run)
    binds = await nursery.start(partial(serve, app, hc, shutdown_trigger=stop.wait))
    port = int(binds[0].rsplit(":", 1)[1])
    caplog.set_level(logging.INFO)
    try:
        await exchange(
            port,
            get(
                b"Authorization: Bearer T0KEN\r\nReferer: http://x/?access_token=T0KEN\r\n",
                b"/api/events?access_token=T0KEN&history=bad",
            ),
        )
        await exchange(port, get(target=b"/api/agents?access_token=T0KEN"))
        logging.getLogger("trio_wrapper.api").warning("asked for %s", "/x?access_token=T0KEN")
    finally:
        with trio.CancelScope(shield=True), trio.fail_after(30):
            await hub.shutdown()
            stop.set()
            await supervisor.shutdown()
    access = [r.getMessage() for r in caplog.records if r.name == "hypercorn.access"]
    events = [line for line in access if "/api/events" in line]
    assert events and all("/api/agents" in line for line in access if line not in events)
    assert "access_token=[redacted]" in events[0] and "auth=[redacted]" in events[0]
    assert "T0KEN" not in caplog.text
