"""The supervisor: registry of agents, spawning, stopping, history, shutdown.

It owns one nursery (started by the daemon's root nursery, or by the app when served by
a plain ``hypercorn -k trio``) in which every agent's ``run`` task lives.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import trio

from trio_wrapper.config import Config
from trio_wrapper.core.cgroups import agent_cgroup_name
from trio_wrapper.core.descriptors import AGENT_DESCRIPTORS
from trio_wrapper.core.errors import Refusal, agent_not_found
from trio_wrapper.core.models import RunMeta
from trio_wrapper.core.names import check_name
from trio_wrapper.core.spec import AgentSpec
from trio_wrapper.core.status import Status
from trio_wrapper.core.timefmt import now_local, rfc3339
from trio_wrapper.extract import Rule
from trio_wrapper.history.runfiles import RunFiles, list_runs, load_history, read_run
from trio_wrapper.runtime import cgroups, proctree
from trio_wrapper.runtime.agent import Agent, AgentObserver
from trio_wrapper.runtime.descriptors import Descriptors
from trio_wrapper.runtime.eventlog import start_failed
from trio_wrapper.runtime.extraction import ExtractionWorker
from trio_wrapper.runtime.interactive import Interaction
from trio_wrapper.runtime.notify import Notifier
from trio_wrapper.runtime.process import check_request_env, reap_orphan, spawn
from trio_wrapper.runtime.views import run_meta

log = logging.getLogger(__name__)


class Supervisor:
    def __init__(
        self,
        config: Config,
        observers: Sequence[AgentObserver] = (),
        rules: Sequence[Rule] = (),
        descriptors: Descriptors | None = None,
    ) -> None:
        self.config = config
        self.descriptors = descriptors
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
        self.cgroups: cgroups.AgentCgroups | None = None
        # [notify] webhook: an observer, its sender task started by the lifecycle.
        self.notifier = Notifier(config.notify) if config.notify.webhook else None
        if self.notifier is not None:
            self.observers.append(self.notifier)

    # ---- lifecycle ------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the agents' nursery until ``shutdown()`` has stopped them all."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        if self.config.agents.cgroups:
            self.cgroups, why_not = cgroups.AgentCgroups.make()
            if self.cgroups is None:
                log.info("agents run without a cgroup of their own: %s", why_not)
        # Off the event loop: an interrupted run's log files are counted.
        for files, meta in await trio.to_thread.run_sync(load_history, self.logs_dir):
            agent = self._past(files, meta)
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
        if self.cgroups is not None:
            self.cgroups.close()
        self._closed.set()

    # ---- queries --------------------------------------------------------------------

    def get(self, name: str) -> Agent:
        agent = self.agents.get(name)
        if agent is None:
            raise agent_not_found(name)
        return agent

    def live_count(self) -> int:
        return sum(1 for a in self.agents.values() if a.is_live)

    def _past(self, files: RunFiles, meta: RunMeta) -> Agent:
        limits = self.config.limits
        return Agent.from_history(
            files,
            meta,
            records_kept=limits.max_records,
            record_text_bytes=limits.max_record_text_bytes,
        )

    async def runs(self, name: str) -> list[Agent]:
        """Every run of ``name`` on disk, newest first, listed or not (a DELETEd name's
        runs too): the listed run as it is now, the others read from their meta files.
        ``run_not_found`` when the name has no run at all."""
        check_name(name)
        listed = self.agents.get(name)
        live_stamp = listed.files.stamp if listed is not None else None
        found = await trio.to_thread.run_sync(list_runs, self.logs_dir, name, live_stamp)
        runs = [
            listed if listed is not None and files.stamp == live_stamp else self._past(files, meta)
            for files, meta in found
        ]
        if listed is not None and not any(run is listed for run in runs):
            runs.insert(0, listed)  # its meta file could not be read (no space…)
        if not runs:
            raise Refusal("run_not_found", f"no run of an agent named {name!r}")
        return runs

    async def run_of(self, name: str, stamp: str) -> Agent:
        """One run, ``<name>/<stamp>``: the listed agent if it is that run, else read from
        its files (also after a DELETE or a daemon restart)."""
        check_name(name)
        listed = self.agents.get(name)
        if listed is not None and listed.files.stamp == stamp:
            return listed
        live_stamp = listed.files.stamp if listed is not None else None
        found = await trio.to_thread.run_sync(read_run, self.logs_dir, name, stamp, live_stamp)
        if found is None:
            raise Refusal("run_not_found", f"no run {name}/{stamp}")
        return self._past(*found)

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
            raise name_taken(spec.name, self.agents.get(spec.name))
        self._check_allowed(spec.command[0])
        check_request_env(spec.env)
        self._check_room(spec.name, 0)
        self._reserved.add(spec.name)
        try:
            return await self._launch(spec)
        except Refusal as exc:  # its files or its process could not be made
            start_failed(spec, exc)
            raise
        finally:
            self._reserved.discard(spec.name)

    def _check_room(self, name: str, own: int) -> None:
        """``too_many_agents`` unless one more run fits (``own``: reservations that are
        the caller's, already counted); ``too_many_open_files`` unless its descriptors do."""
        if self.live_count() + len(self._reserved) - own >= self.config.limits.max_agents:
            raise Refusal(
                "too_many_agents",
                f"limit of {self.config.limits.max_agents} running agents reached",
            )
        if self.descriptors is not None:
            self.descriptors.admit(f"agent {name!r}", AGENT_DESCRIPTORS)

    async def _launch(self, spec: AgentSpec, replacing: Agent | None = None) -> Agent:
        """Spawn a reserved name's new run and list it (in place of ``replacing``)."""
        # The run's files first: a child is never started (and then killed) because
        # its output would have nowhere to go.
        agent = self._new_agent(spec)
        cookie = secrets.token_hex(16)
        cgroup = self._new_cgroup(agent, cookie)
        procs = cgroups.open_procs(cgroup) if cgroup is not None else None
        try:
            process, master = await spawn(
                spec, self.config.agents.env_passthrough, cookie, cgroup_procs=procs
            )
        except BaseException as exc:
            agent.discard()
            if cgroup is not None:
                cgroups.remove(cgroup)
            if isinstance(exc, Refusal):
                self.failed_starts += 1
            raise
        finally:
            if procs is not None:
                os.close(procs)
        try:
            # The leader is a session leader: its session (and group) id is its pid.
            agent.mark = proctree.TreeMark(
                leader=process.pid,
                leader_start=proctree.start_ticks(process.pid),
                cookie=cookie,
                boot_id=proctree.boot_id(),
                cgroup=str(cgroup) if cgroup is not None else None,
            )
            agent.attach(process, master)
        except BaseException:
            agent.discard()
            with trio.CancelScope(shield=True):
                await reap_orphan(process)
            raise
        if replacing is not None and self.agents.get(spec.name) is replacing:
            # The previous run's stream ends and its channel goes: the new run's events
            # are numbered afresh. Its files stay, as runs of the name.
            for observer in self.observers:
                observer.on_removed(replacing)
        self.agents[spec.name] = agent
        self.started_total += 1
        # A fresh context: started from the request, the agent's tasks would otherwise
        # inherit (and keep alive for their whole life) Quart's request context.
        nursery = self._nursery
        assert nursery is not None
        contextvars.Context().run(lambda: nursery.start_soon(agent.run))
        await agent.wait_running()
        return agent

    def _new_cgroup(self, agent: Agent, cookie: str) -> Path | None:
        """The run's own cgroup, where one can be made; its first process enters it
        before its exec."""
        if self.cgroups is None:
            return None
        return self.cgroups.create(agent_cgroup_name(agent.name, agent.files.stamp, cookie))

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
        interactive = self.config.interactive
        agent.interaction = Interaction(
            spec,
            agent.set_waiting,
            quiet_seconds=interactive.quiet_seconds,
            enter_delay_seconds=interactive.enter_delay_seconds,
        )
        try:
            agent.open_files()
        except OSError as exc:
            files.discard()
            self.failed_starts += 1
            raise logs_unwritable(self.logs_dir, exc) from exc
        return agent

    # ---- stop / remove --------------------------------------------------------------

    def _grace(self, force: bool) -> float:
        # Forced: SIGKILL right after the SIGTERM, no grace (also cuts short a stop
        # already waiting out its grace).
        return 0.0 if force else self.config.agents.stop_grace_seconds

    async def stop(self, name: str, *, force: bool = False) -> Agent:
        """Stop if running and wait for the exit; the agent stays listed."""
        agent = self.get(name)
        await agent.stop(self._grace(force), "api")
        return agent

    async def restart(self, name: str, *, force: bool = False) -> Agent:
        """A new run of the listed agent's spec under the same name, once the current run
        has stopped; the previous run stays on disk (``runs``). A run read back from disk
        has no ``env`` (it is not written to the meta file): its restart runs without."""
        if self._closing or self._nursery is None:
            raise Refusal("shutting_down", "the daemon is shutting down")
        old = self.get(name)
        if name in self._reserved:
            raise Refusal("agent_busy", f"agent {name!r} is being started or restarted")
        spec = old.spec
        self._check_allowed(spec.command[0])
        self._reserved.add(name)
        try:
            await old.stop(self._grace(force), "api")
            if self.agents.get(name) is not old:
                raise agent_not_found(name)  # DELETEd while it stopped
            if self._closing:
                raise Refusal("shutting_down", "the daemon is shutting down")
            self._check_room(name, 1)
            return await self._launch(spec, replacing=old)
        finally:
            self._reserved.discard(name)

    async def remove_all(self, statuses: frozenset[Status], *, force: bool = False) -> list[Agent]:
        """DELETE of every listed agent with one of ``statuses``, all at once."""
        chosen = [agent for agent in self.agents.values() if agent.status in statuses]
        removed: list[Agent] = []

        async def remove_one(agent: Agent) -> None:
            await agent.stop(self._grace(force), "api")
            if self._unlist(agent):
                removed.append(agent)

        async with trio.open_nursery() as nursery:
            for agent in chosen:
                nursery.start_soon(remove_one, agent)
        return removed

    def _unlist(self, agent: Agent) -> bool:
        if self.agents.get(agent.name) is not agent:
            return False
        del self.agents[agent.name]
        _mark_deleted(agent)
        for observer in self.observers:
            observer.on_removed(agent)
        return True

    async def remove(self, name: str, *, force: bool = False) -> Agent:
        """DELETE: stop if running, wait for exit, unlist. The files stay on disk."""
        agent = self.get(name)
        await agent.stop(self._grace(force), "api")
        self._unlist(agent)
        return agent


def name_taken(name: str, agent: Agent | None) -> Refusal:
    """409: the name is listed (or being started), and how to free it."""
    if agent is None:
        return Refusal("agent_exists", f"an agent named {name!r} is being started")
    return Refusal(
        "agent_exists",
        f"an agent named {name!r} already exists ({agent.status.value}); free the name "
        f"with DELETE /api/agents/{name} (its runs stay on disk), or start a new run of "
        f"it with POST /api/agents/{name}/restart",
    )


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
