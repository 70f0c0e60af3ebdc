"""Real child processes under a real supervisor (no HTTP)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from tests.helpers import PY, make_config, wait_for
from trio_wrapper.api.errors import http_status
from trio_wrapper.core.errors import Refusal
from trio_wrapper.core.lines import LineBatch
from trio_wrapper.core.status import Status
from trio_wrapper.runtime.agent import Agent, AgentSpec, StdinClosed
from trio_wrapper.runtime.supervisor import Supervisor


def py(code: str) -> list[str]:
    return [PY, "-c", code]


async def finished(agent: Agent, limit: float = 10.0) -> Agent:
    await wait_for(lambda: not agent.is_live, limit)
    return agent


def meta(agent: Agent) -> dict[str, object]:
    data: dict[str, object] = json.loads(agent.files.meta.read_text())
    return data


def states(agent: Agent) -> list[tuple[str, str]]:
    """The run's status changes as its events file has them: (state, detail)."""
    events = map(json.loads, agent.files.events.read_text().splitlines())
    return [(e["state"], e["detail"]) for e in events if e.get("type") == "state"]


def output(agent: Agent) -> list[str]:
    return agent.files.log("stdout").read_text().splitlines()


def dead(pid: int) -> bool:
    """Gone, or a zombie its new parent has not reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


# No test outlives this grace: a stop that sat it out would hang, not merely be slow, and
# GUARD (a timeout against a hung test, not a measure of speed) turns that into a failure.
# Where the grace must end, the test's clock jumps over it.
NEVER = 3600.0
GUARD = 30.0


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Real time, plus what the test adds with ``jump``: a grace ends when the test says."""
    return trio.testing.MockClock(rate=1.0)


@pytest.fixture
async def patient(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Supervisor]:
    """A supervisor whose stop grace never runs out during a test."""
    sup = Supervisor(make_config(tmp_path, agents={"stop_grace_seconds": NEVER}))
    await nursery.start(sup.run)
    yield sup
    with trio.fail_after(GUARD):
        await sup.shutdown()


async def test_prints_and_exits_zero(supervisor: Supervisor) -> None:
    agent = await supervisor.start(
        AgentSpec("ok", py("import sys; print('hello'); print('oops', file=sys.stderr)"))
    )
    assert agent.status is Status.RUNNING
    await finished(agent)
    assert agent.status is Status.COMPLETED
    assert agent.exit_code == 0
    assert agent.files.log("stdout").read_bytes() == b"hello\n"
    assert agent.files.log("stderr").read_bytes() == b"oops\n"
    assert agent.stats["stdout"].lines == 1 and agent.stats["stderr"].lines == 1
    assert agent.line_num == 2 and agent.bytes_processed == 11
    recorded = meta(agent)
    assert recorded["status"] == "completed" and recorded["exit_code"] == 0
    assert recorded["command"] == agent.spec.command
    assert recorded["completed_at"] is not None
    states = [json.loads(line)["state"] for line in agent.files.events.read_text().splitlines()]
    assert states == ["running", "completed"]


async def test_nonzero_exit_is_failed(supervisor: Supervisor) -> None:
    agent = await finished(await supervisor.start(AgentSpec("three", py("raise SystemExit(3)"))))
    assert agent.status is Status.FAILED
    assert agent.exit_code == 3
    assert meta(agent)["exit_code"] == 3


async def test_killed_by_a_signal_not_from_us_is_failed(supervisor: Supervisor) -> None:
    code = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    agent = await finished(await supervisor.start(AgentSpec("sig", py(code))))
    assert agent.status is Status.FAILED
    assert agent.exit_signal == "SIGKILL"
    assert agent.exit_code is None


async def test_missing_executable_is_not_registered(supervisor: Supervisor) -> None:
    with pytest.raises(Refusal) as info:
        await supervisor.start(AgentSpec("ghost", ["/nonexistent/agent-cli"]))
    assert http_status(info.value) == 422 and info.value.code == "spawn_failed"
    assert "ghost" not in supervisor.agents
    assert supervisor.failed_starts == 1
    assert not (supervisor.logs_dir / "agents" / "ghost").exists()


