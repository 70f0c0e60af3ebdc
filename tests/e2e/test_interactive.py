"""An interactive session through the API of a real daemon: a PTY agent (a small CLI with
a prompt) waits, gets a message, runs, waits again; its SSE ``state`` events come in
that order, the screen endpoint shows the exchange, the metrics count it waiting."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.daemon import Daemon, poll, running_daemon
from tests.helpers import PY

# A CLI with a prompt: "> ", reads a line, answers, prompts again; "quit" ends it.
CLI = """
import sys
n = 0
while True:
    sys.stdout.write("> ")
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line or line.strip() == "quit":
        break
    n += 1
    print(f"answer {n}: {line.strip().upper()}", flush=True)
print("bye", flush=True)
"""
ENV = {"TRIO_WRAPPER_INTERACTIVE_QUIET_SECONDS": "0.3"}
BOUND = 30.0


class StateReader(threading.Thread):
    """The live stream of one agent, from before it waits to its end: its ``state``
    events, in the order they came."""

    def __init__(self, url: str, name: str) -> None:
        super().__init__(daemon=True)
        self.url, self.name = url, name
        self.states: list[str] = []
        self.connected = threading.Event()
        self.ended = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with (
                httpx.Client(base_url=self.url, timeout=BOUND) as http,
                http.stream("GET", f"/api/agents/{self.name}/stream?history=all") as response,
            ):
                event = ""
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                        if event == "connected":
                            self.connected.set()
                    elif line.startswith("data: ") and event == "state":
                        self.states.append(json.loads(line[6:])["data"]["state"])
                    elif line.startswith("data: ") and event == "complete":
                        break
        except BaseException as exc:
            self.error = exc
        finally:
            self.connected.set()
            self.ended.set()


@contextmanager
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on 127.0.0.1: its URL and the JSON bodies POSTed to it."""
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    finally:
        server.shutdown()
        server.server_close()


def status_of(http: httpx.Client, name: str, want: str) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        last.clear()
        last.update(http.get(f"/api/agents/{name}").json())
        return dict(last) if last.get("status") == want else None

    return poll(reached, BOUND, lambda: f"{name} never {want}: {last}")


def test_pty_agent_waits_gets_a_message_and_waits_again(tmp_path: Path) -> None:
    with (
        webhook() as (url, notified),
        running_daemon(tmp_path, env={**ENV, "TRIO_WRAPPER_NOTIFY_WEBHOOK": url}) as daemon,
        daemon.client(timeout=BOUND) as http,
    ):
        created = http.post(
            "/api/agents",
            json={
                "name": "cli",
                "command": [PY, "-c", CLI],
                "pty": True,
                "stdin": True,
                "pty_size": [12, 50],
                "waiting_pattern": "^>$",
            },
        )
        assert created.status_code == 201, created.text
        assert created.json()["messages"] == "pty"
        assert created.json()["pty_size"] == [12, 50]
        reader = StateReader(daemon.url, "cli")
        reader.start()
        assert reader.connected.wait(BOUND)

        first = status_of(http, "cli", "waiting")
        assert first["waiting_since"] is not None
        assert first["waiting_detail"] == "prompt: >"
        assert 'trio_wrapper_agents{status="waiting"} 1' in http.get("/metrics").text
        assert http.get("/api/metrics").json()["system"]["waiting_agents"] == 1

        sent = http.post("/api/agents/cli/message", json={"text": "hello"})
        assert sent.status_code == 200, sent.text
        assert sent.json()["delivered"] == "pty"
        assert sent.json()["status"] == "running"
        assert sent.json()["written"] == len("hello\r")

        again = status_of(http, "cli", "waiting")
        assert again["waiting_since"] >= first["waiting_since"]
        screen = http.get("/api/agents/cli/screen").json()
        assert (screen["rows"], screen["cols"]) == (12, 50)
        assert screen["text"].splitlines() == ["> hello", "answer 1: HELLO", ">"], screen
        assert screen["cursor"] == [2, 2]

        assert http.post("/api/agents/cli/message", json={"text": "quit"}).status_code == 200
        status_of(http, "cli", "completed")
        assert reader.ended.wait(BOUND)
        assert reader.error is None, reader.error
        assert reader.states == ["running", "waiting", "running", "waiting", "running", "completed"]

        # Ended: no one to tell; its last screen stays readable.
        late = http.post("/api/agents/cli/message", json={"text": "hi"})
        assert late.status_code == 409 and late.json()["error"]["code"] == "agent_not_running"
        assert "bye" in http.get("/api/agents/cli/screen").json()["text"]
        (events_file,) = (tmp_path / "logs" / "agents" / "cli").glob("*-events.jsonl")
        events = events_file.read_text().splitlines()
        states = [json.loads(e)["state"] for e in events if json.loads(e)["type"] == "state"]
        assert states == reader.states, states
        # The webhook heard of each wait and of the end, in order.
        poll(lambda: len(notified) >= 3, BOUND, lambda: f"webhook got {notified}")
        assert [(n["event"], n["agent"]) for n in notified] == [
            ("waiting", "cli"),
            ("waiting", "cli"),
            ("completed", "cli"),
        ]
        assert notified[0]["detail"] == "prompt: >" and notified[2]["exit_code"] == 0


