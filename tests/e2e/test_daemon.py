"""The real daemon as a subprocess on an ephemeral loopback port, seen over real HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon import Child, Daemon, clean_environ, poll, running_daemon
from tests.helpers import PY, REPO, TRANSCRIPTS

# The daemon's cwd is the repository, as for a user running it there: conf/ is read.
GRACE = {"TRIO_WRAPPER_AGENTS_STOP_GRACE_SECONDS": "2"}
# Not a figure: only how long a daemon that hangs gets before the test fails.
STOP_BOUND = 20.0


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with running_daemon(tmp_path, env=GRACE, cwd=REPO) as d:
        yield d


def stop(daemon: Daemon) -> None:
    """SIGTERM: the daemon must exit 0 by itself, not be killed after STOP_BOUND."""
    code = daemon.stop(STOP_BOUND)
    assert code == 0, f"exit status {code} (-9: killed after {STOP_BOUND} s):\n{daemon.log}"


def wait_status(http: httpx.Client, name: str, done: set[str], timeout: float = 10) -> Any:
    last: dict[str, Any] = {}

    def reached() -> Any:
        last["detail"] = http.get(f"/api/agents/{name}").json()
        return last["detail"] if last["detail"]["status"] in done else None

    return poll(reached, timeout, lambda: f"{name} never reached {done}: {last}")


def run_files(tmp_path: Path, name: str, suffix: str) -> Path:
    (path,) = (tmp_path / "logs" / "agents" / name).glob(f"*-{suffix}")
    return path


def meta_of(tmp_path: Path, name: str) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads(run_files(tmp_path, name, "meta.json").read_text())
    return meta


def state_times(tmp_path: Path, name: str) -> dict[str, datetime]:
    """When the agent entered each state, from its events.jsonl (the daemon's clock)."""
    lines = run_files(tmp_path, name, "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    return {
        e["state"]: datetime.fromisoformat(e["timestamp"]) for e in events if e["type"] == "state"
    }


def test_replays_a_transcript_over_real_http(daemon: Daemon) -> None:
    transcript = TRANSCRIPTS / "codex" / "plain_exec_v0.114.0_claude-os-worker.txt"
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
    stop(daemon)


def test_the_daemon_runs_on_the_c_librarys_malloc(daemon: Daemon, tmp_path: Path) -> None:
    """``serve`` re-executes itself (same pid) with PYTHONMALLOC=malloc: on pymalloc, what
    floods leave pins whole arenas and the RSS measured quiet grows run after run
    (runtime.heap). Its agents' environment is still only the allow-listed one, and its
    extraction worker runs on pymalloc."""
    if "PYTHONMALLOC" in os.environ:
        pytest.skip("PYTHONMALLOC set for the tests: the daemon keeps that choice")
    environ = Path(f"/proc/{daemon.pid}/environ").read_bytes().split(b"\0")
    assert b"PYTHONMALLOC=malloc" in environ
    with daemon.client() as http:
        created = http.post("/api/agents", json={"name": "env", "command": ["env"]})
        assert created.status_code == 201, created.text
        assert created.json()["pid"] != daemon.pid
        wait_status(http, "env", {"completed"})
        assert b"PYTHONMALLOC" not in run_files(tmp_path, "env", "stdout.log").read_bytes()
    # Its extraction worker (started with the first extraction) runs on pymalloc, which
    # serves its small short-lived objects faster.
    workers = [
        pid
        for task in Path(f"/proc/{daemon.pid}/task").iterdir()  # any thread may have forked
        for pid in (task / "children").read_text().split()
        if b"trio_wrapper.extract.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(workers) == 1
    assert b"PYTHONMALLOC" not in Path(f"/proc/{workers[0]}/environ").read_bytes()
    stop(daemon)


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
        agents: list[dict[str, Any]] = []

        def all_up() -> bool:
            agents[:] = [http.get(f"/api/agents/a{i}").json() for i in range(20)]
            return all(a["streams"]["stdout"]["lines"] == 1 for a in agents)

        poll(all_up, 10, lambda: f"not every agent printed its line: {agents}")
        pids = [a["pid"] for a in agents]
    stop(daemon)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    for i in range(20):
        meta = meta_of(tmp_path, f"a{i}")
        assert meta["status"] == "stopped", meta
        # SIGTERM ends the plain ones; those that ignore it get SIGKILL once the grace is up.
        assert meta["signal"] == ("SIGKILL" if i % 4 == 0 else "SIGTERM"), meta
        assert run_files(tmp_path, f"a{i}", "stdout.log").read_bytes() == b"up\n"
    # Every agent is stopped at once, not one grace after another: each was told to stop
    # before any had stopped.
    times = [state_times(tmp_path, f"a{i}") for i in range(20)]
    assert max(t["stopping"] for t in times) <= min(t["stopped"] for t in times), times

    # A restart lists the runs of the previous daemon.
    with running_daemon(tmp_path / "again", logs_dir=tmp_path / "logs", cwd=REPO) as again:
        with again.client() as http:
            listing = http.get("/api/agents").json()
            assert listing["count"] == 20
            assert {a["status"] for a in listing["agents"]} == {"stopped"}
            assert http.get("/api/agents/a3/logs").text == "up\n"
        stop(again)


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
        env=clean_environ(),
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
    with Child(
        [hypercorn, "-k", "trio", "-b", "127.0.0.1:0", "trio_wrapper.api.app:create_app()"],
        tmp_path / "hypercorn.out",
        env=clean_environ({"TRIO_WRAPPER_SERVER_LOGS_DIR": str(tmp_path / "logs")}),
        cwd=REPO,
    ) as proc:
        running = proc.wait_for_output(re.compile(r"Running on (http://127\.0\.0\.1:\d+)"), 20)
        with httpx.Client(base_url=running.group(1), timeout=10) as http:
            created = http.post("/api/agents", json={"name": "h", "command": ["sleep", "60"]})
            assert created.status_code == 201
            pid = created.json()["pid"]
        assert proc.stop(STOP_BOUND) == 0
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.fixture
def patient_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """Its stop grace and hypercorn's graceful timeout are far longer than STOP_BOUND: if
    it sat out either, it could not exit by itself within the bound."""
    waits = {
        "TRIO_WRAPPER_AGENTS_STOP_GRACE_SECONDS": "600",
        "TRIO_WRAPPER_SERVER_GRACEFUL_TIMEOUT_SECONDS": "600",
    }
    with running_daemon(tmp_path, env=waits, cwd=REPO) as d:
        yield d


def test_sigterm_with_100_stream_clients_exits_fast(patient_daemon: Daemon, tmp_path: Path) -> None:
    daemon = patient_daemon
    with daemon.client() as http:
        created = http.post("/api/agents", json={"name": "talker", "command": ["sleep", "60"]})
        assert created.status_code == 201
    clients = []
    try:
        for i in range(100):
            sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
            path = "/api/agents/talker/stream" if i % 2 else "/api/events"
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            clients.append(sock)
        for sock in clients:  # every stream is live: its `connected` event arrived
            data = b""
            while b"event: connected" not in data:
                chunk = sock.recv(4096)
                assert chunk, "stream closed before connecting"
                data += chunk
        # By itself, so neither the grace nor hypercorn's graceful timeout was waited out:
        # the agent dies at SIGTERM, and the streams end with a `shutdown` event instead of
        # holding hypercorn's graceful stop.
        stop(daemon)
        meta = meta_of(tmp_path, "talker")
        assert (meta["status"], meta["signal"]) == ("stopped", "SIGTERM"), meta
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


def test_a_sigterm_to_the_whole_group_stops_the_daemon_cleanly(tmp_path: Path) -> None:
    """A service manager or `make run` stopped may signal the daemon's whole group, its
    extraction worker with it: the worker leaves its end to the daemon (it ignores the
    signal and exits when the daemon closes its stdin), so no fault is logged."""
    daemon = Daemon(tmp_path, env=GRACE, cwd=REPO)
    with daemon:
        with daemon.client() as http:
            created = http.post("/api/agents", json={"name": "g", "command": ["true"]})
            assert created.status_code == 201, created.text
        # The worker is started in the background: the signal is sent once it has set up
        # (a SIGTERM in its first milliseconds, before the interpreter is up, still ends it).
        poll(lambda: ignores_sigterm(daemon.pid), STOP_BOUND, "the worker never came up")
        os.killpg(daemon.pid, signal.SIGTERM)
        assert daemon.process.wait(STOP_BOUND) == 0, daemon.log
    assert "extraction_worker_died" not in daemon.log, daemon.log
    assert "all agents stopped; bye" in daemon.log


def ignores_sigterm(daemon_pid: int) -> bool:
    """Whether a child of the daemon (its extraction worker) ignores SIGTERM yet."""
    children: list[str] = []
    for task in Path(f"/proc/{daemon_pid}/task").iterdir():
        with contextlib.suppress(OSError):
            children += (task / "children").read_text().split()
    for child in children:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("SigIgn:") and int(line.split()[1], 16) & (
                    1 << (signal.SIGTERM - 1)
                ):
                    return True
    return False