async def test_stop_sends_sigterm_to_the_group(patient: Supervisor) -> None:
    agent = await patient.start(AgentSpec("sleeper", ["sleep", "60"]))
    with trio.fail_after(GUARD):  # the grace never ends: only the SIGTERM can end the stop
        await patient.remove("sleeper")
    assert agent.status is Status.STOPPED
    assert agent.exit_signal == "SIGTERM"
    assert states(agent)[-2:] == [
        ("stopping", "stop requested (api)"),
        ("stopped", "killed by SIGTERM"),
    ]
    assert "sleeper" not in patient.agents
    assert meta(agent)["deleted_at"]


async def test_sigterm_ignored_means_sigkill_after_grace(
    supervisor: Supervisor, clock: trio.testing.MockClock
) -> None:
    # It notes the SIGTERM and goes on echoing its input: alive, and able to say so.
    code = (
        "import signal, sys\n"
        "signal.signal(signal.SIGTERM, lambda *_: print('term', flush=True))\n"
        "print('ready', flush=True)\n"
        "for line in sys.stdin: print(line.strip(), flush=True)\n"
    )
    agent = await supervisor.start(AgentSpec("stubborn", py(code), stdin=True))
    await wait_for(lambda: output(agent) == ["ready"])
    margin = 60.0  # of the grace left when the child proves it lives: far more than that takes
    async with trio.open_nursery() as stopping:
        stopping.start_soon(agent.stop, NEVER)
        await wait_for(lambda: output(agent) == ["ready", "term"])  # the SIGTERM came first
        clock.jump(NEVER - margin)
        await agent.write_input(b"alive\n", eof=False, write_timeout=GUARD)
        await wait_for(lambda: output(agent) == ["ready", "term", "alive"])
        assert agent.status is Status.STOPPING and agent.exit_signal is None
        clock.jump(margin)  # the grace is over
        await finished(agent, GUARD)
    assert agent.status is Status.STOPPED
    assert agent.exit_signal == "SIGKILL"
    assert states(agent)[-2:] == [
        ("stopping", "stop requested (api)"),
        ("stopped", "killed by SIGKILL"),
    ]


async def test_grandchild_holding_stdout_is_killed_with_the_group(patient: Supervisor) -> None:
    # The shell backgrounds a `sleep` that inherits stdout, then waits: killing only the
    # shell would leave the reader blocked on the grandchild's copy of the pipe.
    agent = await patient.start(AgentSpec("family", ["sh", "-c", "sleep 300 & echo $! ; wait"]))
    await wait_for(lambda: agent.stats["stdout"].lines == 1)
    grandchild = int(agent.files.log("stdout").read_text().strip())
    assert not dead(grandchild)
    with trio.fail_after(GUARD):  # the grace never ends: only the group's death ends the stop
        await patient.remove("family")
    assert agent.status is Status.STOPPED
    assert agent.exit_signal == "SIGTERM"
    # Signalled with the group; its new parent (init) reaps it on its own time.
    await wait_for(lambda: dead(grandchild), GUARD)


async def test_exit_with_grandchild_still_running_keeps_the_run_running(
    supervisor: Supervisor,
) -> None:
    # The run is its whole tree (docs/decisions.md): the shell's exit code is kept, the
    # status stays `running` while its grandchild runs, and a stop ends both.
    code = "sleep 300 & echo $!; exit 0"
    agent = await supervisor.start(AgentSpec("leaver", ["sh", "-c", code], format="none"))
    await wait_for(lambda: agent.exit_code == 0 and agent.stats["stdout"].lines == 1, limit=5)
    grandchild = int(agent.files.log("stdout").read_text().strip())
    assert agent.status is Status.RUNNING and agent.is_live
    await supervisor.remove("leaver")
    assert not agent.is_live and agent.status is Status.STOPPED
    await wait_for(lambda: dead(grandchild), GUARD)


