"""An agent's whole process tree: what escapes its group is still found, kept as part of
the run, and ended with it; the child's environment is an allow-list (issue 15, 2 and 3).

These run the supervisor in the test process, which is no subreaper: what escapes goes to
init, and is found by the run's session, its cookie and its ancestry (runtime.proctree).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest
import trio
import trio.testing

from tests.helpers import PY, make_config, wait_for
from trio_wrapper.api.errors import http_status
from trio_wrapper.core.errors import Refusal
from trio_wrapper.core.status import Status
from trio_wrapper.runtime import proctree, views
from trio_wrapper.runtime.agent import Agent, AgentSpec
from trio_wrapper.runtime.process import child_env, nothing_left_behind
from trio_wrapper.runtime.supervisor import Supervisor

NEVER = 3600.0  # a grace no test sits out: only signals end these stops
GUARD = 30.0  # against a hung test, not a measure of speed


def py(code: str) -> list[str]:
    return [PY, "-c", code]


# The escape patterns of the issue: each leaves a `sleep` outside the agent's group.
SETSID_SLEEP = ["setsid", "sleep", "300"]
SETSID_AND_WAIT = ["sh", "-c", "setsid sleep 300 & sleep 300"]
DOUBLE_FORK = py(
    "import os, time\n"
    "if os.fork() == 0:\n"
    "    if os.fork() == 0:\n"
    "        os.execvp('sleep', ['sleep', '300'])\n"
    "    os._exit(0)\n"
    "os.wait()\n"
    "time.sleep(300)\n"
)
FORK_SETSID = py(
    "import os, time\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    os.execvp('sleep', ['sleep', '300'])\n"
    "time.sleep(300)\n"
)
# Leaves the session with an empty environment (no cookie): found through its parent.
ENV_CLEARED = ["sh", "-c", "setsid env -i sleep 300 & sleep 300"]
ESCAPES = {
    "env-cleared": ENV_CLEARED,
    "setsid": SETSID_SLEEP,
    "setsid-bg": SETSID_AND_WAIT,
    "double-fork": DOUBLE_FORK,
    "fork-setsid": FORK_SETSID,
}


def alive(info: proctree.ProcInfo) -> bool:
    return proctree.alive(info.pid, info.start)


def kill_marked(*agents: Agent) -> None:
    """Teardown: whatever a failing test left of these runs goes (found by its cookie)."""
    for agent in agents:
        if agent.mark is not None:
            proctree.kill_tree(agent.mark, known=agent.known_processes)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Real time, plus what a test adds with ``jump``."""
    return trio.testing.MockClock(rate=1.0)


@pytest.fixture
def started() -> Iterator[list[Agent]]:
    agents: list[Agent] = []
    yield agents
    kill_marked(*agents)


@pytest.fixture
async def patient(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Supervisor]:
    sup = Supervisor(make_config(tmp_path, agents={"stop_grace_seconds": NEVER}))
    await nursery.start(sup.run)
    yield sup
    with trio.fail_after(GUARD):
        await sup.shutdown()


async def escaped(agent: Agent) -> list[proctree.ProcInfo]:
    """Wait until a `sleep` of the run has escaped (left the session, or lost its parent
    in the run); the run's processes."""
    found: list[proctree.ProcInfo] = []

    async def check() -> bool:
        found[:] = await agent.tree()
        pids = {p.pid for p in found}
        # Out of the session, or re-parented out of the run's tree (a double fork).
        return any(
            proctree.argv0(p.pid) == "sleep" and (p.sid != agent.pid or p.ppid not in pids)
            for p in found
        )

    with trio.fail_after(GUARD):
        while not await check():  # noqa: ASYNC110 - polling /proc, which has no event
            await trio.sleep(0.01)
    return found


@pytest.mark.parametrize("pattern", sorted(ESCAPES))
async def test_delete_ends_every_escape(
    patient: Supervisor, started: list[Agent], pattern: str
) -> None:
    agent = await patient.start(AgentSpec(pattern, ESCAPES[pattern]))
    started.append(agent)
    tree = await escaped(agent)
    assert agent.status is Status.RUNNING
    with trio.fail_after(GUARD):  # the grace never ends: SIGTERM to the tree ends the stop
        await patient.remove(pattern)
    assert agent.status is Status.STOPPED
    assert not [p for p in tree if alive(p)]
    assert await agent.tree() == []


