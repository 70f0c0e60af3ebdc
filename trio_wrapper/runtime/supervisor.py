"""The supervisor: registry of agents, spawning, stopping, history, shutdown.

It owns one nursery (started by the daemon's root nursery, or by the app when served by
a plain ``hypercorn -k trio``) in which every agent's ``run`` task lives.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import signal
import subprocess
from collections.abc import Sequence
from typing import Any

import msgspec
import trio

from trio_wrapper.config import Config
from trio_wrapper.core.errors import Refusal, agent_not_found
from trio_wrapper.core.status import Status
from trio_wrapper.core.timefmt import now_local, rfc3339
from trio_wrapper.extract import Rule
from trio_wrapper.history.runfiles import RunFiles, load_history
from trio_wrapper.runtime.agent import Agent, AgentObserver, AgentSpec
from trio_wrapper.runtime.extraction import ExtractionWorker

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise Refusal(
            "invalid_name",
            "name must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ (letters, digits, '.', '_', '-')",
        )


class Supervisor:
    def __init__(
        self,
        config: Config,
        observers: Sequence[AgentObserver] = (),
        rules: Sequence[Rule] = (),
    ) -> None:
        self.config = config
        self.rules = list(rules)
        self.logs_dir = config.logs_path
        self.observers: list[AgentObserver] = list(observers)
        self.agents: dict[str, Agent] = {}
        self.failed_starts = 0
        self.started_total = 0
        self._reserved: set[str] = set()
        self._nursery: trio.Nursery | None = None
        self._closing = False
        self._closed = trio.Event()
        self.extraction_worker = ExtractionWorker(self.rules) if config.extraction.worker else None

    # ---- lifecycle ------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the agents' nursery until ``shutdown()`` has stopped them all."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        for files, meta in load_history(self.logs_dir):
            agent = Agent.from_history(files, meta)
            self.agents.setdefault(agent.name, agent)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self.extraction_worker is not None:
                # Started in the background: runs opened before it is up queue their lines.
                nursery.start_soon(self.extraction_worker.run)
            task_status.started()
            await self._closed.wait()
            nursery.cancel_scope.cancel()
        self._nursery = None

    async def shutdown(self) -> None:
        """Stop every live agent at once (group SIGTERM → grace → SIGKILL), then close."""
        self._closing = True
        grace = self.config.agents.stop_grace_seconds
        async with trio.open_nursery() as nursery:
            for agent in list(self.agents.values()):
                if agent.is_live:
                    nursery.start_soon(agent.stop, grace, "shutdown")
        self._closed.set()

    # ---- queries --------------------------------------------------------------------

    def get(self, name: str) -> Agent:
        agent = self.agents.get(name)
        if agent is None:
            raise agent_not_found(name)
        return agent

    def live_count(self) -> int:
        return sum(1 for a in self.agents.values() if a.is_live)

    def count_by_status(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Status}
        for agent in self.agents.values():
            counts[agent.status.value] += 1
        return counts

    # ---- start ----------------------------------------------------------------------

    def _check_allowed(self, argv0: str) -> None:
        allowed = self.config.agents.allowed_commands
        # Exact match only: allowing "codex" must not allow "/tmp/x/codex".
        if allowed and argv0 not in allowed:
            raise Refusal("command_not_allowed", f"{argv0!r} is not in agents.allowed_commands")

    async def start(self, spec: AgentSpec) -> Agent:
        """Spawn and register an agent; the name is only taken once the spawn worked."""
        if self._closing or self._nursery is None:
            raise Refusal("shutting_down", "the daemon is shutting down")
        check_name(spec.name)
        if spec.name in self._reserved or spec.name in self.agents:
            raise Refusal("agent_exists", f"an agent named {spec.name!r} already exists")
        self._check_allowed(spec.command[0])
        if self.live_count() + len(self._reserved) >= self.config.limits.max_agents:
            raise Refusal(
                "too_many_agents",
                f"limit of {self.config.limits.max_agents} running agents reached",
            )
        self._reserved.add(spec.name)
        try:
            process, master = await self._spawn(spec)
            try:
                started = now_local()
                files = RunFiles.create(self.logs_dir, spec.name, started)
                agent = Agent(
                    spec,
                    files,
                    observers=self.observers,
                    max_line_bytes=self.config.limits.max_line_bytes,
                    read_chunk_bytes=self.config.limits.read_chunk_bytes,
                    stop_grace_seconds=self.config.agents.stop_grace_seconds,
                    rules=self.rules,
                    worker=self.extraction_worker,
                )
                agent.started_at = started
                agent.attach(process, master)
            except BaseException:
                with trio.CancelScope(shield=True):
                    await _reap_orphan(process)
                raise
            self.agents[spec.name] = agent
            self.started_total += 1
            # A fresh context: started from the request, the agent's tasks would otherwise
            # inherit (and keep alive for their whole life) Quart's request context.
            nursery = self._nursery
            contextvars.Context().run(lambda: nursery.start_soon(agent.run))
            await agent.wait_running()
            return agent
        finally:
            self._reserved.discard(spec.name)

    async def _spawn(self, spec: AgentSpec) -> tuple[trio.Process, int | None]:
        if spec.cwd is not None and not await trio.Path(spec.cwd).is_dir():
            self.failed_starts += 1
            raise Refusal("spawn_failed", f"working directory {spec.cwd!r} does not exist")
        env = {**os.environ, **spec.env, "PYTHONUNBUFFERED": "1"}
        master: int | None = None
        stdin: int = subprocess.PIPE if spec.stdin else subprocess.DEVNULL
        stdout: int = subprocess.PIPE
        stderr: int = subprocess.PIPE
        slave: int | None = None
        if spec.pty:
            master, slave = os.openpty()
            os.set_inheritable(master, False)
            stdout = stderr = slave
            if spec.stdin:
                stdin = slave
        try:
            process = await trio.lowlevel.open_process(
                spec.command,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                cwd=spec.cwd,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            self.failed_starts += 1
            if master is not None:
                os.close(master)
            reason = exc.strerror or str(exc)
            raise Refusal("spawn_failed", f"cannot start {spec.command[0]!r}: {reason}") from exc
        finally:
            if slave is not None:
                os.close(slave)
        return process, master

    # ---- stop / remove --------------------------------------------------------------

    async def remove(self, name: str) -> Agent:
        """DELETE: stop if running, wait for exit, unlist. The files stay on disk."""
        agent = self.get(name)
        await agent.stop(self.config.agents.stop_grace_seconds, "api")
        if self.agents.get(name) is agent:
            del self.agents[name]
            _mark_deleted(agent)
            for observer in self.observers:
                observer.on_removed(agent)
        return agent


async def _reap_orphan(process: trio.Process) -> None:
    """A child spawned but never registered (its files could not be created): end it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            await pipe.aclose()


def _mark_deleted(agent: Agent) -> None:
    """Remember the DELETE in the meta file so the run is not listed again after a restart."""
    try:
        meta: dict[str, Any] = msgspec.json.decode(agent.files.meta.read_bytes())
    except (OSError, msgspec.DecodeError):
        meta = agent.meta()
    meta["deleted_at"] = rfc3339(now_local())
    with contextlib.suppress(OSError):
        agent.files.write_meta(meta)