async def test_five_megabyte_line_without_newline(supervisor: Supervisor) -> None:
    size = 5 * 1024 * 1024
    code = f"import sys; sys.stdout.buffer.write(b'x' * {size})"
    agent = await finished(await supervisor.start(AgentSpec("big", py(code))), 30)
    assert agent.status is Status.COMPLETED
    assert agent.files.log("stdout").stat().st_size == size
    cap = supervisor.config.limits.max_line_bytes
    assert agent.stats["stdout"].lines == -(-size // cap)
    assert agent.stats["stdout"].bytes == size


async def test_non_utf8_bytes_are_logged_byte_identical(supervisor: Supervisor) -> None:
    payload = bytes(range(256)) * 40 + b"\xff\xfe\r\n\x00tail"
    code = f"import sys; sys.stdout.buffer.write({payload!r})"
    agent = await finished(await supervisor.start(AgentSpec("bin", py(code))))
    assert agent.files.log("stdout").read_bytes() == payload


async def test_stdin_round_trip(supervisor: Supervisor) -> None:
    code = "import sys\nfor line in sys.stdin: print('echo:' + line.strip(), flush=True)\n"
    agent = await supervisor.start(AgentSpec("cat", py(code), stdin=True))
    assert agent.stdin_open
    await agent.write_input(b"first\nsecond\n", eof=False, write_timeout=5)
    await wait_for(lambda: agent.stats["stdout"].lines == 2)
    await agent.write_input(b"", eof=True, write_timeout=5)
    await finished(agent)
    assert agent.files.log("stdout").read_bytes() == b"echo:first\necho:second\n"
    assert agent.status is Status.COMPLETED
    with pytest.raises(StdinClosed):
        await agent.write_input(b"late\n", eof=False, write_timeout=5)


async def test_stdin_not_requested_is_closed(supervisor: Supervisor) -> None:
    agent = await supervisor.start(AgentSpec("nostdin", ["sleep", "30"]))
    with pytest.raises(StdinClosed):
        await agent.write_input(b"x", eof=False, write_timeout=1)
    await supervisor.remove("nostdin")


async def test_pty_output_and_input(supervisor: Supervisor) -> None:
    code = (
        "import sys\n"
        "print('tty' if sys.stdout.isatty() else 'pipe', flush=True)\n"
        "print('got ' + input(), flush=True)\n"
    )
    agent = await supervisor.start(AgentSpec("tty", py(code), pty=True, stdin=True))
    await wait_for(lambda: agent.stats["stdout"].lines >= 1)
    await agent.write_input(b"word\n", eof=False, write_timeout=5)
    await finished(agent)
    text = agent.files.log("stdout").read_bytes()
    assert text.startswith(b"tty\r\n")
    assert b"got word\r\n" in text
    assert agent.status is Status.COMPLETED


async def test_timeout_stops_the_agent_as_failed(supervisor: Supervisor) -> None:
    agent = await supervisor.start(AgentSpec("slow", ["sleep", "30"], timeout_seconds=0.3))
    await finished(agent, 5)
    assert agent.status is Status.FAILED
    assert agent.stop_reason == "timeout"
    assert agent.exit_signal == "SIGTERM"


async def test_env_cwd_and_unbuffered(supervisor: Supervisor, tmp_path: Path) -> None:
    code = "import os; print(os.environ['FOO'], os.environ['PYTHONUNBUFFERED'], os.getcwd())"
    agent = await finished(
        await supervisor.start(AgentSpec("env", py(code), cwd=str(tmp_path), env={"FOO": "bar"}))
    )
    assert agent.files.log("stdout").read_text().split() == ["bar", "1", str(tmp_path)]


async def test_missing_cwd_is_spawn_failed(supervisor: Supervisor, tmp_path: Path) -> None:
    with pytest.raises(Refusal) as info:
        await supervisor.start(AgentSpec("nocwd", ["true"], cwd=str(tmp_path / "absent")))
    assert info.value.code == "spawn_failed"


async def test_name_taken_and_freed_by_remove(supervisor: Supervisor) -> None:
    await supervisor.start(AgentSpec("dup", ["sleep", "30"]))
    with pytest.raises(Refusal) as info:
        await supervisor.start(AgentSpec("dup", ["true"]))
    assert info.value.code == "agent_exists"
    await supervisor.remove("dup")
    again = await finished(await supervisor.start(AgentSpec("dup", ["true"])))
    assert again.status is Status.COMPLETED


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, int, bytes]] = []
        self.states: list[Status] = []
        self.removed: list[str] = []

    def on_lines(self, agent: Agent, stream: str, first_line_num: int, batch: LineBatch) -> None:
        for offset, line in enumerate(batch.lines):
            self.lines.append((stream, first_line_num + offset, line))

    def on_status(self, agent: Agent, old: Status | None, new: Status) -> None:
        self.states.append(new)

    def on_removed(self, agent: Agent) -> None:
        self.removed.append(agent.name)


