"""The daemon's log of what happens to agents, one line per event, with its fields.

- ``AgentEventLog``, an observer of every run: ``agent_started`` (agent, run id, pid,
  argv0, format), ``agent_stopping`` (who stops it: ``api``, ``shutdown``, ``timeout``…),
  ``agent_exited`` (status, exit code or signal, duration, lines, records) and
  ``agent_removed`` (DELETE), on the logger ``trio_wrapper.agents``.
- ``start_failed``: a start refused once the run's files or process were being made
  (``spawn_failed``, ``logs_unwritable``): ``agent_start_failed`` with the code and reason.
- ``LIMIT_LOG``: a client refused by a limit (``too_many_agents``, ``too_many_clients``,
  ``body_too_large``…) as ``limit_hit`` on ``trio_wrapper.limits``, at most one line per
  code per interval, the next line saying how many were left out.

Only ``argv[0]`` of a command is ever logged: the rest of the argv and the environment
can hold secrets (a prompt, a key).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Final

from trio_wrapper.core.errors import Refusal
from trio_wrapper.core.lines import LineBatch
from trio_wrapper.core.spec import AgentSpec
from trio_wrapper.core.status import Status
from trio_wrapper.core.throttle import Throttle
from trio_wrapper.extract.found import Found
from trio_wrapper.runtime.agent import Agent

AGENTS_LOGGER: Final = "trio_wrapper.agents"
LIMITS_LOGGER: Final = "trio_wrapper.limits"
agents_log = logging.getLogger(AGENTS_LOGGER)
limits_log = logging.getLogger(LIMITS_LOGGER)

# The refusals that are a client hitting a limit of the daemon.
LIMIT_CODES: Final = frozenset(
    {"too_many_agents", "too_many_clients", "body_too_large", "headers_too_large"}
)
DEFAULT_LIMIT_INTERVAL: Final = 60.0


def run_id(name: str, stamp: str) -> str:
    """A run's id: ``<name>/<stamp>``, the stamp of its files."""
    return f"{name}/{stamp}"


def _run_fields(agent: Agent) -> dict[str, object]:
    return {"agent": agent.name, "run": run_id(agent.name, agent.files.stamp)}


class AgentEventLog:
    """An ``AgentObserver`` that logs the runs' starts, stops and ends (not their lines)."""

    def on_lines(self, agent: Agent, stream: str, first_line_num: int, batch: LineBatch) -> None:
        return None

    def on_records(self, agent: Agent, found: Found, counts_by_type: Mapping[str, int]) -> None:
        return None

    def on_status(self, agent: Agent, old: Status | None, new: Status) -> None:
        if new is Status.RUNNING and old is Status.STARTING:
            self._started(agent)
        elif new is Status.STOPPING:
            reason = agent.stop_reason or "api"
            agents_log.info(
                "agent %s stopping (by %s)",
                agent.name,
                reason,
                extra={"event": "agent_stopping", **_run_fields(agent), "reason": reason},
            )
        elif new.is_terminal:
            self._exited(agent, new)

    def on_removed(self, agent: Agent) -> None:
        agents_log.info(
            "agent %s removed",
            agent.name,
            extra={"event": "agent_removed", **_run_fields(agent), "status": agent.status.value},
        )

    def _started(self, agent: Agent) -> None:
        fields: dict[str, object] = {
            "event": "agent_started",
            **_run_fields(agent),
            "pid": agent.pid,
            "argv0": agent.spec.command[0] if agent.spec.command else "",
            "format": agent.spec.format,
        }
        if agent.spec.profile:
            fields["profile"] = agent.spec.profile
        agents_log.info("agent %s started (pid %s)", agent.name, agent.pid, extra=fields)

    def _exited(self, agent: Agent, status: Status) -> None:
        fields: dict[str, object] = {
            "event": "agent_exited",
            **_run_fields(agent),
            "status": status.value,
            "exit_code": agent.exit_code,
            "signal": agent.exit_signal,
            "duration_seconds": round(agent.duration_seconds, 3),
            "lines": sum(stats.lines for stats in agent.stats.values()),
            "bytes": agent.bytes_processed,
            "records": agent.extraction.total,
            "format": agent.extraction.format,  # what ``auto`` decided, if it did
            "detail": agent.status_detail,
        }
        if agent.stop_reason is not None:
            fields["stop_reason"] = agent.stop_reason
        if agent.problem is not None:
            fields["error"] = agent.problem
        level = logging.WARNING if status is Status.FAILED else logging.INFO
        agents_log.log(level, "agent %s %s", agent.name, status.value, extra=fields)


def start_failed(spec: AgentSpec, refusal: Refusal) -> None:
    """A start that failed after its checks passed: the process or its files."""
    agents_log.warning(
        "agent %s failed to start: %s",
        spec.name,
        refusal.message,
        extra={
            "event": "agent_start_failed",
            "agent": spec.name,
            "code": refusal.code,
            "reason": refusal.message,
            "argv0": spec.command[0] if spec.command else "",
        },
    )


class LimitLog:
    """Refusals of clients by a limit, at most one line per code per ``interval``."""

    def __init__(
        self,
        interval: float = DEFAULT_LIMIT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.throttle = Throttle(interval)
        self._clock = clock

    @property
    def interval(self) -> float:
        return self.throttle.interval

    @interval.setter
    def interval(self, seconds: float) -> None:
        self.throttle.interval = seconds

    def refused(self, refusal: Refusal) -> None:
        """Log ``refusal`` if it is a limit and its code had no line for ``interval``."""
        if refusal.code not in LIMIT_CODES:
            return
        held = self.throttle.admit(refusal.code, self._clock())
        if held is None:
            return
        limits_log.warning(
            "client refused: %s",
            refusal.message,
            extra={
                "event": "limit_hit",
                "code": refusal.code,
                "reason": refusal.message,
                "suppressed": held,
                "interval_seconds": self.interval,
            },
        )


# One per process, as the logging it writes to.
LIMIT_LOG: Final = LimitLog()


__all__ = [
    "AGENTS_LOGGER",
    "LIMITS_LOGGER",
    "LIMIT_CODES",
    "LIMIT_LOG",
    "AgentEventLog",
    "LimitLog",
    "run_id",
    "start_failed",
]
