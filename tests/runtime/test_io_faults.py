"""I/O faults stay on the agent they hit: counted, reported, never raised into the daemon.

Faults are injected deterministically: a log descriptor on ``/dev/full`` (every write
fails with ENOSPC), a write function that takes half and refuses the rest, a file
deleted or truncated under the pipeline, an exception from one task of one agent. The
real thing (a full tmpfs, a read-only logs dir, a log deleted under a flood) is in
``tests/e2e/test_disk_full.py``.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from quart.typing import TestClientProtocol as Client

from tests.helpers import make_config, wait_for
from trio_wrapper.api.errors import http_status
from trio_wrapper.api.routes import health as health_module
from trio_wrapper.core.errors import Refusal
from trio_wrapper.core.lines import LineBatch
from trio_wrapper.core.models import RunMeta
from trio_wrapper.core.status import Status
from trio_wrapper.extract.found import Found
from trio_wrapper.history import events as events_module
from trio_wrapper.history import runfiles as runfiles_module
from trio_wrapper.history.events import EventsFile
from trio_wrapper.history.runfiles import RunFiles
from trio_wrapper.runtime import agent as agent_module
from trio_wrapper.runtime import pipeline as pipeline_module
from trio_wrapper.runtime import supervisor as supervisor_module
from trio_wrapper.runtime.agent import Agent, AgentSpec
from trio_wrapper.runtime.pipeline import LinePipeline
from trio_wrapper.runtime.supervisor import Supervisor

GUARD = 30.0  # against a hung test only: never a measure of speed
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
EROFS = OSError(errno.EROFS, os.strerror(errno.EROFS))


async def finished(agent: Agent) -> Agent:
    await wait_for(lambda: not agent.is_live, GUARD)
    return agent


def dead(pid: int) -> bool:
    """Gone, or a zombie its new parent has not reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


# ---- the line pipeline: bytes it cannot have are a gap, never an exception ----------


class Seen:
    def __init__(self) -> None:
        self.lines: list[tuple[str, bytes]] = []
        self.lost: list[tuple[str, int, str | None]] = []

    def deliver(self, stream: str, batch: LineBatch) -> None:
        self.lines.extend((stream, line) for line in batch.lines)

    def gap(self, stream: str, count: int, why: str | None) -> None:
        self.lost.append((stream, count, why))


async def run_pipeline(pipeline: LinePipeline, feed: Callable[[], None]) -> None:
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pipeline.run)
            feed()
    assert pipeline.done.is_set()


async def test_read_back_from_a_deleted_log_is_counted_lost_not_raised(tmp_path: Path) -> None:
    # Issue 15, item 1: FileNotFoundError from here took the whole daemon down.
    log = tmp_path / "out.log"
    data = b"one\ntwo\nthree\n"
    log.write_bytes(data)
    seen = Seen()
    pipeline = LinePipeline(
        {"stdout": log}, seen.deliver, max_line_bytes=100, memory_budget=0, lost=seen.gap
    )

    def feed() -> None:
        pipeline.submit("stdout", 0, data, busy=False)  # over the budget: only on disk
        log.unlink()
        pipeline.end("stdout")

    await run_pipeline(pipeline, feed)
    assert seen.lines == []
    why = "cannot read back stdout log: No such file or directory"
    assert seen.lost == [("stdout", len(data), why)]


async def test_a_log_truncated_under_the_pipeline_gives_what_is_left_and_counts_the_rest(
    tmp_path: Path,
) -> None:
    log = tmp_path / "out.log"
    data = b"first\nsecond\nthird\n"
    log.write_bytes(data)
    seen = Seen()
    pipeline = LinePipeline(
        {"stdout": log}, seen.deliver, max_line_bytes=100, memory_budget=0, lost=seen.gap
    )

    def feed() -> None:
        pipeline.submit("stdout", 0, data, busy=False)
        os.truncate(log, 9)  # "first\nsec"
        pipeline.end("stdout")

    await run_pipeline(pipeline, feed)
    # The line the truncation cut ends where the bytes end: never glued to later ones.
    assert seen.lines == [("stdout", b"first"), ("stdout", b"sec")]
    assert seen.lost == [("stdout", len(data) - 9, "stdout log was truncated under its reader")]


