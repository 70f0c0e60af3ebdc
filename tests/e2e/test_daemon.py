"""The real daemon as a subprocess on an ephemeral loopback port, seen over real HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import PY, REPO, TRANSCRIPTS

LISTENING = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)")


class Daemon:
    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
            cwd=REPO,
        )
        self.log = b""
        deadline = time.monotonic() + 20
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log += line
            match = LISTENING.search(line)
            if match:
                self.url = f"http://127.0.0.1:{int(match.group(1))}"
                return
        self.proc.kill()
        raise AssertionError(f"daemon did not start: {self.log.decode(errors='replace')}")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def terminate(self, timeout: float = 20) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        assert self.proc.stderr is not None
        self.log += self.proc.stderr.read()
        return code, time.monotonic() - started


def serve(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> Daemon:
    args = [PY, "-m", "trio_wrapper", "serve", "--port", "0", "--logs-dir", str(tmp_path / "logs")]
    return Daemon([*args, *extra], env)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = serve(tmp_path, env={"TRIO_WRAPPER_AGENTS_STOP_GRACE_SECONDS": "2"})
    yield d
    if d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()


def wait_status(http: httpx.Client, name: str, done: set[str], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = http.get(f"/api/agents/{name}").json()
        if detail["status"] in done:
            return detail
        time.sleep(0.02)
    raise AssertionError(f"{name} never reached {done}: {detail}")


def test_replays_a_transcript_over_real_http(daemon: Daemon) -> None:
    transcript = TRANSCRIPTS / "codex" / "plain_exec_v0.114.0_claude-os-worker.txt"
    if not transcript.is_file():
        pytest.skip(f"transcript fixture missing: {transcript}")
    data = transcript.read_bytes()
    with daemon.client() as http:
        assert http.get("/api/health").json()["status"] == "healthy"
        created = http.post(
            "/api/agents", json={"name": "replay", "command": ["cat", str(transcript)]}
        )
        assert created.status_code == 201, created.text
        detail = wait_status(http, "replay", {"completed"})
        assert detail["exit_code"] == 0
        assert detail["bytes_processed"] == len(data)
        assert detail["extraction"]["total_lines"] == data.count(b"\n") + (not data.endswith(b"\n"))
        assert Path(detail["logs"]["stdout"]).read_bytes() == data
        logs = http.get("/api/agents/replay/logs")
        assert logs.headers["content-type"] == "text/plain; charset=utf-8"
        assert logs.content == data
        listing = http.get("/api/agents").json()
        assert [a["name"] for a in listing["agents"]] == ["replay"]
        missing = http.get("/api/agents/none")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "agent_not_found"
    code, _ = daemon.terminate()
    assert code == 0


def test_sigterm_with_twenty_running_agents(daemon: Daemon, tmp_path: Path) -> None:
    ignore_term = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    with daemon.client() as http:
        for i in range(20):
            command = [PY, "-c", ignore_term] if i % 4 == 0 else ["sh", "-c", "echo up; sleep 60"]
            assert (
                http.post("/api/agents", json={"name": f"a{i}", "command": command}).status_code
                == 201
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            agents = [http.get(f"/api/agents/a{i}").json() for i in range(20)]
            if all(a["streams"]["stdout"]["lines"] == 1 for a in agents):
                break
            time.sleep(0.05)
        pids = [a["pid"] for a in agents]
    code, elapsed = daemon.terminate()
    assert code == 0
    assert elapsed < 2 + 2, f"shutdown took {elapsed:.2f}s"
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    for i in range(20):
        (meta_path,) = (tmp_path / "logs" / "agents" / f"a{i}").glob("*-meta.json")
        meta = json.loads(meta_path.read_text())
        assert meta["status"] == "stopped", meta
        (log,) = (tmp_path / "logs" / "agents" / f"a{i}").glob("*-stdout.log")
        assert log.read_bytes() == b"up\n"

    # A restart lists the runs of the previous daemon.
    again = serve(tmp_path)
    try:
        with again.client() as http:
            listing = http.get("/api/agents").json()
            assert listing["count"] == 20
            assert {a["status"] for a in listing["agents"]} == {"stopped"}
            assert http.get("/api/agents/a3/logs").text == "up\n"
    finally:
        assert again.terminate()[0] == 0


def test_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 'many'\n")
    result = subprocess.run(
        [PY, "-m", "trio_wrapper", "serve", "--config", str(bad)],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "server.port" in lines[0]
    refused = subprocess.run(
        [PY, "-m", "trio_wrapper", "serve", "--host", "0.0.0.0"],
        capture_output=True,
        timeout=20,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("TRIO_WRAPPER_")},
    )
    assert refused.returncode == 2 and b"auth.token" in refused.stderr
    rules = tmp_path / "patterns.toml"
    rules.write_text('[[rules]]\nname = "broken"\ntype = "metric"\nregex = "(unclosed"\n')
    bad_rules = subprocess.run(
        [PY, "-m", "trio_wrapper", "serve", "--port", "0"],
        capture_output=True,
        timeout=20,
        check=False,
        env={**os.environ, "TRIO_WRAPPER_EXTRACTION_PATTERNS_FILE": str(rules)},
    )
    assert bad_rules.returncode == 2
    message = bad_rules.stderr.decode().strip().splitlines()
    assert len(message) == 1 and "broken" in message[0], message


def test_plain_hypercorn_serves_the_app_factory(tmp_path: Path) -> None:
    hypercorn = Path(sys.executable).with_name("hypercorn")
    if not hypercorn.exists():
        pytest.skip(f"hypercorn script not found beside {sys.executable}")
    proc = subprocess.Popen(
        [str(hypercorn), "-k", "trio", "-b", "127.0.0.1:0", "trio_wrapper.api.app:create_app()"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "TRIO_WRAPPER_SERVER_LOGS_DIR": str(tmp_path / "logs")},
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        url = None
        deadline = time.monotonic() + 20
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            match = re.search(rb"Running on (http://127\.0\.0\.1:\d+)", line)
            if match:
                url = match.group(1).decode()
        assert url, "hypercorn did not report its port"
        with httpx.Client(base_url=url, timeout=10) as http:
            created = http.post("/api/agents", json={"name": "h", "command": ["sleep", "60"]})
            assert created.status_code == 201
            pid = created.json()["pid"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_with_100_stream_clients_exits_fast(daemon: Daemon) -> None:
    with daemon.client() as http:
        created = http.post("/api/agents", json={"name": "talker", "command": ["sleep", "60"]})
        assert created.status_code == 201
    port = int(daemon.url.rsplit(":", 1)[1])
    clients = []
    try:
        for i in range(100):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            path = "/api/agents/talker/stream" if i % 2 else "/api/events"
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            clients.append(sock)
        for sock in clients:  # every stream is live: its `connected` event arrived
            data = b""
            while b"event: connected" not in data:
                chunk = sock.recv(4096)
                assert chunk, "stream closed before connecting"
                data += chunk
        code, elapsed = daemon.terminate()
        assert code == 0
        # The agent dies at SIGTERM, so no grace is waited: about a second in all.
        assert elapsed < 1.5, f"shutdown took {elapsed:.2f}s"
        for sock in clients:
            rest = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
            assert b"event: shutdown" in rest
    finally:
        for sock in clients:
            sock.close()
