"""The run index service: retention at start and every interval, in trio."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import trio
import trio.lowlevel
import trio.testing

from tests.helpers import make_config
from tests.history.test_index import make_run
from trio_wrapper.core.errors import Refusal
from trio_wrapper.history.runfiles import RunFiles
from trio_wrapper.runtime.agent import Agent
from trio_wrapper.runtime.runindex import IndexService


def listed(files: RunFiles, *, live: bool) -> Agent:
    return cast(Agent, SimpleNamespace(files=files, is_live=live))


async def passes(service: IndexService, count: int) -> None:
    """Until ``count`` retention passes are done. The mock clock does not move by itself,
    and the passes' work is in threads: yield until then."""
    while service.retention_passes < count:
        await trio.lowlevel.checkpoint()


async def test_retention_at_start_and_every_interval(
    tmp_path: Path, nursery: trio.Nursery, mock_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_wrapper.retention")
    config = make_config(tmp_path, retention={"keep_runs": 1, "interval_seconds": 3600})
    logs = config.logs_path
    old = make_run(logs, "a", "2026-12-01-10-00-01", day="2026-11-01")
    starting = make_run(logs, "a", "2026-12-01-10-00-06", day="2026-11-01", status="starting")
    live = make_run(logs, "a", "2026-12-01-10-00-02", day="2026-11-02", status="running")
    newest = make_run(logs, "a", "2026-12-01-10-00-03", day="2026-11-03")
    other = make_run(logs, "b", "2026-12-01-10-00-04")
    # "a" is listed with a run that is not its newest, and still live: it stays. So does
    # a run not ended that no agent lists (one being started).
    agents = {"a": listed(live, live=True)}
    service = IndexService(config, agents)
    await nursery.start(service.run)
    await passes(service, 1)
    assert not old.meta.exists() and not old.log("stdout").exists()
    assert not old.events.exists()
    assert live.meta.exists() and newest.meta.exists() and other.meta.exists()
    assert starting.meta.exists()
    assert service.counters.retention_removed_runs == 1
    assert service.counters.retention_removed_bytes > 0
    removed = [r.getMessage() for r in caplog.records if r.name == "trio_wrapper.retention"]
    assert removed == [
        f"removed run a/2026-12-01-10-00-01 ({service.counters.retention_removed_bytes} bytes):"
        " keep_runs"
    ]
    ids = await service.query(lambda index: [r.id for r in index.runs()])
    assert "a/2026-12-01-10-00-01" not in ids and len(ids) == 4

    # A run of "b" appears on disk; the next pass, an interval later, removes the older.
    make_run(logs, "b", "2026-12-01-10-00-05", day="2026-12-02")
    await trio.testing.wait_all_tasks_blocked()
    assert service.retention_passes == 1  # the next one waits for the interval
    mock_clock.jump(3600)
    await passes(service, 2)
    assert not other.meta.exists()
    assert service.counters.retention_removed_runs == 2
    await service.stop()


async def test_queries_refused_until_started(tmp_path: Path) -> None:
    service = IndexService(make_config(tmp_path), {})
    with pytest.raises(Refusal) as caught:
        await service.query(lambda index: index.count())
    assert caught.value.code == "index_unavailable"


async def test_an_index_that_cannot_be_opened_is_refused_not_fatal(
    tmp_path: Path, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path)
    (config.logs_path / "index.sqlite3").mkdir(parents=True)  # in the way of the file
    service = IndexService(config, {})
    await nursery.start(service.run)
    with pytest.raises(Refusal) as caught:
        await service.query(lambda index: index.count())
    assert caught.value.code == "index_unavailable"
    assert "cannot open the run index" in caught.value.message
    assert any("unavailable" in r.getMessage() for r in caplog.records)
    await service.stop()


async def test_a_full_write_queue_is_caught_up_from_the_run_files(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    config = make_config(tmp_path)
    service = IndexService(config, {}, queue_size=1)
    await nursery.start(service.run)
    await service.ready.wait()
    runs = [make_run(config.logs_path, f"n{i}", "2026-12-01-10-00-01") for i in range(5)]
    for files in runs:  # no checkpoint between: one fits, four find the queue full
        service._queue((files, None, None))
    with trio.fail_after(10):
        while await service.query(lambda index: index.count()) < len(runs):  # noqa: ASYNC110
            await trio.sleep(0.01)