async def test_a_log_deleted_under_a_given_descriptor_is_still_read_whole(
    tmp_path: Path,
) -> None:
    # The agent hands its own descriptors: a deleted log still reads, nothing is lost.
    log = tmp_path / "out.log"
    data = b"a\nb\nc\n"
    log.write_bytes(data)
    fd = os.open(log, os.O_RDWR | os.O_APPEND)
    try:
        seen = Seen()
        pipeline = LinePipeline(
            {"stdout": log},
            seen.deliver,
            max_line_bytes=100,
            memory_budget=0,
            read_fds={"stdout": fd},
            lost=seen.gap,
        )

        def feed() -> None:
            pipeline.submit("stdout", 0, data, busy=False)
            log.unlink()
            pipeline.end("stdout")

        await run_pipeline(pipeline, feed)
        assert [line for _, line in seen.lines] == [b"a", b"b", b"c"]
        assert seen.lost == []
        os.fstat(fd)  # still ours: the pipeline never closes what it was given
    finally:
        os.close(fd)


async def test_bytes_the_log_could_not_take_with_memory_full_are_a_gap(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    log.write_bytes(b"")
    seen = Seen()
    pipeline = LinePipeline(
        {"stdout": log}, seen.deliver, max_line_bytes=100, memory_budget=4, lost=seen.gap
    )

    def feed() -> None:
        pipeline.submit("stdout", 0, b"ok\n", busy=False)  # fits in memory
        with log.open("ab") as handle:
            handle.write(b"par")  # the disk took 3 bytes of the next chunk
        pipeline.submit("stdout", 0, b"partial line\n", busy=False, stored=3)
        pipeline.submit("stdout", 3, b"gone too\n", busy=False, stored=0)
        pipeline.end("stdout")

    await run_pipeline(pipeline, feed)
    assert [line for _, line in seen.lines] == [b"ok", b"par"]
    assert seen.lost == [("stdout", 10 + 9, None)]  # one gap: the caller knows why


# ---- the run's files ------------------------------------------------------------------


def test_write_meta_that_fails_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = RunFiles(tmp_path, "run")
    files.write_meta(RunMeta(name="m", status="running"))

    def no_space(*_args: object) -> None:
        raise ENOSPC

    with monkeypatch.context() as patch:
        patch.setattr(runfiles_module.os, "replace", no_space)
        with pytest.raises(OSError, match="No space"):
            files.write_meta(RunMeta(name="m", status="completed"))
    assert list(tmp_path.glob("*.tmp")) == []
    assert json.loads(files.meta.read_bytes())["status"] == "running"


def test_create_that_fails_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def read_only(path: Any, flags: int, *args: Any) -> int:
        if str(path).endswith("-meta.json"):
            raise EROFS
        return real_open(path, flags, *args)

    with monkeypatch.context() as patch:
        patch.setattr(runfiles_module.os, "open", read_only)
        with pytest.raises(OSError, match="Read-only"):
            RunFiles.create(tmp_path, "w1", datetime.now(UTC))
    assert not (tmp_path / "agents" / "w1").exists()


def test_an_events_write_the_disk_takes_half_of_is_taken_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run-events.jsonl"
    events = EventsFile(path)
    events.write_state("running", "")
    real = runfiles_module.write_prefix

    def half(fd: int, data: bytes | memoryview) -> tuple[int, OSError | None]:
        written, _ = real(fd, memoryview(data)[: len(data) // 2])
        return written, ENOSPC

    with monkeypatch.context() as patch:
        patch.setattr(events_module, "write_prefix", half)
        with pytest.raises(OSError, match="No space"):
            events.write_state("completed", "exit code 0")
    events.write_state("completed", "exit code 0")  # space is back
    events.close()
    states = [json.loads(line)["state"] for line in path.read_text().splitlines()]
    assert states == ["running", "completed"]  # no half line between them


# ---- a log the disk will not take -----------------------------------------------------


@pytest.fixture
def full_stdout(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The stdout log of agents named ``full*`` is ``/dev/full``: every write ENOSPC."""
    real = RunFiles.open_log

    def open_log(files: RunFiles, stream: str) -> int:
        if files.directory.name.startswith("full") and stream == "stdout":
            return os.open("/dev/full", os.O_RDWR | os.O_CLOEXEC)
        return real(files, stream)

    monkeypatch.setattr(RunFiles, "open_log", open_log)
    yield


async def health(client: Client) -> tuple[int, dict[str, Any]]:
    response = await client.get("/api/health")
    body: dict[str, Any] = await response.get_json()
    return response.status_code, body


async def test_a_log_write_that_fails_is_counted_lost_and_the_run_ends_true(
    full_stdout: None, supervisor: Supervisor, caplog: pytest.LogCaptureFixture
) -> None:
    agent = await supervisor.start(AgentSpec("full", ["cat"], stdin=True, format="text"))
    await agent.write_input(b"one\ntwo\n", eof=True, write_timeout=GUARD)
    await finished(agent)
    assert agent.status is Status.COMPLETED and agent.exit_code == 0
    stdout = agent.stats["stdout"]
    assert (stdout.bytes, stdout.lost_bytes) == (0, 8)  # never counted as written
    assert stdout.lines == 2  # the lines were in memory: streamed and counted all the same
    assert agent.problem == "cannot write stdout log: No space left on device"
    # One line in the daemon's log, at the first failed write, naming the run and file.
    (fault,) = [r for r in caplog.records if getattr(r, "event", "") == "io_fault"]
    assert (fault.agent, fault.what) == ("full", "stdout log")  # type: ignore[attr-defined]
    assert fault.run == f"full/{agent.files.stamp}"  # type: ignore[attr-defined]
    meta = json.loads(agent.files.meta.read_text())
    assert meta["error"] == agent.problem
    assert meta["bytes"]["stdout"] == 0 and meta["lost_bytes"]["stdout"] == 8


async def test_the_first_io_error_stays_and_health_follows_the_faults(
    full_stdout: None,
    supervisor: Supervisor,
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = await supervisor.start(AgentSpec("full", ["cat"], stdin=True))
    assert (await health(client))[0] == 200
    await agent.write_input(b"lost\n", eof=False, write_timeout=GUARD)
    await wait_for(lambda: agent.stats["stdout"].lost_bytes == 5, GUARD)
    status, body = await health(client)
    assert status == 503 and body["status"] == "degraded"
    assert body["problems"] == ["agent full: cannot write stdout log: No space left on device"]

    # Space is back for the log (its descriptor now on a real file): the fault heals.
    good = os.open(agent.files.log("stdout"), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(good, agent._log_fds["stdout"])
    os.close(good)
    await agent.write_input(b"kept\n", eof=False, write_timeout=GUARD)
    await wait_for(lambda: agent.stats["stdout"].bytes == 5, GUARD)
    assert (await health(client))[0] == 200

    # Now the meta file fails too (the disk is full again): the first error stays.
    def no_space(_files: RunFiles, _meta: RunMeta) -> None:
        raise ENOSPC

    monkeypatch.setattr(RunFiles, "write_meta", no_space)
    await agent.write_input(b"", eof=True, write_timeout=GUARD)
    await finished(agent)
    assert agent.status is Status.COMPLETED
    assert agent.problem == "cannot write stdout log: No space left on device"
    status, body = await health(client)
    assert status == 503
    assert body["problems"] == ["agent full: cannot write meta file: No space left on device"]
    assert json.loads(agent.files.meta.read_text())["status"] == "running"  # stale on disk

    monkeypatch.undo()  # space returns: health rewrites the meta and is healthy again
    assert (await health(client))[0] == 200
    meta = json.loads(agent.files.meta.read_text())
    assert meta["status"] == "completed" and meta["error"] == agent.problem
    assert list(agent.files.directory.glob("*.tmp")) == []


async def test_health_is_degraded_while_the_logs_dir_is_full(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.statvfs
    free = {"blocks": 0}

    def statvfs(path: Any) -> Any:
        fs = real(path)

        class Full:
            f_bavail = free["blocks"]
            f_frsize = fs.f_frsize
            f_files = fs.f_files
            f_favail = fs.f_favail

        return Full()

    monkeypatch.setattr(health_module.os, "statvfs", statvfs)
    status, body = await health(client)
    assert status == 503 and "is full (0 bytes free)" in body["problems"][0]
    free["blocks"] = 10**6
    assert (await health(client))[0] == 200


# ---- a start whose files cannot be made -----------------------------------------------


@pytest.mark.parametrize(
    ("patched", "error"),
    [("write_meta", ENOSPC), ("open_log", EROFS), ("create", EROFS)],
)
async def test_a_start_without_its_files_is_refused_and_leaves_nothing(
    supervisor: Supervisor,
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
    patched: str,
    error: OSError,
) -> None:
    def fail(*_args: object) -> Any:
        raise error

    spawned: list[AgentSpec] = []
    real_spawn = supervisor_module.spawn

    async def spawn(spec: AgentSpec) -> Any:
        spawned.append(spec)
        return await real_spawn(spec)

    monkeypatch.setattr(supervisor_module, "spawn", spawn)
    monkeypatch.setattr(RunFiles, patched, fail if patched != "create" else classmethod(fail))
    with pytest.raises(Refusal) as info:
        await supervisor.start(AgentSpec("nofiles", ["true"]))
    assert (http_status(info.value), info.value.code) == (503, "logs_unwritable")
    assert error.strerror is not None and error.strerror in info.value.message
    response = await client.post(
        "/api/agents",
        data=json.dumps({"name": "nofiles", "command": ["true"]}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 503
    assert (await response.get_json())["error"]["code"] == "logs_unwritable"
    assert spawned == []  # no child was started only to be killed
    assert "nofiles" not in supervisor.agents
    assert not (supervisor.logs_dir / "agents" / "nofiles").exists()
    assert supervisor.failed_starts == 2
    monkeypatch.undo()
    ok = await finished(await supervisor.start(AgentSpec("nofiles", ["true"])))
    assert ok.status is Status.COMPLETED


# ---- a failure in one agent's tasks ends that agent only -------------------------------


class Injected(Exception):
    pass


class FaultyObserver:
    """Raises from one seam, for the agent named ``victim`` only."""

    def __init__(self, where: str) -> None:
        self.where = where

    def _maybe(self, agent: Agent, where: str) -> None:
        if agent.name == "victim" and self.where == where:
            raise Injected(f"injected into {where}")

    def on_lines(self, agent: Agent, stream: str, first_line_num: int, batch: LineBatch) -> None:
        self._maybe(agent, "pipeline")

    def on_status(self, agent: Agent, old: Status | None, new: Status) -> None:
        if new is Status.RUNNING:
            self._maybe(agent, "status")

    def on_removed(self, agent: Agent) -> None:
        pass

    def on_records(self, agent: Agent, found: Found, counts: Any) -> None:
        self._maybe(agent, "extraction")


INJECTION_POINTS = ["reader", "pipeline", "extraction", "events file", "status"]


@pytest.mark.parametrize("worker", [True, False], ids=["worker", "in-daemon"])
@pytest.mark.parametrize("where", INJECTION_POINTS)
async def test_a_failure_in_one_agents_task_ends_that_agent_only(
    nursery: trio.Nursery,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
    worker: bool,
) -> None:
    if where == "reader":
        real_write = agent_module.write_prefix

        def write_prefix(fd: int, data: bytes | memoryview) -> tuple[int, OSError | None]:
            if "/victim/" in fd_path(fd):
                raise Injected("injected into reader")
            return real_write(fd, data)

        monkeypatch.setattr(agent_module, "write_prefix", write_prefix)
    if where == "events file":
        real_records = EventsFile.write_records

        def write_records(self: EventsFile, data: bytes) -> None:
            if "/victim/" in fd_path(self._fd or -1):
                raise Injected("injected into events file")
            real_records(self, data)

        monkeypatch.setattr(EventsFile, "write_records", write_records)
    config = make_config(tmp_path, extraction={"worker": worker})
    sup = Supervisor(config, observers=[FaultyObserver(where)])
    await nursery.start(sup.run)

    bystander = await sup.start(AgentSpec("bystander", ["cat"], stdin=True, format="text"))
    victim_cmd = ["sh", "-c", "echo 'Error: boom'; exec sleep 300"]
    victim = await sup.start(AgentSpec("victim", victim_cmd, format="text"))
    await finished(victim)
    assert victim.status is Status.FAILED, (victim.status, victim.problem)
    assert victim.problem is not None and victim.problem.startswith("internal error: ")
    assert f"injected into {where}" in victim.problem
    assert victim.status_detail.startswith("failed in the daemon: ")
    assert victim.pid is not None and dead(victim.pid)  # its `sleep 300` did not outlive it
    meta = json.loads(victim.files.meta.read_text())
    assert meta["status"] == "failed" and meta["error"] == victim.problem

    # The bystander and the daemon go on.
    await bystander.write_input(b"Error: still here\n", eof=True, write_timeout=GUARD)
    await finished(bystander)
    assert bystander.status is Status.COMPLETED and bystander.problem is None
    assert bystander.files.log("stdout").read_bytes() == b"Error: still here\n"
    await wait_for(lambda: bystander.extraction.total >= 1, GUARD)
    after = await finished(await sup.start(AgentSpec("after", ["echo", "fine"])))
    assert after.status is Status.COMPLETED
    with trio.fail_after(GUARD):
        await sup.shutdown()


# ---- a log deleted under a flood (issue 15, item 1) -----------------------------------


async def test_a_log_that_cannot_be_read_back_is_said_on_the_agent(
    supervisor: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No memory budget: every chunk goes by way of the log, and reading it back fails.
    monkeypatch.setattr(agent_module, "LinePipeline", partial(LinePipeline, memory_budget=0))
    real_pread = os.pread

    def pread(fd: int, length: int, offset: int) -> bytes:
        if "/eio/" in fd_path(fd):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_pread(fd, length, offset)

    monkeypatch.setattr(pipeline_module.os, "pread", pread)
    agent = await finished(await supervisor.start(AgentSpec("eio", ["echo", "one"])))
    assert agent.status is Status.COMPLETED and agent.exit_code == 0
    stdout = agent.stats["stdout"]
    assert (stdout.bytes, stdout.lines, stdout.unprocessed_bytes) == (4, 0, 4)
    assert agent.problem == "cannot read back stdout log: Input/output error"
    assert agent.files.log("stdout").read_bytes() == b"one\n"  # the log itself is whole
    meta = json.loads(agent.files.meta.read_text())
    assert meta["unprocessed_bytes"]["stdout"] == 4 and meta["error"] == agent.problem


async def test_a_log_deleted_under_a_flood_loses_no_line_and_harms_no_one(
    supervisor: Supervisor, client: Client
) -> None:
    total = 20_000_000  # far over the pipeline's memory budget: lines come back from disk
    flood = ["sh", "-c", f"read go; yes some-line | head -c {total}"]
    victim = await supervisor.start(AgentSpec("victim", flood, stdin=True))
    bystander = await supervisor.start(AgentSpec("bystander", ["cat"], stdin=True))
    victim.files.log("stdout").unlink()
    await victim.write_input(b"go\n", eof=True, write_timeout=GUARD)
    await finished(victim)
    assert victim.status is Status.COMPLETED and victim.exit_code == 0
    stdout = victim.stats["stdout"]
    assert (stdout.bytes, stdout.lines, stdout.unprocessed_bytes) == (total, total // 10, 0)
    assert victim.problem == "stdout log was deleted while the agent ran"
    assert bystander.is_live and bystander.status is Status.RUNNING
    await bystander.write_input(b"fine\n", eof=True, write_timeout=GUARD)
    assert (await finished(bystander)).status is Status.COMPLETED
    assert (await health(client))[0] == 200
