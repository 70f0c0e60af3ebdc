"""The supervisor: registry of agents, spawning, stopping, history, shutdown.

It owns one nursery (started by the daemon's root nursery, or by the app when served by
a plain ``hypercorn -k trio``) in which every agent's ``run`` task lives.
"""

from __future__ import annotations

import contextlib
import contextvars
import secrets
from collections.abc import Sequence
from pathlib import Path

import trio

from trio_wrapper.config import Config
from trio_wrapper.core.errors import Refusal, agent_not_found
from trio_wrapper.core.names import check_name
from trio_wrapper.core.spec import AgentSpec
from trio_wrapper.core.status import Status
from trio_wrapper.core.timefmt import now_local, rfc3339
from trio_wrapper.extract import Rule
from trio_wrapper.history.runfiles import RunFiles, load_history
from trio_wrapper.runtime import proctree
from trio_wrapper.runtime.agent import Agent, AgentObserver
from trio_wrapper.runtime.eventlog import start_failed
from trio_wrapper.runtime.extraction import ExtractionWorker
from trio_wrapper.runtime.process import check_request_env, reap_orphan, spawn
from trio_wrapper.runtime.views import run_meta


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
        # Off the event loop: an interrupted run's log files are counted.
        for files, meta in await trio.to_thread.run_sync(load_history, self.logs_dir):
            agent = Agent.from_history(files, meta)
            self.agents.setdefault(agent.name, agent)
        # What a daemon that died left running is reported (and killed by a DELETE).
        interrupted = [
            (agent, agent.mark)
            for agent in self.agents.values()
            if agent.status is Status.INTERRUPTED and agent.mark is not None
        ]
        if interrupted:
            marks = [mark for _, mark in interrupted]
            found = await trio.to_thread.run_sync(proctree.leftovers, marks)
            for (agent, _), processes in zip(interrupted, found, strict=True):
                agent.note_leftovers(processes)
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
        check_request_env(spec.env)
        if self.live_count() + len(self._reserved) >= self.config.limits.max_agents:
            raise Refusal(
                "too_many_agents",
                f"limit of {self.config.limits.max_agents} running agents reached",
            )
        self._reserved.add(spec.name)
        try:
            # The run's files first: a child is never started (and then killed) because
            # its output would have nowhere to go.
            agent = self._new_agent(spec)
            try:
                cookie = secrets.token_hex(16)
                process, master = await spawn(spec, self.config.agents.env_passthrough, cookie)
            except BaseException as exc:
                agent.discard()
                if isinstance(exc, Refusal):
                    self.failed_starts += 1
                raise
            try:
                # The leader is a session leader: its session (and group) id is its pid.
                agent.mark = proctree.TreeMark(
                    leader=process.pid,
                    leader_start=proctree.start_ticks(process.pid),
                    cookie=cookie,
                    boot_id=proctree.boot_id(),
                )
                agent.attach(process, master)
            except BaseException:
                agent.discard()
                with trio.CancelScope(shield=True):
                    await reap_orphan(process)
                raise
            self.agents[spec.name] = agent
            self.started_total += 1
            # A fresh context: started from the request, the agent's tasks would otherwise
            # inherit (and keep alive for their whole life) Quart's request context.
            nursery = self._nursery
            contextvars.Context().run(lambda: nursery.start_soon(agent.run))
            await agent.wait_running()
            return agent
        except Refusal as exc:  # its files or its process could not be made
            start_failed(spec, exc)
            raise
        finally:
            self._reserved.discard(spec.name)

    def _new_agent(self, spec: AgentSpec) -> Agent:
        """An agent with its files made and open; ``logs_unwritable`` (nothing left on
        disk) when they cannot be: no space, a read-only or forbidden logs dir."""
        started = now_local()
        try:
            files = RunFiles.create(self.logs_dir, spec.name, started)
        except OSError as exc:
            self.failed_starts += 1
            raise logs_unwritable(self.logs_dir, exc) from exc
        agent = Agent(
            spec,
            files,
            observers=self.observers,
            max_line_bytes=self.config.limits.max_line_bytes,
            read_chunk_bytes=self.config.limits.read_chunk_bytes,
            stop_grace_seconds=self.config.agents.stop_grace_seconds,
            rules=self.rules,
            worker=self.extraction_worker,
            records_kept=self.config.limits.max_records,
            record_text_bytes=self.config.limits.max_record_text_bytes,
        )
        agent.started_at = started
        try:
            agent.open_files()
        except OSError as exc:
            files.discard()
            self.failed_starts += 1
            raise logs_unwritable(self.logs_dir, exc) from exc
        return agent

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


def logs_unwritable(logs_dir: Path, exc: OSError) -> Refusal:
    return Refusal(
        "logs_unwritable",
        f"cannot create the run's files in {str(logs_dir)!r}: {exc.strerror or exc}",
    )


def _mark_deleted(agent: Agent) -> None:
    """Remember the DELETE in the meta file so the run is not listed again after a restart."""
    meta = agent.files.read_meta() or run_meta(agent)
    meta.deleted_at = rfc3339(now_local())
    with contextlib.suppress(OSError):
        agent.files.write_meta(meta)
