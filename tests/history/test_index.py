"""The run index over run files on disk: built, kept up to date, rebuilt, queried."""

from __future__ import annotations

from pathlib import Path

import pytest

from trio_wrapper.core.models import RunMeta
from trio_wrapper.history.index import RunIndex, parse_moment
from trio_wrapper.history.runfiles import RunFiles
from trio_wrapper.history.usage import UsageTally

CLAUDE_RESULT = (
    b'{"timestamp":"t","type":"session","line_num":1,"key":"model","value":"claude-x"}\n'
    b'{"timestamp":"t","type":"file_op","line_num":2,"op":"create","path":"a.py"}\n'
    b'{"timestamp":"t","type":"metric","line_num":3,"key":"input_tokens","value":10,'
    b'"unit":"tokens"}\n'
    b'{"timestamp":"t","type":"metric","line_num":3,"key":"output_tokens","value":20,'
    b'"unit":"tokens"}\n'
    b'{"timestamp":"t","type":"metric","line_num":3,"key":"total_cost_usd","value":0.5,'
    b'"unit":"usd"}\n'
    b'{"type":"state","state":"completed","detail":"exit code 0","timestamp":"t"}\n'
)


def make_run(
    logs: Path,
    name: str,
    stamp: str,
    *,
    status: str = "completed",
    day: str = "2026-12-01",
    events: bytes = CLAUDE_RESULT,
    profile: str | None = "claude",
) -> RunFiles:
    directory = logs / "agents" / name
    directory.mkdir(parents=True, exist_ok=True)
    files = RunFiles(directory, stamp)
    meta = RunMeta(
        name=name,
        status=status,
        command=["claude", "-p", "hi"],
        format="claude-stream-json",
        profile=profile,
        started_at=f"{day}T10:00:{stamp[-2:]}.000+00:00",
        completed_at=f"{day}T10:01:00.000+00:00",
        duration_seconds=1.5,
        exit_code=0,
        bytes={"stdout": 3, "stderr": 0},
    )
    files.write_meta(meta)
    files.events.write_bytes(events)
    files.log("stdout").write_bytes(b"hi\n")
    files.log("stderr").write_bytes(b"")
    return files


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    return tmp_path / "logs"


def opened(logs: Path) -> RunIndex:
    index = RunIndex(logs)
    index.open()
    return index


def test_built_from_disk_and_queried(logs: Path) -> None:
    make_run(logs, "a", "2026-12-01-10-00-01")
    make_run(logs, "a", "2026-12-01-10-00-02", day="2026-12-02")
    make_run(logs, "b", "2026-12-01-10-00-03", profile=None)
    index = opened(logs)
    report = index.sync()
    assert (report.metas_read, report.events_read) == (3, 3)
    runs = index.runs()
    assert [r.id for r in runs] == [
        "a/2026-12-01-10-00-02",
        "b/2026-12-01-10-00-03",
        "a/2026-12-01-10-00-01",
    ]
    first = runs[0]
    assert first.model == "claude-x"
    assert (first.tokens.input, first.tokens.output, first.cost_usd) == (10, 20, 0.5)
    assert [(f.path, f.ops) for f in first.files] == [("a.py", ["create"])]
    assert first.command == ["claude", "-p", "hi"]
    assert first.bytes == 3
    assert first.disk_bytes > 0
    assert [r.id for r in index.runs(name="b")] == ["b/2026-12-01-10-00-03"]
    assert index.runs(status="failed") == []
    assert len(index.runs(limit=1)) == 1
    since = parse_moment("2026-12-02")
    assert since is not None
    assert [r.id for r in index.runs(since=since - 86_400 * 2, until=since)] != []
    groups, total = index.usage(group_by="day")
    assert [(g.key, g.runs, g.tokens.input) for g in groups] == [
        ("2026-12-01", 2, 20),
        ("2026-12-02", 1, 10),
    ]
    assert total.runs == 3
    assert total.cost_usd == pytest.approx(1.5)
    groups, _ = index.usage(group_by="profile")
    assert [(g.key, g.runs) for g in groups] == [(None, 1), ("claude", 2)]
    groups, _ = index.usage(group_by="model")
    assert [(g.key, g.runs, g.tokens.output) for g in groups] == [("claude-x", 3, 60)]
    groups, _ = index.usage(group_by="name")
    assert [(g.key, g.runs) for g in groups] == [("a", 2), ("b", 1)]