def test_messages_refused_where_they_cannot_be_delivered(tmp_path: Path) -> None:
    with running_daemon(tmp_path) as daemon, daemon.client(timeout=BOUND) as http:
        for name, extra in (("piped", {"stdin": True}), ("tty", {"pty": True})):
            body = {"name": name, "command": [PY, "-c", "import time; time.sleep(60)"], **extra}
            assert http.post("/api/agents", json=body).status_code == 201
        refused = http.post("/api/agents/piped/message", json={"text": "hi"})
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "not_interactive"
        no_screen = http.get("/api/agents/piped/screen")
        assert no_screen.status_code == 409
        assert no_screen.json()["error"]["code"] == "not_a_terminal"
        # A terminal without stdin: nothing typed would reach the program.
        assert http.post("/api/agents/tty/message", json={"text": "x"}).status_code == 409
        assert http.get("/api/agents/tty/screen").json()["rows"] == 24
        bad = http.post(
            "/api/agents",
            json={"name": "big", "command": ["true"], "pty": True, "pty_size": [1, 5]},
        )
        assert bad.status_code == 400 and "pty_size" in bad.json()["error"]["message"]
        bad = http.post(
            "/api/agents",
            json={"name": "re", "command": ["true"], "pty": True, "waiting_pattern": "("},
        )
        assert bad.status_code == 400 and "waiting_pattern" in bad.json()["error"]["message"]
    assert isinstance(daemon, Daemon)


# claude's stream-json input mode, as the real CLI speaks it (2.1.197, seen against a fake
# model server): nothing before the first user message; a tool it may not use yet is a
# ``control_request`` it waits on for the ``control_response``; a turn ends with ``result``.
FAKE_CLAUDE = """
import json, sys
def out(o):
    print(json.dumps(o), flush=True)
def read():
    line = sys.stdin.readline()
    return json.loads(line) if line else None
first = read()
text = first["message"]["content"][0]["text"]
out({"type": "system", "subtype": "init", "session_id": "s1", "model": "claude-fake",
     "cwd": ".", "tools": ["Bash"]})
out({"type": "assistant", "session_id": "s1", "message": {"id": "m1", "model": "claude-fake",
     "role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash",
     "input": {"command": "echo hi > a.txt"}}]}})
out({"type": "control_request", "request_id": "r1", "request": {"subtype": "can_use_tool",
     "tool_name": "Bash", "input": {"command": "echo hi > a.txt"}, "tool_use_id": "t1"}})
answer = read()["response"]
assert answer["request_id"] == "r1", answer
verdict = answer["response"]["behavior"]
if verdict == "allow":
    open("a.txt", "w").write("hi\\n")
out({"type": "user", "session_id": "s1", "message": {"role": "user", "content": [
     {"type": "tool_result", "tool_use_id": "t1", "content": verdict, "is_error": False}]}})
out({"type": "assistant", "session_id": "s1", "message": {"id": "m2", "model": "claude-fake",
     "role": "assistant", "content": [{"type": "text", "text": "done: " + text}]}})
out({"type": "result", "subtype": "success", "is_error": False, "result": "done",
     "session_id": "s1", "total_cost_usd": 0.01, "usage": {"input_tokens": 10,
     "output_tokens": 2}})
while read() is not None:
    pass
"""


def drive_permission_session(
    http: httpx.Client, reader: StateReader, name: str, cwd: Path
) -> list[str]:
    """A stream-json agent already started (``stdin``) and streamed by ``reader``: it waits
    for its first message, asks permission for Bash, is allowed through the API, writes
    ``a.txt`` in ``cwd``, ends its turn and waits; its stdin closed, it completes. Returns
    the waiting details seen."""
    details = [status_of(http, name, "waiting")["waiting_detail"]]
    sent = http.post(f"/api/agents/{name}/message", json={"text": "write hi into a.txt"})
    assert sent.status_code == 200, sent.text
    assert sent.json()["delivered"] == "stream-json" and sent.json()["answered"] is None

    def asking() -> dict[str, Any] | None:
        detail: dict[str, Any] = http.get(f"/api/agents/{name}").json()
        waits = detail["status"] == "waiting" and "Bash" in (detail["waiting_detail"] or "")
        return detail if waits else None

    details.append(poll(asking, BOUND, f"{name} never asked for Bash")["waiting_detail"])
    allowed = http.post(f"/api/agents/{name}/message", json={"text": "yes"})
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["answered"] == "Bash" and allowed.json()["allowed"] is True
    poll(lambda: (cwd / "a.txt").exists(), BOUND, "a.txt was never written")

    def turn_done() -> dict[str, Any] | None:
        detail: dict[str, Any] = http.get(f"/api/agents/{name}").json()
        done = detail["status"] == "waiting" and "turn" in (detail["waiting_detail"] or "")
        return detail if done else None

    details.append(poll(turn_done, BOUND, f"{name} never ended its turn")["waiting_detail"])
    closed = http.post(f"/api/agents/{name}/input", json={"eof": True})
    assert closed.status_code == 200, closed.text
    status_of(http, name, "completed")
    assert reader.ended.wait(BOUND)
    assert reader.error is None, reader.error
    assert reader.states == [
        "running",
        "waiting",  # for the first message
        "running",
        "waiting",  # for permission to use Bash
        "running",
        "waiting",  # its turn is done
        "completed",
    ], reader.states
    return details


def test_stream_json_agent_answers_a_permission_prompt(tmp_path: Path) -> None:
    cwd = tmp_path / "work"
    cwd.mkdir()
    with running_daemon(tmp_path) as daemon, daemon.client(timeout=BOUND) as http:
        body = {
            "name": "claude",
            "command": [PY, "-c", FAKE_CLAUDE, "--input-format", "stream-json"],
            "format": "claude-stream-json",
            "stdin": True,
            "cwd": str(cwd),
        }
        created = http.post("/api/agents", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["messages"] == "stream-json"
        reader = StateReader(daemon.url, "claude")
        reader.start()
        assert reader.connected.wait(BOUND)
        details = drive_permission_session(http, reader, "claude", cwd)
        assert details == [
            "waiting for the first message",
            "permission to use Bash",
            "turn completed; waiting for the next message",
        ]
        assert (cwd / "a.txt").read_text() == "hi\n"
