"""The real daemon against real I/O faults: a 2 MiB tmpfs logs dir that fills up, the same
dir remounted read-only, and a log deleted under a flood (issue 15, items 1 and 6).

Mounting needs root (or CAP_SYS_ADMIN): without it those tests are skipped, and the
reason printed. Each mount is undone in teardown, after its daemon has stopped.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon import poll, running_daemon

GRACE = {"TRIO_WRAPPER_AGENTS_STOP_GRACE_SECONDS": "2"}
BOUND = 60.0  # only how long a hung daemon gets before the test fails


def mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def small_logs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs as the logs dir."""
    logs = tmp_path / "logs"
    logs.mkdir()
    done = mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(logs))
    if done.returncode != 0:
        why = done.stderr.strip() or f"exit status {done.returncode}"
        reason = f"cannot mount a 2 MiB tmpfs (needs root): {why}"
        print(reason)
        pytest.skip(reason)
    try:
        yield logs
    finally:
        if subprocess.run(["umount", str(logs)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(logs)], check=False)


def wait_status(http: httpx.Client, name: str, done: set[str]) -> Any:
    last: dict[str, Any] = {}

    def reached() -> Any:
        last["detail"] = http.get(f"/api/agents/{name}").json()
        return last["detail"] if last["detail"]["status"] in done else None

    return poll(reached, BOUND, lambda: f"{name} never reached {done}: {last}")


def dead(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def test_a_full_logs_dir_is_reported_refused_and_healed(tmp_path: Path, small_logs: Path) -> None:
    total = 10_000_000
    flood = ["sh", "-c", f"yes some-line | head -c {total}"]
    with (
        running_daemon(tmp_path, env=GRACE, logs_dir=small_logs) as daemon,
        daemon.client() as http,
    ):
        assert http.post("/api/agents", json={"name": "big", "command": flood}).status_code == 201
        detail = wait_status(http, "big", {"completed", "failed", "stopped"})
        # Its true exit, and the problem shown.
        assert (detail["status"], detail["exit_code"]) == ("completed", 0)
        assert detail["error"] == "cannot write stdout log: No space left on device"
        log = Path(detail["logs"]["stdout"])
        stdout = detail["streams"]["stdout"]
        # ``bytes`` is what the file holds, never more; the rest is counted lost.
        assert stdout["bytes"] == log.stat().st_size < total
        assert stdout["bytes"] + stdout["lost_bytes"] == total
        assert detail["bytes_processed"] == stdout["bytes"]
        assert list(small_logs.rglob("*.tmp")) == []

        # Disk still full: health says so though no agent runs.
        health = http.get("/api/health")
        assert health.status_code == 503, health.text
        assert any("is full" in problem for problem in health.json()["problems"])

        # A new agent is refused with the contract's error, and leaves nothing behind.
        late = http.post("/api/agents", json={"name": "late", "command": ["echo", "hi"]})
        assert late.status_code == 503, late.text
        assert late.json()["error"]["code"] == "logs_unwritable"
        assert "No space left on device" in late.json()["error"]["message"]
        assert not (small_logs / "agents" / "late").exists()
        assert list(small_logs.rglob("*.tmp")) == []
        assert not [p for p in small_logs.rglob("*-meta.json") if p.stat().st_size == 0]

        # Space returns: healthy again, and the run's meta file says how it ended.
        log.unlink()
        health = http.get("/api/health")
        assert health.status_code == 200, health.text
        (meta_path,) = (small_logs / "agents" / "big").glob("*-meta.json")
        meta = json.loads(meta_path.read_text())
        assert meta["status"] == "completed"
        assert meta["bytes"]["stdout"] + meta["lost_bytes"]["stdout"] == total
        assert meta["error"] == detail["error"]
        late = http.post("/api/agents", json={"name": "late", "command": ["echo", "hi"]})
        assert late.status_code == 201, late.text
        assert wait_status(http, "late", {"completed", "failed"})["status"] == "completed"
        assert "Traceback" not in daemon.log


def test_a_read_only_logs_dir_refuses_new_agents_with_json(
    tmp_path: Path, small_logs: Path
) -> None:
    with (
        running_daemon(tmp_path, env=GRACE, logs_dir=small_logs) as daemon,
        daemon.client() as http,
    ):
        remounted = mount("-o", "remount,ro", str(small_logs))
        assert remounted.returncode == 0, remounted.stderr
        try:
            refused = http.post("/api/agents", json={"name": "ro", "command": ["true"]})
            assert refused.status_code == 503, refused.text
            error = refused.json()["error"]
            assert error["code"] == "logs_unwritable"
            assert "Read-only file system" in error["message"]
            health = http.get("/api/health")
            assert health.status_code == 503
            assert any("not writable" in problem for problem in health.json()["problems"])
        finally:
            assert mount("-o", "remount,rw", str(small_logs)).returncode == 0
        assert http.get("/api/health").status_code == 200
        assert http.post("/api/agents", json={"name": "ro", "command": ["true"]}).status_code == 201
        assert wait_status(http, "ro", {"completed", "failed"})["status"] == "completed"
        assert "Traceback" not in daemon.log


def test_a_log_deleted_under_a_flood_harms_neither_daemon_nor_bystander(tmp_path: Path) -> None:
    # Issue 15, item 1, made deterministic: the flood waits for its input, so the log is
    # surely deleted before it starts (the issue's `sleep 2` raced the deletion).
    total = 100_000_000
    flood = ["sh", "-c", f"read go; yes some-line | head -c {total}"]
    with running_daemon(tmp_path, env=GRACE) as daemon, daemon.client(timeout=BOUND) as http:
        victim = http.post("/api/agents", json={"name": "victim", "command": flood, "stdin": True})
        assert victim.status_code == 201, victim.text
        bystander = http.post(
            "/api/agents", json={"name": "bystander", "command": ["cat"], "stdin": True}
        )
        assert bystander.status_code == 201, bystander.text
        Path(victim.json()["logs"]["stdout"]).unlink()
        sent = http.post("/api/agents/victim/input", json={"data": "go\n", "eof": True})
        assert sent.status_code == 200, sent.text
        detail = wait_status(http, "victim", {"completed", "failed", "stopped"})
        assert daemon.process.poll() is None, daemon.log
        assert (detail["status"], detail["exit_code"]) == ("completed", 0)
        # Read back through the daemon's own descriptor: every line made it.
        stdout = detail["streams"]["stdout"]
        assert (stdout["bytes"], stdout["lines"]) == (total, total // 10)
        assert stdout["unprocessed_bytes"] == 0
        assert detail["error"] == "stdout log was deleted while the agent ran"
        assert dead(victim.json()["pid"])
        assert http.get("/api/agents/bystander").json()["status"] == "running"
        sent = http.post("/api/agents/bystander/input", json={"data": "fine\n", "eof": True})
        assert sent.status_code == 200, sent.text
        assert wait_status(http, "bystander", {"completed", "failed"})["status"] == "completed"
        assert http.get("/api/health").status_code == 200
        assert "Traceback" not in daemon.log