@pytest.mark.parametrize("pattern", sorted(ESCAPES))
async def test_shutdown_ends_every_escape(
    nursery: trio.Nursery, tmp_path: Path, started: list[Agent], pattern: str
) -> None:
    sup = Supervisor(make_config(tmp_path, agents={"stop_grace_seconds": NEVER}))
    await nursery.start(sup.run)
    agent = await sup.start(AgentSpec(pattern, ESCAPES[pattern]))
    started.append(agent)
    tree = await escaped(agent)
    with trio.fail_after(GUARD):
        await sup.shutdown()
    assert agent.status is Status.STOPPED
    assert not [p for p in tree if alive(p)]


async def test_escape_ignoring_sigterm_is_killed_after_the_grace(
    supervisor: Supervisor, started: list[Agent], clock: trio.testing.MockClock
) -> None:
    code = (
        "import os, signal, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(300)\n"
    )
    agent = await supervisor.start(AgentSpec("stubborn", py(code)))
    started.append(agent)
    await wait_for(lambda: agent.stats["stdout"].lines == 1, GUARD)
    tree = await agent.tree()
    assert tree and agent.status is Status.RUNNING
    async with trio.open_nursery() as stopping:
        stopping.start_soon(supervisor.remove, "stubborn")
        await wait_for(lambda: agent.status is Status.STOPPING, GUARD)
        clock.jump(supervisor.config.agents.stop_grace_seconds)
    assert agent.status is Status.STOPPED
    assert not [p for p in tree if alive(p)]


async def test_a_run_stays_running_while_its_escaped_process_runs(
    supervisor: Supervisor, started: list[Agent], clock: trio.testing.MockClock
) -> None:
    # No extraction: without the fix nothing but the drain timer would stand before `completed`.
    agent = await supervisor.start(AgentSpec("lingers", SETSID_SLEEP, format="none"))
    started.append(agent)
    await escaped(agent)
    await wait_for(lambda: agent.exit_code == 0, GUARD)  # setsid(1) itself has exited
    clock.jump(60)  # far past any drain of the pipes after the first process's exit
    await trio.testing.wait_all_tasks_blocked(0.05)
    assert agent.status is Status.RUNNING and agent.is_live
    # Once the escaped process ends by itself, the run completes with the leader's code.
    for info in await agent.tree():
        os.kill(info.pid, signal.SIGKILL)
    await wait_for(lambda: not agent.is_live, GUARD)
    assert agent.status is Status.COMPLETED and agent.exit_code == 0


async def test_cancelling_a_run_kills_its_group_and_tree(
    tmp_path: Path, started: list[Agent]
) -> None:
    # Torn down without shutdown (as a test fixture does): nothing may outlive the owner.
    async with trio.open_nursery() as owner:
        sup = Supervisor(make_config(tmp_path))
        await owner.start(sup.run)
        agent = await sup.start(AgentSpec("owned", SETSID_AND_WAIT))
        started.append(agent)
        tree = await escaped(agent)
        owner.cancel_scope.cancel()
    assert len(tree) >= 2  # sh (or the sleep it became), the escaped sleep
    assert not [p for p in tree if alive(p)]


async def test_timeout_ends_the_escaped_tree(supervisor: Supervisor, started: list[Agent]) -> None:
    agent = await supervisor.start(AgentSpec("late", SETSID_SLEEP, timeout_seconds=0.5))
    started.append(agent)
    tree = await escaped(agent)
    await wait_for(lambda: not agent.is_live, GUARD)
    assert agent.status is Status.FAILED and agent.stop_reason == "timeout"
    assert not [p for p in tree if alive(p)]


# ---- the child's environment -----------------------------------------------------------------


