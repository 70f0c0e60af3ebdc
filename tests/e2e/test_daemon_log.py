"""The daemon's own log, read from the stderr of a real daemon started with
``--log-format json``: one JSON object a line, the events with their fields, no token."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon import Child, clean_environ, poll, running_daemon

TOKEN = "e2e-Log-T0ken-4f1c9b"
SECRET_ARG = "--api-key=sk-never-logged-77"
ENV = {
    "TRIO_WRAPPER_AUTH_TOKEN": TOKEN,
    "TRIO_WRAPPER_AGENTS_STOP_GRACE_SECONDS": "2",
    "TRIO_WRAPPER_LIMITS_MAX_AGENTS": "2",
    "TRIO_WRAPPER_LIMITS_MAX_BODY_BYTES": "4096",
}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STOP_BOUND = 20.0
STAMP = r"\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d(-\d+)?"


def status_of(port: int, request: bytes) -> int:
    """The status of the answer to ``request``, sent on a new connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            # Answered and closed before taking it all: the answer is still there to read.
            sock.sendall(request)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


def lines_of(log: str) -> list[dict[str, Any]]:
    """Every line of the log, each a JSON object with the base keys (or the test fails)."""
    lines = []
    for text in log.splitlines():
        line = json.loads(text)
        assert {"ts", "level", "logger", "event", "message"} <= set(line), text
        lines.append(line)
    return lines


def one(lines: list[dict[str, Any]], event: str, **fields: Any) -> dict[str, Any]:
    found = [
        line
        for line in lines
        if line["event"] == event and all(line.get(k) == v for k, v in fields.items())
    ]
    assert len(found) == 1, (event, fields, found)
    return found[0]


def test_json_log_of_starts_exits_failures_limits_and_deletes(tmp_path: Path) -> None:
    with running_daemon(tmp_path, "--log-format", "json", env=ENV) as daemon:
        with httpx.Client(base_url=daemon.url, headers=AUTH, timeout=10.0) as http:

            def start(name: str, command: list[str]) -> httpx.Response:
                return http.post("/api/agents", json={"name": name, "command": command})

            assert start("done", ["sh", "-c", "echo one; echo two", "sh", SECRET_ARG]).is_success

            def completed() -> bool:
                return http.get("/api/agents/done").json()["status"] == "completed"

            poll(completed, 20.0, "agent 'done' never completed")
            # argv[0] holds the token: the reason names it, the log must not.
            ghost = start("ghost", [f"/no/such/dir/{TOKEN}-cli", SECRET_ARG])
            assert ghost.status_code == 422 and ghost.json()["error"]["code"] == "spawn_failed"
            assert start("sleeper", ["sleep", "60"]).status_code == 201
            assert start("sleeper2", ["sleep", "60"]).status_code == 201
            for _ in range(3):  # a client hammering a limit gets one line
                assert start("extra", ["sleep", "60"]).status_code == 429
            # Each on a connection of its own: neither leaves its connection reusable.
            body = json.dumps({"name": "big", "command": ["true"], "env": {"X": "x" * 8192}})
            big = (
                f"POST /api/agents HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}"
                f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                f"{body}"
            )
            assert status_of(daemon.port, big.encode()) == 413
            huge = f"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {'y' * 20_000}\r\n\r\n"
            assert status_of(daemon.port, huge.encode()) == 431
            # ?access_token= goes nowhere near a log line either.
            assert http.get("/api/health", params={"access_token": TOKEN}).status_code == 200
            assert http.delete("/api/agents/sleeper").status_code == 200
        code = daemon.stop(STOP_BOUND)
        log = daemon.log
    assert code == 0, log
    assert TOKEN not in log
    assert SECRET_ARG not in log and "sk-never-logged" not in log
    lines = lines_of(log)

    assert one(lines, "listening")["url"] == daemon.url
    started = one(lines, "agent_started", agent="done")
    assert re.fullmatch(rf"done/{STAMP}", started["run"])
    assert isinstance(started["pid"], int) and started["argv0"] == "sh"
    assert started["format"] == "auto" and started["level"] == "info"
    assert started["logger"] == "trio_wrapper.agents"
    exited = one(lines, "agent_exited", agent="done")
    assert exited["run"] == started["run"]
    assert (exited["status"], exited["exit_code"], exited["lines"]) == ("completed", 0, 2)
    assert exited["duration_seconds"] >= 0 and exited["records"] >= 0
    assert exited["format"] == "text"  # what auto decided for plain lines

    failed = one(lines, "agent_start_failed", agent="ghost")
    assert failed["code"] == "spawn_failed" and failed["level"] == "warning"
    assert "[redacted]" in failed["argv0"] and "[redacted]" in failed["reason"]

    limit = one(lines, "limit_hit", code="too_many_agents")
    assert limit["suppressed"] == 0 and limit["logger"] == "trio_wrapper.limits"
    assert "4096" in one(lines, "limit_hit", code="body_too_large")["reason"]
    assert one(lines, "limit_hit", code="headers_too_large")["level"] == "warning"

    assert one(lines, "agent_stopping", agent="sleeper")["reason"] == "api"
    stopped = one(lines, "agent_exited", agent="sleeper")
    assert (stopped["status"], stopped["stop_reason"]) == ("stopped", "api")
    assert one(lines, "agent_removed", agent="sleeper")["run"] == stopped["run"]
    # The other sleeper was still running at SIGTERM: the daemon stopped it.
    assert one(lines, "agent_stopping", agent="sleeper2")["reason"] == "shutdown"
    assert one(lines, "agent_exited", agent="sleeper2")["stop_reason"] == "shutdown"
    assert one(lines, "shutting_down")["signal"] == "SIGTERM"
    assert lines[-1]["event"] == "stopped"
    assert not [line for line in lines if line["level"] in ("error", "critical")], log


