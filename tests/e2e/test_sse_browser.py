"""SSE as real clients see it: headless Chromium's EventSource (the stream through nginx
is in test_nginx.py).

The test starts the real daemon as a subprocess on an ephemeral loopback port and skips
(with the reason printed) when the browser is not installed. Everything it starts
is stopped in ``finally`` blocks, every wait is bounded.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon import Child, Daemon, running_daemon
from tests.helpers import REPO, TRANSCRIPTS, need

pytestmark = pytest.mark.e2e

TRANSCRIPT = TRANSCRIPTS / "codex" / "exec_json_docs_sample.jsonl"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0  # for the browser; the daemon gets 20 s
BROWSER_TIMEOUT = 30.0
# EventSource waits ~3 s (Chromium's default retry) before reconnecting after the stream
# ends; the reconnect must get 204 and close the source for good.
CLOSE_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(tmp_path: Path, env: dict[str, str]) -> AbstractContextManager[Daemon]:
    """``trio-wrapper serve --port 0`` run from the repository, stop grace 2 s."""
    env = {"TRIO_WRAPPER_AGENTS_STOP_GRACE_SECONDS": "2", **env}
    return running_daemon(tmp_path, env=env, cwd=REPO, stop_timeout=20)


def create_agent(http: httpx.Client, name: str, command: list[str], fmt: str) -> None:
    body = {"name": name, "command": command, "format": fmt, "stdin": True}
    created = http.post("/api/agents", json=body)
    assert created.status_code == 201, created.text


# ---- headless Chromium ----------------------------------------------------------------

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>waiting</title></head>
<body><pre id="log"></pre>
<script>
const STREAM_URL = %(stream_url)s;
const TYPES = ["connected", "log", "extraction", "state", "complete", "gap", "shutdown"];
const seen = {};
const logBox = document.getElementById("log");
const source = new EventSource(STREAM_URL);

function report(stage) {
  fetch("/result", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({stage: stage, readyState: source.readyState, seen: seen}),
  });
}

for (const type of TYPES) {
  seen[type] = [];
  source.addEventListener(type, (event) => {
    seen[type].push({id: event.lastEventId, data: JSON.parse(event.data)});
    logBox.textContent += type + " " + event.data + "\\n";
    document.title = TYPES.map((t) => t + "=" + seen[t].length).join(" ");
    if (type === "connected" || type === "complete") report(type);
  });
}
source.onerror = () => {
  // After `complete` the stream ends; EventSource reconnects with Last-Event-ID, gets
  // 204 and gives up: CLOSED. A refused CORS check closes it at once, with nothing seen.
  if (source.readyState === EventSource.CLOSED) report("closed");
};
</script></body></html>
"""


