"""The daemon's log of agents' starts, stops and ends, failed starts and client limits."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from tests.helpers import PY, make_config, wait_for
from trio_wrapper.core.errors import Refusal
from trio_wrapper.core.throttle import Throttle
from trio_wrapper.runtime.agent import AgentSpec
from trio_wrapper.runtime.eventlog import (
    AGENTS_LOGGER,
    LIMIT_LOG,
    LIMITS_LOGGER,
    AgentEventLog,
    LimitLog,
)
from trio_wrapper.runtime.hub import Hub, HubLimits
from trio_wrapper.runtime.supervisor import Supervisor

SECRET = "sk-not-for-the-log"


def events(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and hasattr(r, "event")]


def named(records: list[logging.LogRecord], event: str) -> list[logging.LogRecord]:
    return [r for r in records if getattr(r, "event", None) == event]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limits_are_logged_once_per_code_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    limits = LimitLog(60.0, clock)
    caplog.set_level(logging.INFO, LIMITS_LOGGER)
    limits.refused(Refusal("agent_not_found", "no agent named 'x'"))  # not a limit
    for _ in range(5):
        limits.refused(Refusal("too_many_agents", "limit of 1 running agents reached"))
    limits.refused(Refusal("too_many_clients", "too many SSE clients connected"))
    clock.now += 60.0
    limits.refused(Refusal("too_many_agents", "limit of 1 running agents reached"))
    lines = events(caplog, LIMITS_LOGGER)
    assert [(r.code, r.suppressed) for r in lines] == [  # type: ignore[attr-defined]
        ("too_many_agents", 0),
        ("too_many_clients", 0),
        ("too_many_agents", 4),
    ]
    assert all(r.event == "limit_hit" and r.levelno == logging.WARNING for r in lines)  # type: ignore[attr-defined]


async def test_sse_clients_refused_by_the_hub_are_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LIMIT_LOG, "throttle", Throttle(60.0))
    caplog.set_level(logging.INFO, LIMITS_LOGGER)
    hub = Hub(HubLimits(max_clients=1))
    hub.subscribe(None, None, 0)
    for _ in range(3):
        with pytest.raises(Refusal):
            hub.subscribe(None, None, 0)
    lines = named(events(caplog, LIMITS_LOGGER), "limit_hit")
    assert [r.code for r in lines] == ["too_many_clients"]  # type: ignore[attr-defined]


async def test_a_run_is_logged_from_start_to_removal(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, AGENTS_LOGGER)
    sup = Supervisor(make_config(tmp_path), observers=[AgentEventLog()])
    await nursery.start(sup.run)
    try:
        done = await sup.start(
            AgentSpec(name="done", command=[PY, "-c", "print('a'); print('b'); exit(3)", SECRET])
        )
        await wait_for(lambda: not done.is_live)
        with pytest.raises(Refusal):
            await sup.start(AgentSpec(name="ghost", command=[str(tmp_path / "nope"), SECRET]))
        sleeper = await sup.start(AgentSpec(name="sleeper", command=["sleep", "60"]))
        await sup.remove("sleeper")
    finally:
        with trio.fail_after(30):
            await sup.shutdown()
    lines = events(caplog, AGENTS_LOGGER)
    started = named(lines, "agent_started")
    assert [r.agent for r in started] == ["done", "sleeper"]  # type: ignore[attr-defined]
    first = started[0]
    assert first.run == f"done/{done.files.stamp}"  # type: ignore[attr-defined]
    assert first.pid == done.pid and first.argv0 == PY  # type: ignore[attr-defined]
    assert first.format == "auto"  # type: ignore[attr-defined]

    exited = {r.agent: r for r in named(lines, "agent_exited")}  # type: ignore[attr-defined]
    assert exited["done"].status == "failed" and exited["done"].exit_code == 3  # type: ignore[attr-defined]
    assert exited["done"].lines == 2 and exited["done"].levelno == logging.WARNING  # type: ignore[attr-defined]
    assert exited["done"].duration_seconds >= 0  # type: ignore[attr-defined]
    assert exited["sleeper"].status == "stopped"  # type: ignore[attr-defined]
    assert exited["sleeper"].stop_reason == "api"  # type: ignore[attr-defined]

    (stopping,) = named(lines, "agent_stopping")
    assert (stopping.agent, stopping.reason) == ("sleeper", "api")  # type: ignore[attr-defined]
    (removed,) = named(lines, "agent_removed")
    assert removed.run == f"sleeper/{sleeper.files.stamp}"  # type: ignore[attr-defined]

    (failed,) = named(lines, "agent_start_failed")
    assert failed.agent == "ghost" and failed.code == "spawn_failed"  # type: ignore[attr-defined]
    assert "nope" in failed.reason  # type: ignore[attr-defined]
    # Only argv[0] is ever logged: the rest of a command line can hold secrets.
    assert all(SECRET not in r.getMessage() + repr(r.__dict__) for r in caplog.records)


async def test_shutdown_is_the_stop_reason(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, AGENTS_LOGGER)
    sup = Supervisor(make_config(tmp_path), observers=[AgentEventLog()])
    await nursery.start(sup.run)
    await sup.start(AgentSpec(name="s", command=["sleep", "60"]))
    with trio.fail_after(30):
        await sup.shutdown()
    lines = events(caplog, AGENTS_LOGGER)
    assert [r.reason for r in named(lines, "agent_stopping")] == ["shutdown"]  # type: ignore[attr-defined]
    assert [r.stop_reason for r in named(lines, "agent_exited")] == ["shutdown"]  # type: ignore[attr-defined]
