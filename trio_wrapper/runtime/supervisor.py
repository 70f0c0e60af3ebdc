"""The supervisor: registry of agents, spawning, stopping, history, shutdown.

It owns one nursery (started by the daemon's root nursery, or by the app when served by
a plain ``hypercorn -k trio``) in which every agent's ``run`` task lives.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Sequence

import trio

from trio_wrapper.config import Config
from trio_wrapper.core.errors import Refusal, agent_not_found
from trio_wrapper.core.names import check_name
from trio_wrapper.core.spec import AgentSpec
from trio_wrapper.core.timefmt import now_local, rfc3339
from trio_wrapper.extract import Rule
from trio_wrapper.history.runfiles import RunFiles, load_history
from trio_wrapper.runtime.agent import Agent, AgentObserver
from trio_wrapper.runtime.extraction import ExtractionWorker
from trio_wrapper.runtime.process import reap_orphan, spawn
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
            try:
                process, master = await spawn(spec)
            except Refusal:
                self.failed_starts += 1
                raise
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
                    records_kept=self.config.limits.max_records,
                    record_text_bytes=self.config.limits.max_record_text_bytes,
                )
                agent.started_at = started
                agent.attach(process, master)
            except BaseException:
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
        finally:
            self._reserved.discard(spec.name)

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


def _mark_deleted(agent: Agent) -> None:
    """Remember the DELETE in the meta file so the run is not listed again after a restart."""
    meta = agent.files.read_meta() or run_meta(agent)
    meta.deleted_at = rfc3339(now_local())
    with contextlib.suppress(OSError):
        agent.files.write_meta(meta)
