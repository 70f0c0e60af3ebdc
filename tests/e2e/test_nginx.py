"""The shipped nginx example, for real: conf/nginx-trio_wrapper.conf rendered with loopback
ports, in front of the daemon mounted under its prefix (``server.root_path``).

nginx runs as a non-daemon master with a temporary prefix; the tests skip (with the reason
printed) where nginx is not installed. Through it: the API, the SSE streams (each event at
once, not when a buffer fills), the command-line client, /docs, and the dashboard at the
prefix when this daemon serves one. Every wait is bounded; everything started is stopped
in ``finally`` blocks.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from tests.daemon import Child, Daemon, clean_environ, daemon_command, poll
from tests.e2e.test_sse_browser import need
from tests.helpers import REPO

pytestmark = pytest.mark.e2e

NGINX_CONF = REPO / "conf" / "nginx-trio_wrapper.conf"
PREFIX = "/wrapper"  # the example's prefix, and the daemon's server.root_path here
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
CLI_TIMEOUT = 60.0
# Through nginx an event must arrive at once, not when some proxy buffer fills.
MAX_PROXY_DELAY = 0.5

NGINX_MAIN = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
{user}
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {site};
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def render_site(daemon_port: int, listen_port: int) -> str:
    """conf/nginx-trio_wrapper.conf with the daemon's and nginx's loopback ports; nothing
    else changes."""
    text = NGINX_CONF.read_text()
    for directive in ("proxy_http_version 1.1;", 'proxy_set_header Connection "";'):
        assert directive in text, f"{NGINX_CONF} lacks {directive}"
    assert re.search(r"^\s*proxy_buffering off;", text, re.M), "SSE needs proxy_buffering off"
    assert f"location {PREFIX}/ {{" in text, f"the example serves under {PREFIX}/"
    text, upstreams = re.subn(
        r"^(\s*server )127\.0\.0\.1:\d+;", rf"\g<1>127.0.0.1:{daemon_port};", text, flags=re.M
    )
    text, listens = re.subn(
        r"^(\s*listen )127\.0\.0\.1:\d+;", rf"\g<1>127.0.0.1:{listen_port};", text, flags=re.M
    )
    assert (upstreams, listens) == (1, 1), "expected one upstream server and one listen line"
    return text


@contextmanager
def running_nginx(nginx: str, tmp: Path, daemon_port: int) -> Iterator[str]:
    """nginx with the rendered example; yields its base URL (without the prefix)."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    site = tmp / "trio_wrapper.conf"
    site.write_text(render_site(daemon_port, port))
    # As root, nginx's workers would switch to "nobody", who cannot enter pytest's 0700
    # temp dirs (request bodies are buffered there).
    user = "user root;" if os.geteuid() == 0 else ""
    main = tmp / "nginx.conf"
    main.write_text(NGINX_MAIN.format(tmp=tmp, site=site, user=user))
    args = [nginx, "-p", str(tmp), "-c", str(main), "-e", str(tmp / "error.log")]
    proc = Child(args, tmp / "nginx.out")

    def errors() -> str:
        return (tmp / "error.log").read_text(errors="replace")

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            if proc.process.poll() is not None:
                raise AssertionError(f"nginx did not start:\n{errors()}") from None
            return False
        return True

    try:
        poll(listening, START_TIMEOUT, lambda: f"nginx did not start:\n{errors()}")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop(STOP_TIMEOUT)


@contextmanager
def prefixed_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """The daemon as the example expects it: the repository's conf/trio_wrapper.toml,
    ``server.root_path`` = the prefix, stop grace 2 s. Its ``url`` includes the prefix."""
    env = {"TRIO_WRAPPER_AGENTS_STOP_GRACE_SECONDS": "2"}
    daemon = Daemon(tmp_path, env=env, cwd=REPO, root_path=PREFIX)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop(20)


@contextmanager
def through_nginx(tmp_path: Path) -> Iterator[tuple[Daemon, str]]:
    nginx = need("nginx")
    with (
        prefixed_daemon(tmp_path) as daemon,
        running_nginx(nginx, tmp_path / "nginx", daemon.port) as proxy,
    ):
        yield daemon, proxy