class PageServer:
    """A loopback http.server: GET / is the page, POST /result stores what the page saw."""

    def __init__(self, page: str) -> None:
        self.page = page.encode()
        self.results: dict[str, dict[str, Any]] = {}
        self.changed = threading.Condition()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/":
                    self.send_error(404)
                    return
                self._reply(200, "text/html; charset=utf-8", owner.page)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                result = json.loads(self.rfile.read(length))
                with owner.changed:
                    owner.results[result["stage"]] = result
                    owner.changed.notify_all()
                self._reply(204, "text/plain", b"")

            def _reply(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> PageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def wait(self, stage: str, timeout: float) -> dict[str, Any]:
        with self.changed:
            done = self.changed.wait_for(
                lambda: stage in self.results or "closed" in self.results, timeout
            )
            assert done, f"the page reported no {stage!r} within {timeout} s"
            if stage not in self.results:
                raise AssertionError(f"EventSource closed before {stage!r}: {self.results}")
            return self.results[stage]


@contextmanager
def headless_chromium(chromium: str, url: str, profile: Path) -> Iterator[Path]:
    """Chromium showing ``url``; yields the path of its output (for failure messages)."""
    output = profile.parent / "chromium.log"
    flags = [
        "--headless",
        "--no-sandbox",  # as root in a container there is no usable sandbox
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        f"--user-data-dir={profile}",
    ]
    browser = Child([chromium, *flags, url], output)
    try:
        yield output
    finally:
        browser.stop(STOP_TIMEOUT)


def test_chromium_eventsource_receives_a_live_agent(tmp_path: Path) -> None:
    chromium = need("chromium", "chromium")
    transcript = TRANSCRIPT.read_text()
    name = "browser-codex"

    # The page's origin must be known before the daemon starts (CORS allow-list), and the
    # daemon's port before the page is written: the page's server starts first, serving
    # a page filled in once the daemon is up.
    with PageServer("") as page:
        env = {"TRIO_WRAPPER_CORS_ALLOW_ORIGINS": page.origin}
        with serve(tmp_path, env) as daemon, daemon.client() as http:
            url = daemon.url
            create_agent(http, name, ["cat"], "codex-json")
            stream_url = f"{url}/api/agents/{name}/stream?history=100"
            page.page = (PAGE % {"stream_url": json.dumps(stream_url)}).encode()
            with headless_chromium(chromium, page.origin + "/", tmp_path / "profile") as out:
                try:
                    connected = page.wait("connected", BROWSER_TIMEOUT)
                    stats = http.get("/api/sse/stats").json()
                    assert stats["agents"] == {name: 1}, stats
                    # Live events, written after the browser subscribed.
                    sent = http.post(f"/api/agents/{name}/input", json={"data": transcript})
                    assert sent.status_code == 200, sent.text
                    sent = http.post(f"/api/agents/{name}/input", json={"eof": True})
                    assert sent.status_code == 200, sent.text
                    complete = page.wait("complete", BROWSER_TIMEOUT)
                    closed = page.wait("closed", CLOSE_TIMEOUT)
                except AssertionError as exc:
                    log = out.read_text(errors="replace")[-3000:]
                    raise AssertionError(f"{exc}\nchromium output:\n{log}") from exc

    first = connected["seen"]["connected"][0]["data"]
    assert first["type"] == "connected"
    assert first["data"]["agent"] == name

    seen = complete["seen"]
    lines = transcript.splitlines()
    logs = [event["data"] for event in seen["log"]]
    assert [entry["data"]["line"] for entry in logs] == lines
    assert [entry["data"]["line_num"] for entry in logs] == list(range(1, len(lines) + 1))
    assert {entry["agent_name"] for entry in logs} == {name}
    assert {entry["data"]["stream"] for entry in logs} == {"stdout"}

    done = seen["complete"]
    assert len(done) == 1
    assert done[0]["data"]["data"]["status"] == "completed"
    assert done[0]["data"]["data"]["exit_code"] == 0

    numbered = sorted(
        (int(event["id"]), kind)
        for kind in ("log", "extraction", "state", "complete")
        for event in seen[kind]
    )
    ids = [event_id for event_id, _ in numbered]
    assert ids == list(range(ids[0], ids[0] + len(ids))), numbered
    assert numbered[-1][1] == "complete"
    assert not seen["gap"]

    # The codex-json extractor's records reach the browser as `extraction` events.
    records = [event["data"] for event in seen["extraction"]]
    assert records, "no extraction events for a codex-json transcript"
    for record in records:
        assert record["type"] == "extraction"
        assert record["agent_name"] == name
        assert 1 <= record["data"]["line_num"] <= len(lines)
    kinds = {record["data"]["type"] for record in records}
    assert {"session", "state", "tool_call", "response", "metric"} <= kinds, kinds
    session = next(r["data"] for r in records if r["data"]["type"] == "session")
    assert session["key"] == "session_id"
    assert session["value"] == "0199a213-81c0-7800-8aa1-bbab2a035a53"
    shell = next(r["data"] for r in records if r["data"]["type"] == "tool_call")
    assert shell["tool"] == "shell" and shell["exit_code"] == 0
    metrics = {
        r["data"]["key"]: r["data"]["value"] for r in records if r["data"]["type"] == "metric"
    }
    assert metrics["output_tokens"] == 122

    # The reconnect after the end got 204 and EventSource stopped for good.
    assert closed["readyState"] == 2
    assert len(closed["seen"]["connected"]) == 1, "the reconnect must not open a new stream"
