"""The events file: state events, and extraction records stamped as bytes."""

from __future__ import annotations

import json
from pathlib import Path

from trio_wrapper.extract.found import Found
from trio_wrapper.extract.records import CodeBlock, Error, Metric
from trio_wrapper.history.events import EventsFile


def test_state_events_and_stamped_records(tmp_path: Path) -> None:
    path = tmp_path / "run-events.jsonl"
    events = EventsFile(path)
    events.write_state("running", "")
    found = Found.of([Metric(2, "tokens", 10, "tokens"), Error(3, "boom", "stderr")])
    events.write_records(found.data)
    events.write_records(Found.of([CodeBlock(5, "py", 1, "x\ny")]).data)
    events.write_state("completed", "exit code 0")
    events.close()
    events.close()  # twice is harmless
    events.write_state("late", "")  # after close: nothing written
    lines = path.read_text().splitlines()
    assert len(lines) == 5
    parsed = [json.loads(line) for line in lines]
    # A state event: its keys in this order, the time last.
    assert list(parsed[0]) == ["type", "state", "detail", "timestamp"]
    assert (parsed[0]["state"], parsed[-1]["detail"]) == ("running", "exit code 0")
    # Every record: the time first, then the record as extraction encoded it.
    for line in lines[1:4]:
        assert line.startswith('{"timestamp":"')
    for line, record in zip(lines[1:3], found.lines(), strict=True):
        assert line.endswith("," + record.decode()[1:])
    assert [p["type"] for p in parsed[1:4]] == ["metric", "error", "code_block"]
    assert parsed[3]["content"] == "x\ny"
    assert parsed[1]["timestamp"] == parsed[2]["timestamp"]  # one stamp per batch


def test_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text('{"type":"state","state":"running","detail":"","timestamp":"t"}\n')
    events = EventsFile(path)
    events.write_state("stopped", "killed by SIGTERM")
    events.close()
    assert len(path.read_text().splitlines()) == 2
