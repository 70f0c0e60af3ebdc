"""Stop, restart, forced and bulk DELETE, and a name's runs, on a real supervisor."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from tests.helpers import PY, make_config, wait_for
from trio_wrapper.core.errors import Refusal
from trio_wrapper.core.status import Status
from trio_wrapper.runtime.agent import Agent, AgentSpec
from trio_wrapper.runtime.supervisor import Supervisor

# The stop grace never runs out during a test: only a forced stop can end a child that
# ignores SIGTERM, and GUARD (a bound against a hung test, not a measure) says if it did not.
NEVER = 3600.0
GUARD = 30.0
STUBBORN = [
    PY,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True); time.sleep(600)",
]


@pytest.fixture
async def patient(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Supervisor]:
    sup = Supervisor(make_config(tmp_path, agents={"stop_grace_seconds": NEVER}))
    await nursery.start(sup.run)
    yield sup
    for agent in list(sup.agents.values()):
        if agent.is_live:
            await agent.stop(0.0)
    with trio.fail_after(GUARD):
        await sup.shutdown()


async def stubborn(sup: Supervisor, name: str) -> Agent:
    agent = await sup.start(AgentSpec(name, STUBBORN))
    await wait_for(lambda: agent.files.log("stdout").read_bytes() == b"ready\n", GUARD)
    return agent


async def finished(agent: Agent) -> Agent:
    await wait_for(lambda: not agent.is_live, GUARD)
    return agent


def states(agent: Agent) -> list[str]:
    events = map(json.loads, agent.files.events.read_text().splitlines())
    return [e["state"] for e in events if "line_num" not in e]


async def test_forced_stop_skips_the_grace_and_the_agent_stays_listed(
    patient: Supervisor,
) -> None:
    agent = await stubborn(patient, "hard")
    with trio.fail_after(GUARD):  # the grace never ends: only the force can end the stop
        stopped = await patient.stop("hard", force=True)
    assert stopped is agent and agent.status is Status.STOPPED
    assert agent.exit_signal == "SIGKILL" and agent.stop_reason == "api"
    assert patient.agents["hard"] is agent
    # Stopping what has ended already changes nothing.
    await patient.stop("hard")
    assert agent.status is Status.STOPPED and states(agent)[-1] == "stopped"


async def test_a_forced_delete_cuts_short_one_waiting_out_its_grace(
    patient: Supervisor,
) -> None:
    agent = await stubborn(patient, "held")
    removed: list[Agent] = []
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:

            async def patient_delete() -> None:
                removed.append(await patient.remove("held"))

            nursery.start_soon(patient_delete)
            await wait_for(lambda: agent.status is Status.STOPPING, GUARD)
            assert agent.is_live  # SIGTERM ignored: the plain DELETE waits its grace
            removed.append(await patient.remove("held", force=True))
    assert removed == [agent, agent]
    assert agent.status is Status.STOPPED and agent.exit_signal == "SIGKILL"
    assert "held" not in patient.agents


async def test_restart_is_a_new_run_and_keeps_the_old_one(supervisor: Supervisor) -> None:
    spec = AgentSpec("again", [PY, "-c", "print('hi')"], env={"X": "1"})
    first = await finished(await supervisor.start(spec))
    second = await supervisor.restart("again")
    assert second is not first and supervisor.agents["again"] is second
    assert second.spec == first.spec  # the same command, env included
    assert second.files.stamp != first.files.stamp
    await finished(second)
    runs = await supervisor.runs("again")
    assert [run.files.stamp for run in runs] == [second.files.stamp, first.files.stamp]
    assert runs[0] is second  # the listed run as it is now
    assert runs[1].status is Status.COMPLETED and runs[1].stats["stdout"].bytes == 3
    assert first.files.log("stdout").read_bytes() == b"hi\n"
    # Both runs by their ids.
    assert await supervisor.run_of("again", second.files.stamp) is second
    past = await supervisor.run_of("again", first.files.stamp)
    assert past.exit_code == 0 and past.files == first.files


async def test_restart_stops_a_running_agent_first(patient: Supervisor) -> None:
    old = await stubborn(patient, "busy")
    with trio.fail_after(GUARD):
        new = await patient.restart("busy", force=True)
    assert old.status is Status.STOPPED and not old.is_live
    assert new.is_live and patient.agents["busy"] is new
    assert states(old)[-2:] == ["stopping", "stopped"]
    await new.stop(0.0)


async def test_restart_of_an_unknown_or_deleted_name(supervisor: Supervisor) -> None:
    with pytest.raises(Refusal) as refused:
        await supervisor.restart("nobody")
    assert refused.value.code == "agent_not_found"
    await finished(await supervisor.start(AgentSpec("gone", ["true"])))
    await supervisor.remove("gone")
    with pytest.raises(Refusal):
        await supervisor.restart("gone")
    # Its run is still on disk.
    (run,) = await supervisor.runs("gone")
    assert run.status is Status.COMPLETED


async def test_delete_many_by_status(patient: Supervisor) -> None:
    done = await finished(await patient.start(AgentSpec("done", ["true"])))
    bad = await finished(await patient.start(AgentSpec("bad", ["false"])))
    running = await stubborn(patient, "running")
    with trio.fail_after(GUARD):
        removed = await patient.remove_all(frozenset({Status.COMPLETED, Status.FAILED}), force=True)
    assert {agent.name for agent in removed} == {"done", "bad"}
    assert set(patient.agents) == {"running"} and running.is_live
    assert done.files.read_meta() is not None and bad.files.log("stdout").exists()
    with trio.fail_after(GUARD):
        (stopped,) = await patient.remove_all(frozenset({Status.RUNNING}), force=True)
    assert stopped is running and running.status is Status.STOPPED
    assert patient.agents == {}


async def test_a_taken_name_says_how_to_free_it(supervisor: Supervisor) -> None:
    await finished(await supervisor.start(AgentSpec("taken", ["true"])))
    with pytest.raises(Refusal) as refused:
        await supervisor.start(AgentSpec("taken", ["true"]))
    assert refused.value.code == "agent_exists"
    message = refused.value.message
    assert "DELETE /api/agents/taken" in message
    assert "POST /api/agents/taken/restart" in message
    assert "completed" in message


async def test_runs_of_a_name_never_started(supervisor: Supervisor) -> None:
    with pytest.raises(Refusal) as refused:
        await supervisor.runs("never")
    assert refused.value.code == "run_not_found"
    with pytest.raises(Refusal):
        await supervisor.run_of("never", "2026-01-01-00-00-00")
    with pytest.raises(Refusal) as bad:
        await supervisor.runs("../x")
    assert bad.value.code == "invalid_name"


async def test_a_past_runs_records_are_read_lazily(nursery: trio.Nursery, tmp_path: Path) -> None:
    config = make_config(tmp_path, limits={"max_records": 3})
    first = Supervisor(config)
    await nursery.start(first.run)
    code = "for i in range(5): print(f'Error: failure {i}')"
    agent = await finished(await first.start(AgentSpec("errs", [PY, "-c", code], format="text")))
    errors_before = agent.extraction.matches(3)["errors"]
    assert [e["message"] for e in errors_before][-1].endswith("failure 4")
    await first.shutdown()

    second = Supervisor(config)
    await nursery.start(second.run)
    past = second.agents["errs"]
    # Counts from the meta file at start; no record read yet.
    assert past.records_on_disk and past.extraction.total == agent.extraction.total
    assert past.extraction.matches(3)["errors"] == []
    await past.load_records()
    assert not past.records_on_disk
    assert past.extraction.matches(3)["errors"] == errors_before  # the newest 3, in order
    assert past.extraction.counts == agent.extraction.counts
    assert past.extraction.format == agent.extraction.format == "text"
    await second.shutdown()