def test_text_log_is_message_then_key_value_pairs(tmp_path: Path) -> None:
    with running_daemon(tmp_path, "--log-level", "INFO", env=ENV) as daemon:
        with httpx.Client(base_url=daemon.url, headers=AUTH, timeout=10.0) as http:
            ghost = http.post("/api/agents", json={"name": "g", "command": ["/no/such/cli"]})
            assert ghost.status_code == 422
        assert daemon.stop(STOP_BOUND) == 0
        log = daemon.log
    (line,) = [text for text in log.splitlines() if "event=agent_start_failed" in text]
    assert " WARNING trio_wrapper.agents: agent g failed to start: " in line
    assert " agent=g code=spawn_failed " in line
    assert " argv0=/no/such/cli" in line


def test_plain_hypercorn_writes_the_events_in_the_configured_format(tmp_path: Path) -> None:
    hypercorn = Path(sys.executable).with_name("hypercorn")
    if not hypercorn.exists():
        pytest.skip(f"hypercorn script not found beside {sys.executable}")
    env = {
        "TRIO_WRAPPER_SERVER_LOGS_DIR": str(tmp_path / "logs"),
        "TRIO_WRAPPER_LOGGING_FORMAT": "json",
        "TRIO_WRAPPER_AUTH_TOKEN": TOKEN,
    }
    with Child(
        [hypercorn, "-k", "trio", "-b", "127.0.0.1:0", "trio_wrapper.api.app:create_app()"],
        tmp_path / "hypercorn.out",
        env=clean_environ(env),
        cwd=tmp_path,
    ) as proc:
        running = proc.wait_for_output(re.compile(r"Running on (http://127\.0\.0\.1:\d+)"), 20)
        with httpx.Client(base_url=running.group(1), headers=AUTH, timeout=10) as http:
            created = http.post("/api/agents", json={"name": "h", "command": ["true", TOKEN]})
            assert created.status_code == 201

            def completed() -> bool:
                return http.get("/api/agents/h").json()["status"] == "completed"

            poll(completed, 20.0, "agent 'h' never completed")
        assert proc.stop(STOP_BOUND) == 0
        out = proc.text()
    assert TOKEN not in out
    ours = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert one(ours, "agent_started", agent="h")["argv0"] == "true"
    assert one(ours, "agent_exited", agent="h")["status"] == "completed"