async def test_observers_see_every_line_numbered_in_read_order(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    recorder = Recorder()
    sup = Supervisor(make_config(tmp_path), observers=[recorder])
    await nursery.start(sup.run)
    code = (
        "import sys\n"
        "for i in range(500):\n"
        "    print(i, flush=True)\n"
        "    print(-i, file=sys.stderr, flush=True)\n"
    )
    agent = await finished(await sup.start(AgentSpec("obs", py(code))))
    assert [n for _, n, _ in recorder.lines] == list(range(1, 1001))
    assert agent.line_num == 1000
    out = [int(line) for s, _, line in recorder.lines if s == "stdout"]
    assert out == list(range(500))
    assert recorder.states == [Status.RUNNING, Status.COMPLETED]
    await sup.remove("obs")
    assert recorder.removed == ["obs"]
    await sup.shutdown()


async def test_too_many_agents_and_allowed_commands(nursery: trio.Nursery, tmp_path: Path) -> None:
    config = make_config(tmp_path, limits={"max_agents": 1}, agents={"allowed_commands": ["sleep"]})
    sup = Supervisor(config)
    await nursery.start(sup.run)
    with pytest.raises(Refusal) as info:
        await sup.start(AgentSpec("nope", ["/bin/sleep", "1"]))
    assert (http_status(info.value), info.value.code) == (403, "command_not_allowed")
    await sup.start(AgentSpec("one", ["sleep", "30"]))
    with pytest.raises(Refusal) as info:
        await sup.start(AgentSpec("two", ["sleep", "30"]))
    assert (http_status(info.value), info.value.code) == (429, "too_many_agents")
    await sup.shutdown()


class _Order:
    """An observer that keeps every status change of every agent, in the order made."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, Status]] = []

    def on_lines(self, agent: Agent, stream: str, first_line_num: int, batch: LineBatch) -> None:
        pass

    def on_status(self, agent: Agent, old: Status | None, new: Status) -> None:
        self.changes.append((agent.name, new))

    def on_removed(self, agent: Agent) -> None:
        pass

    def on_records(self, agent: Agent, found: object, counts_by_type: object) -> None:
        pass


async def test_shutdown_stops_twenty_agents_within_grace(
    nursery: trio.Nursery, tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    order = _Order()
    sup = Supervisor(make_config(tmp_path, agents={"stop_grace_seconds": NEVER}), [order])
    await nursery.start(sup.run)
    stubborn = py(
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True); time.sleep(60)"
    )
    agents = [
        await sup.start(AgentSpec(f"a{i}", stubborn if i % 2 else ["sleep", "60"]))
        for i in range(20)
    ]
    sleepers, stubborns = agents[::2], agents[1::2]
    await wait_for(lambda: all(output(a) == ["ready"] for a in stubborns))  # SIGTERM ignored
    done = trio.Event()

    async def shut_down() -> None:
        await sup.shutdown()
        done.set()

    nursery.start_soon(shut_down)
    # The SIGTERM ends the sleepers while the stubborn ones sit out the grace...
    await wait_for(lambda: not any(a.is_live for a in sleepers), GUARD)
    assert all(a.is_live and a.status is Status.STOPPING for a in stubborns)
    clock.jump(NEVER)
    with trio.fail_after(GUARD):  # ...one grace, which ends them all: they share it
        await done.wait()
    assert all(a.status is Status.STOPPED and not a.is_live for a in agents)
    assert {a.exit_signal for a in sleepers} == {"SIGTERM"}
    assert {a.exit_signal for a in stubborns} == {"SIGKILL"}
    for agent in agents:
        assert states(agent)[-2:] == [
            ("stopping", "stop requested (shutdown)"),
            ("stopped", f"killed by {agent.exit_signal}"),
        ]
    # Every stop began before any ended: none waited for another.
    ends = [new for _, new in order.changes if new in (Status.STOPPING, Status.STOPPED)]
    assert ends == [Status.STOPPING] * 20 + [Status.STOPPED] * 20


async def test_restart_lists_previous_runs_and_interrupted(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    config = make_config(tmp_path)
    first = Supervisor(config)
    await nursery.start(first.run)
    done = await finished(await first.start(AgentSpec("done", py("print('x')"))))
    gone = await first.start(AgentSpec("gone", ["true"]))
    await finished(gone)
    await first.remove("gone")
    await first.shutdown()
    # A run whose daemon died: its meta still says running.
    crashed = tmp_path / "logs" / "agents" / "crashed"
    crashed.mkdir(parents=True)
    (crashed / "2026-01-01-00-00-00-meta.json").write_text(
        json.dumps(
            {
                "name": "crashed",
                "status": "running",
                "command": ["x"],
                "started_at": "2026-01-01T00:00:00+00:00",
                "completed_at": None,
                "exit_code": None,
            }
        )
    )
    second = Supervisor(config)
    await nursery.start(second.run)
    assert set(second.agents) == {"done", "crashed"}
    restored = second.agents["done"]
    assert restored.status is Status.COMPLETED and restored.exit_code == 0
    assert restored.stats["stdout"].bytes == done.stats["stdout"].bytes
    assert restored.files.log("stdout").read_bytes() == b"x\n"
    assert second.agents["crashed"].status is Status.INTERRUPTED
    rewritten = json.loads((crashed / "2026-01-01-00-00-00-meta.json").read_text())
    assert rewritten["status"] == "interrupted"
    await second.remove("crashed")
    await second.shutdown()


async def test_same_second_runs_get_distinct_files(supervisor: Supervisor) -> None:
    a = await finished(await supervisor.start(AgentSpec("twice", ["echo", "1"])))
    await supervisor.remove("twice")
    b = await finished(await supervisor.start(AgentSpec("twice", ["echo", "2"])))
    assert a.files.log("stdout") != b.files.log("stdout")
    assert a.files.log("stdout").read_bytes() == b"1\n"
    assert b.files.log("stdout").read_bytes() == b"2\n"


async def test_capture_is_complete_for_a_large_output(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    source = tmp_path / "big.txt"
    source.write_bytes(b"".join(b"line %d of the transcript\n" % i for i in range(200_000)))
    agent = await finished(await supervisor.start(AgentSpec("cat", ["cat", str(source)])), 30)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert hashlib.sha256(agent.files.log("stdout").read_bytes()).hexdigest() == digest
    assert agent.stats["stdout"].lines == 200_000


async def test_descriptors_are_released(supervisor: Supervisor) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for i in range(10):
        await finished(await supervisor.start(AgentSpec(f"fd{i}", ["echo", "x"])))
        await supervisor.remove(f"fd{i}")
    running = await supervisor.start(AgentSpec("fdrun", ["sleep", "30"]))
    await supervisor.remove("fdrun")
    assert running.status is Status.STOPPED
    assert len(os.listdir("/proc/self/fd")) <= before


def test_signal_names_are_recorded_as_names() -> None:
    assert signal.Signals(9).name == "SIGKILL"


class _StateSeen:
    """An observer that keeps the detail of every status the SSE hub would publish."""

    def __init__(self) -> None:
        self.details: list[tuple[str, str]] = []

    def on_lines(self, agent: Agent, stream: str, first_line_num: int, batch: LineBatch) -> None:
        pass

    def on_status(self, agent: Agent, old: Status | None, new: Status) -> None:
        self.details.append((new.value, agent.status_detail))

    def on_removed(self, agent: Agent) -> None:
        pass

    def on_records(self, agent: Agent, found: object, counts_by_type: object) -> None:
        pass


async def test_a_stopped_runs_detail_is_the_same_in_its_file_and_on_the_stream(
    supervisor: Supervisor,
) -> None:
    seen = _StateSeen()
    supervisor.observers.append(seen)
    agent = await supervisor.start(AgentSpec("stopme", ["sleep", "30"]))
    await agent.stop(grace=5.0)
    await finished(agent)
    assert agent.status is Status.STOPPED
    in_file = [
        (event["state"], event["detail"])
        for event in map(json.loads, agent.files.events.read_text().splitlines())
    ]
    assert in_file == seen.details
    assert in_file[-2:] == [
        ("stopping", "stop requested (api)"),
        ("stopped", "killed by SIGTERM"),
    ]