async def test_the_child_env_is_an_allow_list(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[Agent]
) -> None:
    monkeypatch.setenv("TRIO_WRAPPER_AUTH_TOKEN", "s3cret-token")
    monkeypatch.setenv("UNLISTED_SECRET", "nope")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("XDG_CONFIG_HOME", "/tmp/xdg")
    # Listing the daemon's own variable does not pass it either.
    passthrough = ["PATH", "OPENAI_API_KEY", "XDG_*", "TRIO_WRAPPER_AUTH_TOKEN"]
    sup = Supervisor(make_config(tmp_path, agents={"env_passthrough": passthrough}))
    await nursery.start(sup.run)
    agent = await sup.start(AgentSpec("env", ["env"], env={"FOO": "bar"}))
    started.append(agent)
    await wait_for(lambda: not agent.is_live, GUARD)
    text = agent.files.log("stdout").read_text()
    env = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert "s3cret-token" not in text
    assert not [key for key in env if key.startswith("TRIO_WRAPPER_")]
    assert "UNLISTED_SECRET" not in env
    assert env["PATH"] == os.environ["PATH"]
    assert env["OPENAI_API_KEY"] == "sk-test" and env["XDG_CONFIG_HOME"] == "/tmp/xdg"
    assert env["FOO"] == "bar" and env["PYTHONUNBUFFERED"] == "1"
    assert agent.mark is not None and env[proctree.COOKIE_VAR] == agent.mark.cookie
    xdg = {key for key in os.environ if key.startswith("XDG_")}
    assert (
        set(env) == {"PATH", "OPENAI_API_KEY", "FOO", "PYTHONUNBUFFERED", proctree.COOKIE_VAR} | xdg
    )
    await sup.shutdown()


async def test_a_request_env_naming_the_daemons_settings_is_refused(
    supervisor: Supervisor,
) -> None:
    for key in ("TRIO_WRAPPER_AUTH_TOKEN", "trio_wrapper_auth_token"):
        with pytest.raises(Refusal) as info:
            await supervisor.start(AgentSpec("sneaky", ["env"], env={key: "x"}))
        assert (http_status(info.value), info.value.code) == (400, "invalid_request")
    assert "sneaky" not in supervisor.agents


def test_default_passthrough_keeps_the_session_and_the_clis_keys() -> None:
    environ = {
        "PATH": "/bin",
        "HOME": "/home/a",
        "LANG": "C.UTF-8",
        "LC_ALL": "C",
        "TERM": "xterm",
        "ANTHROPIC_API_KEY": "a",
        "GEMINI_API_KEY": "g",
        "TRIO_WRAPPER_AUTH_TOKEN": "t",
        "TRIO_WRAPPER_SERVER_PORT": "1",
        "AWS_SECRET_ACCESS_KEY": "x",
    }
    passthrough = make_config(Path("/nonexistent")).agents.env_passthrough
    env = child_env({}, passthrough, environ=environ)
    assert set(env) == {
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "TERM",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "PYTHONUNBUFFERED",
    }


# ---- after a crash: interrupted runs -----------------------------------------------------------


def crashed_run(logs: Path, name: str, **meta: object) -> Path:
    """A run whose daemon died while it ran: its meta still says `running`."""
    directory = logs / "agents" / name
    directory.mkdir(parents=True)
    record = {
        "name": name,
        "status": "running",
        "command": ["x"],
        "started_at": "2026-01-01T00:00:00.000+00:00",
        "bytes": {"stdout": 0, "stderr": 0},
        "lines": {"stdout": 0, "stderr": 0},
        **meta,
    }
    (directory / "2026-01-01-00-00-00-meta.json").write_text(json.dumps(record))
    return directory