def test_a_fresh_index_reads_no_file_again(logs: Path) -> None:
    for i in range(5):
        make_run(logs, f"n{i}", f"2026-12-01-10-00-0{i}")
    index = opened(logs)
    index.sync()
    index.close()
    index = opened(logs)
    assert not index.rebuilt
    report = index.sync()
    assert (report.metas_read, report.events_read, report.dirs_skipped) == (0, 0, 5)
    assert index.count() == 5


def test_changes_on_disk_are_followed(logs: Path) -> None:
    kept = make_run(logs, "a", "2026-12-01-10-00-01", status="running", events=b"")
    gone = make_run(logs, "a", "2026-12-01-10-00-02")
    make_run(logs, "z", "2026-12-01-10-00-03")
    index = opened(logs)
    index.sync()
    assert index.runs(name="a")[1].status == "running"
    # The run ends (its meta rewritten, its events written), one is removed, one dir too.
    kept.events.write_bytes(CLAUDE_RESULT)
    meta = kept.read_meta()
    assert meta is not None
    meta.status = "completed"
    kept.write_meta(meta)
    for path in kept.directory.glob("2026-12-01-10-00-02-*"):
        path.unlink()
    for path in (logs / "agents" / "z").iterdir():
        path.unlink()
    (logs / "agents" / "z").rmdir()
    report = index.sync()
    assert report.removed == 2
    (run,) = index.runs()
    assert (run.id, run.status, run.tokens.input) == ("a/2026-12-01-10-00-01", "completed", 10)
    assert not gone.meta.exists()


def test_deleted_or_damaged_file_is_rebuilt(logs: Path) -> None:
    make_run(logs, "a", "2026-12-01-10-00-01")
    index = opened(logs)
    index.sync()
    index.close()
    index.path.unlink()
    index = opened(logs)
    assert index.rebuilt
    assert index.sync().metas_read == 1
    assert index.count() == 1
    index.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{index.path}{suffix}").unlink(missing_ok=True)
    index.path.write_bytes(b"this is not a database" * 100)
    index = opened(logs)
    assert index.rebuilt
    index.sync()
    assert index.count() == 1


def test_recorded_live_run_needs_no_events_file(logs: Path) -> None:
    files = make_run(logs, "live", "2026-12-01-10-00-01", events=b"")
    meta = files.read_meta()
    assert meta is not None
    tally = UsageTally("m")
    tally.add_json(b'{"type":"metric","line_num":1,"key":"tokens_used","value":7,"unit":"tokens"}')
    index = opened(logs)
    index.record_run(files, meta, tally)
    (run,) = index.runs()
    assert (run.model, run.tokens.other) == ("m", 7)
    # The next sync sees the meta unchanged and does not read its (empty) events file.
    report = index.sync()
    assert report.events_read == 0
    assert index.runs()[0].tokens.other == 7


def test_reservations_and_damaged_meta_are_not_runs(logs: Path) -> None:
    make_run(logs, "a", "2026-12-01-10-00-01")
    (logs / "agents" / "a" / "2026-12-01-10-00-09-meta.json").write_bytes(b"")
    (logs / "agents" / "a" / "2026-12-01-10-00-08-meta.json").write_bytes(b"{nope")
    index = opened(logs)
    index.sync()
    assert index.count() == 1


def test_parse_moment() -> None:
    assert parse_moment("2026-12-01T00:00:00+00:00") == 1_796_083_200.0
    assert parse_moment("nonsense") is None
    assert parse_moment("2026-12-01") is not None