def test_events_cross_nginx_without_buffering(tmp_path: Path) -> None:
    name = "through-nginx"
    with (
        through_nginx(tmp_path) as (daemon, proxy),
        httpx.Client(base_url=proxy + PREFIX, timeout=5) as proxied,
        httpx.Client(base_url=daemon.url, timeout=5) as direct,
    ):
        created = proxied.post(
            "/api/agents", json={"name": name, "command": ["cat"], "format": "none", "stdin": True}
        )
        assert created.status_code == 201, created.text
        path = f"/api/agents/{name}/stream"

        # What nginx acts on: the daemon's own header.
        with direct.stream("GET", path) as response:
            assert response.headers["x-accel-buffering"] == "no"

        delays = []
        with connect_sse(proxied, "GET", path) as source:
            headers = source.response.headers
            assert headers["content-type"].startswith("text/event-stream")
            assert headers["cache-control"] == "no-cache"
            assert headers.get("x-accel-buffering") == "no", dict(headers)
            events = source.iter_sse()
            assert next(events).event == "connected"
            for i in range(5):
                text = f"line {i}"
                started = time.perf_counter()
                sent = proxied.post(f"/api/agents/{name}/input", json={"data": text + "\n"})
                assert sent.status_code == 200, sent.text
                for sse in events:
                    if sse.event == "log":
                        assert json.loads(sse.data)["data"]["line"] == text
                        break
                delays.append(time.perf_counter() - started)
        assert max(delays) < MAX_PROXY_DELAY, f"events delayed through nginx: {delays}"

        sent = proxied.post(f"/api/agents/{name}/input", json={"eof": True})
        assert sent.status_code == 200, sent.text


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*daemon_command(), *args],
        env=clean_environ({"TRIO_WRAPPER_URL": url, "NO_COLOR": "1"}),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def test_api_streams_cli_and_dashboard_under_the_prefix(tmp_path: Path) -> None:
    with (
        through_nginx(tmp_path) as (daemon, proxy),
        httpx.Client(base_url=proxy, timeout=10) as http,
        httpx.Client(base_url=daemon.url, timeout=10) as direct,
    ):
        url = proxy + PREFIX
        # The API under the prefix; the bare prefix redirects to the dashboard's path.
        health = http.get(f"{PREFIX}/api/health")
        assert health.status_code == 200 and health.json()["status"] == "healthy"
        bare = http.get(PREFIX)
        assert (bare.status_code, bare.headers["location"]) == (301, f"{PREFIX}/")
        assert http.get("/api/health").status_code == 404  # nginx serves nothing else
        for path in ("/docs", "/openapi.json", "/metrics"):
            answer = http.get(PREFIX + path)
            assert answer.status_code == 200, (path, answer.status_code)
        # The daemon's own errors come through as they are.
        missing = http.get(f"{PREFIX}/api/agents/nope")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "agent_not_found"

        # The command-line client through nginx: run passes the exit code through,
        # ls and tail -f see the agent, and the all-agents stream carried its events.
        with connect_sse(http, "GET", f"{PREFIX}/api/events") as everything:
            events = everything.iter_sse()
            assert next(events).event == "connected"
            ran = cli(url, "run", "via-proxy", "--", "sh", "-c", "echo proxied; exit 3")
            assert (ran.returncode, ran.stdout, ran.stderr) == (3, "proxied\n", ""), ran
            seen = []
            for sse in events:
                envelope = json.loads(sse.data)
                if envelope["agent_name"] == "via-proxy":
                    seen.append(sse.event)
                if sse.event == "complete":
                    break
        assert seen[0] == "state" and "log" in seen and seen[-1] == "complete", seen
        listing = cli(url, "ls")
        assert listing.returncode == 0, listing
        assert any(
            line.split()[:2] == ["via-proxy", "failed"] for line in listing.stdout.splitlines()
        )
        followed = cli(url, "tail", "-f", "via-proxy", "-n", "100")
        assert followed.returncode == 0, followed
        assert "proxied" in followed.stdout.splitlines()
        assert followed.stdout.splitlines()[-1].startswith("-- failed (exit 3")

        # The dashboard, where this daemon serves one (it is its own change).
        own = direct.get("/")
        if own.status_code == 404:
            print(f"NOTE: the daemon serves no dashboard at {PREFIX}/ (404); not checked")
            return
        print(f"checking the dashboard at {PREFIX}/ through nginx")
        page = http.get(f"{PREFIX}/")
        assert page.status_code == 200, page.text[:200]
        assert page.headers["content-type"].startswith("text/html")
        assert page.content == own.content
        # Its own files resolve under the prefix too (relative or prefixed links only).
        links = re.findall(r"""(?:src|href)=["']([^"'#]+)["']""", page.text)
        local = [link for link in links if "://" not in link and not link.startswith("data:")]
        for link in local:
            assert not link.startswith("/") or link.startswith(f"{PREFIX}/"), link
            target = httpx.URL(f"{proxy}{PREFIX}/").join(link)
            assert http.get(target).status_code == 200, link
