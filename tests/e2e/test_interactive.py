"""An interactive session through the API of a real daemon: a PTY agent (a small CLI with
a prompt) waits, gets a message, runs, waits again; its SSE ``state`` events come in
that order, the screen endpoint shows the exchange, the metrics count it waiting."""

from __future__ import annotations

import json
import threading
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


def status_of(http: httpx.Client, name: str, want: str) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        last.clear()
        last.update(http.get(f"/api/agents/{name}").json())
        return dict(last) if last.get("status") == want else None

    return poll(reached, BOUND, lambda: f"{name} never {want}: {last}")


def test_pty_agent_waits_gets_a_message_and_waits_again(tmp_path: Path) -> None:
    with running_daemon(tmp_path, env=ENV) as daemon, daemon.client(timeout=BOUND) as http:
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
