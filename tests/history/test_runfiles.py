"""A run's files: paths, reserving a stamp, the atomic meta file, history read at start."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from trio_wrapper.core.fdwrite import write_all
from trio_wrapper.core.models import RunMeta
from trio_wrapper.history.runfiles import (
    RunFiles,
    load_history,
    open_append,
    read_meta,
)

MOMENT = datetime(2026, 2, 10, 5, 44, 30, tzinfo=UTC)


def test_paths_follow_the_seed_layout(tmp_path: Path) -> None:
    files = RunFiles(tmp_path / "agents" / "w1", "2026-02-10-05-44-30")
    directory = tmp_path / "agents" / "w1"
    assert files.meta == directory / "2026-02-10-05-44-30-meta.json"
    assert files.events == directory / "2026-02-10-05-44-30-events.jsonl"
    assert files.log("stdout") == directory / "2026-02-10-05-44-30-stdout.log"
    assert files.log("stderr") == directory / "2026-02-10-05-44-30-stderr.log"


def test_create_reserves_the_stamp_and_a_second_run_in_the_same_second_gets_2(
    tmp_path: Path,
) -> None:
    first = RunFiles.create(tmp_path, "w1", MOMENT)
    assert first.directory == tmp_path / "agents" / "w1"
    assert first.stamp == "2026-02-10-05-44-30"
    assert first.meta.exists() and first.meta.read_bytes() == b""  # the reservation
    second = RunFiles.create(tmp_path, "w1", MOMENT)
    third = RunFiles.create(tmp_path, "w1", MOMENT)
    assert second.stamp == "2026-02-10-05-44-30-2"
    assert third.stamp == "2026-02-10-05-44-30-3"
    assert second.log("stdout").name == "2026-02-10-05-44-30-2-stdout.log"
    # Another name in the same second has its own directory, so its own first stamp.
    assert RunFiles.create(tmp_path, "w2", MOMENT).stamp == "2026-02-10-05-44-30"


def test_write_meta_replaces_the_file_whole(tmp_path: Path) -> None:
    files = RunFiles.create(tmp_path, "m", MOMENT)
    assert files.read_meta() is None  # an empty reservation is not a meta
    files.write_meta(RunMeta(name="m", status="running", command=["echo", "x"]))
    inode = files.meta.stat().st_ino
    files.write_meta(RunMeta(name="m", status="completed", command=["echo", "x"], exit_code=0))
    assert files.meta.stat().st_ino != inode  # a new file renamed over the old one
    assert list(files.directory.glob("*.tmp")) == []
    data = files.meta.read_bytes()
    assert data.endswith(b"}\n")
    written = json.loads(data)
    assert written["status"] == "completed" and written["exit_code"] == 0
    assert "deleted_at" not in written  # only a DELETE writes it
    assert list(written)[:3] == ["name", "status", "command"]
    meta = files.read_meta()
    assert meta is not None and meta.status == "completed" and meta.command == ["echo", "x"]


def test_read_meta_tolerates_missing_keys_and_refuses_damage(tmp_path: Path) -> None:
    path = tmp_path / "x-meta.json"
    path.write_text('{"status": "completed", "unknown_key": 1, "pid": "42"}')
    meta = read_meta(path)
    assert meta is not None
    assert (meta.name, meta.status, meta.pid, meta.command) == (None, "completed", 42, [])
    assert meta.extraction.total_matches == 0 and meta.bytes == {}
    path.write_text("{not json")
    assert read_meta(path) is None
    path.write_text("[1, 2]")
    assert read_meta(path) is None
    assert read_meta(tmp_path / "absent-meta.json") is None


def write(directory: Path, stamp: str, meta: dict[str, object]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stamp}-meta.json"
    path.write_text(json.dumps(meta))
    return path


def test_load_history_lists_the_newest_run_of_each_name(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write(agents / "a", "2026-01-01-00-00-00", {"status": "completed", "started_at": "2026-01-01"})
    write(agents / "a", "2026-01-02-00-00-00", {"status": "failed", "started_at": "2026-01-02"})
    write(agents / "b", "2026-01-01-00-00-00", {"status": "stopped", "deleted_at": "2026-01-03"})
    write(agents / "c", "2026-01-01-00-00-00", {"name": "c"})  # no status: not a run
    (agents / "c" / "2026-01-01-00-00-01-meta.json").write_bytes(b"")  # a reservation
    (agents / "d").mkdir()
    (agents / "stray-file").write_text("x")
    found = load_history(tmp_path)
    assert [(files.directory.name, files.stamp, meta.status) for files, meta in found] == [
        ("a", "2026-01-02-00-00-00", "failed")
    ]


def test_load_history_marks_cut_short_runs_interrupted(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    running = write(agents / "r", "2026-01-01-00-00-00", {"status": "running", "pid": 7})
    stopping = write(agents / "s", "2026-01-01-00-00-00", {"status": "stopping"})
    # A deleted run cut short is rewritten too, but stays unlisted.
    gone = write(agents / "g", "2026-01-01-00-00-00", {"status": "starting", "deleted_at": "x"})
    found = load_history(tmp_path)
    assert [(files.directory.name, meta.status) for files, meta in found] == [
        ("r", "interrupted"),
        ("s", "interrupted"),
    ]
    for path in (running, stopping, gone):
        assert json.loads(path.read_text())["status"] == "interrupted"
    assert json.loads(running.read_text())["pid"] == 7


def test_load_history_without_an_agents_dir(tmp_path: Path) -> None:
    assert load_history(tmp_path) == []


def test_write_all_appends_every_part(tmp_path: Path) -> None:
    path = tmp_path / "log"
    fd = open_append(path)
    try:
        write_all(fd, b"one ", memoryview(b"two "), b"")
        write_all(fd, b"three")
    finally:
        os.close(fd)
    assert path.read_bytes() == b"one two three"


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_open_log_appends(tmp_path: Path, stream: str) -> None:
    files = RunFiles.create(tmp_path, "l", MOMENT)
    for chunk in (b"a\n", b"b\n"):
        fd = files.open_log(stream)
        try:
            write_all(fd, chunk)
        finally:
            os.close(fd)
    assert files.log(stream).read_bytes() == b"a\nb\n"
