"""A name's runs read back from disk, and a past run's events file read back."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from trio_wrapper.extract.found import Found
from trio_wrapper.extract.records import CodeBlock, Error, Metric, Response
from trio_wrapper.extract.store import ExtractionStore
from trio_wrapper.history.events import EventsFile, read_events, read_records
from trio_wrapper.history.runfiles import list_runs, read_run, stamp_key


def write(directory: Path, stamp: str, meta: dict[str, object]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stamp}-meta.json").write_text(json.dumps(meta))


def test_stamps_order_by_second_then_by_suffix() -> None:
    stamps = ["2026-01-01-00-00-00-10", "2026-01-01-00-00-01", "2026-01-01-00-00-00"]
    stamps += ["2026-01-01-00-00-00-2"]
    assert sorted(stamps, key=stamp_key) == [
        "2026-01-01-00-00-00",
        "2026-01-01-00-00-00-2",
        "2026-01-01-00-00-00-10",
        "2026-01-01-00-00-01",
    ]


def test_list_runs_newest_first_deleted_included(tmp_path: Path) -> None:
    runs = tmp_path / "agents" / "a"
    write(runs, "2026-01-01-00-00-00", {"status": "completed", "deleted_at": "x"})
    write(runs, "2026-01-01-00-00-00-2", {"status": "failed"})
    write(runs, "2026-01-02-00-00-00", {"status": "completed"})
    (runs / "2026-01-03-00-00-00-meta.json").write_bytes(b"")  # a reservation: no run
    (runs / "notes-meta.json").write_text("{}")  # not a stamp
    found = list_runs(tmp_path, "a")
    assert [(files.stamp, meta.status) for files, meta in found] == [
        ("2026-01-02-00-00-00", "completed"),
        ("2026-01-01-00-00-00-2", "failed"),
        ("2026-01-01-00-00-00", "completed"),
    ]
    assert list_runs(tmp_path, "nobody") == []


def test_a_run_cut_short_reads_as_interrupted_unless_it_is_the_live_one(tmp_path: Path) -> None:
    runs = tmp_path / "agents" / "r"
    stamp = "2026-01-01-00-00-00"
    write(runs, stamp, {"status": "running", "started_at": "2026-01-01T00:00:00+00:00"})
    (runs / f"{stamp}-stdout.log").write_bytes(b"one\ntwo\nthree")
    found = read_run(tmp_path, "r", stamp)
    assert found is not None
    meta = found[1]
    # What its log really holds; the file itself is left as it was.
    assert meta.status == "interrupted" and meta.bytes["stdout"] == 13
    assert meta.lines == {"stdout": 3, "stderr": 0} and meta.total_lines == 3
    assert json.loads((runs / f"{stamp}-meta.json").read_text())["status"] == "running"
    live = read_run(tmp_path, "r", stamp, live_stamp=stamp)
    assert live is not None and live[1].status == "running"
    assert read_run(tmp_path, "r", "../../etc") is None
    assert read_run(tmp_path, "r", "2026-01-01-00-00-09") is None


def events_file(path: Path) -> None:
    events = EventsFile(path)
    events.write_state("running", "")
    events.write_records(Found.of([Metric(2, "tokens", 10, "tokens"), Error(3, "boom", "x")]).data)
    events.write_records(Found.of([CodeBlock(5, "py", 1, "print(1)")]).data)
    events.write_state("completed", "exit code 0")
    events.close()


def test_read_records_feeds_the_store_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "run-events.jsonl"
    events_file(path)
    with path.open("ab") as file:
        file.write(b'{"timestamp":"x","type":"metric","line_num":9')  # cut short: skipped
    store = ExtractionStore("text")
    read_records(path, store)
    assert store.total == 3 and store.counts == {"metric": 1, "error": 1, "code_block": 1}
    matches = store.matches(10)
    assert matches["metrics"] == [
        {"type": "metric", "line_num": 2, "key": "tokens", "value": 10, "unit": "tokens"}
    ]
    assert matches["code_blocks"][0]["content"] == "print(1)"
    read_records(tmp_path / "absent", store)  # nothing, no error
    assert store.total == 3


def test_read_records_keeps_the_store_window(tmp_path: Path) -> None:
    path = tmp_path / "run-events.jsonl"
    events = EventsFile(path)
    for batch in range(5):
        metrics = [Metric(batch * 1000 + i, "n", i, "") for i in range(1000)]
        events.write_records(Found.of(metrics).data)
    events.close()
    store = ExtractionStore("text", keep=10)
    read_records(path, store)
    assert store.total == 5000
    kept = store.matches(10_000)["metrics"]
    assert [m["line_num"] for m in kept] == list(range(4990, 5000))


def test_read_events_numbers_lines_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "run-events.jsonl"
    events_file(path)
    events, total = read_events(path)
    assert total == 5
    assert [(e.seq, e.type) for e in events] == [
        (1, "state"),
        (2, "extraction"),
        (3, "extraction"),
        (4, "extraction"),
        (5, "state"),
    ]
    assert events[0].data == {"state": "running", "detail": ""}
    assert list(events[1].data) == ["type", "line_num", "key", "value", "unit"]
    assert events[4].data == {"state": "completed", "detail": "exit code 0"}
    assert all(e.created is not None for e in events)
    last_two, _ = read_events(path, last=2)
    assert [e.seq for e in last_two] == [4, 5]
    after, _ = read_events(path, after=3, last=10)
    assert [e.seq for e in after] == [4, 5]
    assert read_events(tmp_path / "absent") == ([], 0)


def test_every_record_of_a_batch_is_stamped_on_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "run-events.jsonl"
    tricky = 'a record that says {"type":"metric"} and\n{"type": on a new line'
    records = [Response(1, tricky), Metric(2, "tokens", 10, "tokens"), Error(3, tricky, "x")]
    events = EventsFile(path)
    events.write_records(Found.of(records).data)
    events.write_records(Found.of(records[1:2]).data)
    events.close()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 4
    decoded = [json.loads(line) for line in lines]
    assert all(line.startswith(b'{"timestamp":"') for line in lines)
    assert [d.pop("timestamp")[:2] for d in decoded] == ["20"] * 4
    assert decoded[0] == {"type": "response", "line_num": 1, "text": tricky}
    assert decoded[2]["message"] == tricky
    assert decoded[1] == decoded[3] == json.loads(msgspec.json.encode(records[1]))
