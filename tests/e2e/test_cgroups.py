"""A cgroup per agent with the real daemon, where this machine lets one be made: what an
agent starts cannot leave it (a new session with an empty environment whose parent is
gone), a DELETE ends it, the CPU is reported, and after the daemon is SIGKILLed a restart
finds through the cgroup what nothing else could name."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon import Daemon, poll, running_daemon
from trio_wrapper.core.cgroups import cgroup2_mount, own_cgroup

pytestmark = pytest.mark.e2e

GRACE = {"TRIO_WRAPPER_AGENTS_STOP_GRACE_SECONDS": "2", "TRIO_WRAPPER_AGENTS_CGROUPS": "true"}
BOUND = 20.0  # how long a hung wait gets before the test fails; not a figure
# The leader's child leaves its session, clears its environment (no cookie) and is
# orphaned at once: /proc tracking has nothing to find it by.
VANISHING = ["sh", "-c", "setsid env -i sleep 300 & exit 0"]


def cgroups_here() -> str | None:
    """Why this machine cannot give agents cgroups, or None if it can."""
    try:
        mount = cgroup2_mount(Path("/proc/self/mountinfo").read_text())
        own = own_cgroup(Path("/proc/self/cgroup").read_text())
    except OSError as exc:
        return f"cannot read /proc: {exc}"
    if mount is None or own is None:
        return "no cgroup v2 hierarchy here"
    probe = Path(mount) / own.lstrip("/") / f"trio-wrapper-test.{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        return f"cannot make a cgroup under {probe.parent}: {exc.strerror}"
    return None


@pytest.fixture(autouse=True)
def need_cgroups() -> None:
    why_not = cgroups_here()
    if why_not is not None:
        pytest.skip(f"no cgroup for agents on this machine: {why_not}")


def procs(cgroup: str) -> list[int]:
    try:
        return [int(p) for p in Path(cgroup, "cgroup.procs").read_text().split()]
    except OSError:
        return []


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def start(http: httpx.Client, name: str, command: list[str]) -> dict[str, Any]:
    created = http.post("/api/agents", json={"name": name, "command": command})
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


def escaped(cgroup: str) -> list[int]:
    """The sleep that left: in the cgroup, and the only one there once the shell is gone."""

    def only_sleep() -> list[int] | None:
        pids = procs(cgroup)
        names = [Path(f"/proc/{p}/comm").read_text().strip() for p in pids if running(p)]
        return pids if names == ["sleep"] else None

    return poll(only_sleep, BOUND, f"no lone sleep in {cgroup}")


@pytest.fixture
def sleepers() -> Iterator[list[int]]:
    """What a failed test would leave running is killed."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if running(pid):
            os.kill(pid, signal.SIGKILL)


def test_an_escape_stays_in_the_cgroup_and_delete_ends_it(
    tmp_path: Path, sleepers: list[int]
) -> None:
    with running_daemon(tmp_path, env=GRACE) as daemon, daemon.client() as http:
        start(http, "gone", VANISHING)
        cgroup = http.get("/api/agents/gone").json()["resources"]["cgroup"]
        (sleep,) = escaped(cgroup)
        sleepers.append(sleep)
        # Its first process exited at once; what it left still runs, so the run does too.
        detail = http.get("/api/agents/gone").json()
        assert detail["status"] == "running", detail
        deleted = http.delete("/api/agents/gone")
        assert deleted.status_code == 200, deleted.text
        assert "killed 1 leftover" in deleted.json()["message"]
        assert not running(sleep)
        assert not Path(cgroup).exists()
    # The daemon's own parent cgroup went with it.
    assert not Path(cgroup).parent.exists()


def test_cpu_time_is_reported_and_kept(tmp_path: Path) -> None:
    busy = ["sh", "-c", "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done"]
    with running_daemon(tmp_path, env=GRACE) as daemon, daemon.client() as http:
        start(http, "busy", busy)
        detail = poll(
            lambda: (d := http.get("/api/agents/busy").json())["status"] == "completed" and d,
            BOUND,
            "busy never completed",
        )
        resources = detail["resources"]
        assert resources["cpu_seconds"] > 0.01, resources
        assert not Path(resources["cgroup"]).exists()  # removed once the run ended
        (meta_path,) = (tmp_path / "logs" / "agents" / "busy").glob("*-meta.json")
        meta = json.loads(meta_path.read_text())
        assert meta["cpu_seconds"] == resources["cpu_seconds"]
        assert meta["cgroup"] == resources["cgroup"]


def test_after_a_crash_the_cgroup_names_what_is_left(tmp_path: Path, sleepers: list[int]) -> None:
    logs = tmp_path / "logs"
    first = Daemon(tmp_path / "first", env=GRACE, logs_dir=logs)
    first.start()
    try:
        with first.client() as http:
            start(http, "left", VANISHING)
            cgroup = http.get("/api/agents/left").json()["resources"]["cgroup"]
            (sleep,) = escaped(cgroup)
            sleepers.append(sleep)
    finally:
        assert first.child is not None
        first.child.stop(BOUND, signal.SIGKILL)  # a crash: no shutdown, the agent lives on
    assert running(sleep)
    with (
        running_daemon(tmp_path / "second", env=GRACE, logs_dir=logs) as second,
        second.client() as http,
    ):
        detail = http.get("/api/agents/left").json()
        assert detail["status"] == "interrupted"
        assert [o["pid"] for o in detail["orphans"]] == [sleep]
        deleted = http.delete("/api/agents/left")
        assert deleted.status_code == 200, deleted.text
        assert "killed 1 leftover" in deleted.json()["message"]
        assert not running(sleep)
        assert not Path(cgroup).exists()
        # The dead daemon's parent cgroup is cleared with its last run.
        assert not Path(cgroup).parent.exists()