async def test_an_interrupted_run_counts_what_its_logs_hold(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    directory = crashed_run(tmp_path / "logs", "cut")
    (directory / "2026-01-01-00-00-00-stdout.log").write_bytes(b"one\ntwo\nthree")
    (directory / "2026-01-01-00-00-00-stderr.log").write_bytes(b"oops\n")
    started = 1767225600.0  # 2026-01-01T00:00:00Z
    os.utime(directory / "2026-01-01-00-00-00-stdout.log", (started + 7.5, started + 7.5))
    os.utime(directory / "2026-01-01-00-00-00-stderr.log", (started + 2, started + 2))
    sup = Supervisor(make_config(tmp_path))
    await nursery.start(sup.run)
    agent = sup.agents["cut"]
    assert agent.status is Status.INTERRUPTED
    assert (agent.stats["stdout"].bytes, agent.stats["stdout"].lines) == (13, 3)
    assert (agent.stats["stderr"].bytes, agent.stats["stderr"].lines) == (5, 1)
    assert agent.line_num == 4 and agent.bytes_processed == 18
    assert agent.duration_seconds == pytest.approx(7.5)
    rewritten = json.loads((directory / "2026-01-01-00-00-00-meta.json").read_text())
    assert rewritten["bytes"] == {"stdout": 13, "stderr": 5}
    assert rewritten["duration_seconds"] == 7.5
    await sup.shutdown()


LEFT_COOKIE = "c0ffee" * 4


@pytest.fixture
def left_behind() -> Iterator[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]]:
    """The leader of a run whose daemon died (a shell with a child in its session), and a
    process it had sent off with setsid; all carry the run's cookie. Killed on the way out."""
    env = {**os.environ, proctree.COOKIE_VAR: LEFT_COOKIE}
    leader = subprocess.Popen(["sh", "-c", "sleep 302 & wait"], start_new_session=True, env=env)
    escaped = subprocess.Popen(["sleep", "301"], start_new_session=True, env=env)
    deadline = time.monotonic() + GUARD
    while not [p for p in proctree.snapshot().values() if p.ppid == leader.pid]:
        assert time.monotonic() < deadline, "the shell started no child"
        time.sleep(0.01)
    yield leader, escaped
    for info in proctree.members(proctree.TreeMark(leader.pid, cookie=LEFT_COOKIE)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGKILL)
    for process in (leader, escaped):
        process.kill()
        process.wait()


async def test_an_interrupted_runs_leftovers_are_reported_and_killed(
    nursery: trio.Nursery,
    tmp_path: Path,
    left_behind: tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]],
) -> None:
    leader, escaped = left_behind
    start = proctree.start_ticks(leader.pid)
    crashed_run(
        tmp_path / "logs",
        "left",
        pid=leader.pid,
        pid_start_ticks=start,
        session_id=leader.pid,
        boot_id=proctree.boot_id(),
        run_cookie=LEFT_COOKIE,
    )
    # A run whose pid was reused: a start time that is not its own finds nothing, not even
    # the members of the session that number now names.
    crashed_run(tmp_path / "logs", "reused", pid=leader.pid, pid_start_ticks=(start or 0) - 1)
    sup = Supervisor(make_config(tmp_path))
    await nursery.start(sup.run)
    agent = sup.agents["left"]
    orphans = views.detail(agent).orphans
    assert isinstance(orphans, list)
    assert len(orphans) == 3  # the shell, its child in its session, the escaped one
    assert {leader.pid, escaped.pid} <= {o.pid for o in orphans}
    assert {o.argv0 for o in orphans} == {"sh", "sleep"}
    assert agent.problem is not None and "DELETE kills them" in agent.problem
    assert views.detail(sup.agents["reused"]).orphans is msgspec.UNSET
    with trio.fail_after(GUARD):
        await sup.remove("left")
    assert views.deleted(agent).message == "agent stopped; killed 3 leftover process(es)"
    assert leader.wait(GUARD) == -signal.SIGKILL
    assert escaped.wait(GUARD) == -signal.SIGKILL
    await sup.shutdown()


def test_nothing_left_behind_says_so_only_where_it_can_know(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # This process is no subreaper: orphans go elsewhere, so only a look at the tree knows.
    assert not proctree.is_subreaper()
    assert nothing_left_behind() is False
    # As a subreaper, a live child in a session of its own that no run claims as its
    # leader (what a run left behind and the subreaper took in) means "look".
    monkeypatch.setattr(proctree, "_subreaper", True)
    stray = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        assert nothing_left_behind() is False
    finally:
        stray.kill()
        stray.wait()
