"""The daemon's log lines: JSON and text, event fields, one line per event, no token."""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

import pytest

from trio_wrapper.core.logformat import StructuredFormatter, configure, text_value
from trio_wrapper.core.redact import REDACTED, Redactor, redact

TOKEN = "s3cret-T0ken-value"


def boom() -> None:
    raise ValueError(f"boom ?access_token={TOKEN}")


def record(
    msg: str = "agent %s started",
    args: tuple[object, ...] = ("demo",),
    *,
    levelno: int = logging.INFO,
    logger: str = "trio_wrapper.agents",
    exc: bool = False,
    extra: dict[str, object] | None = None,
    **fields: object,
) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            boom()
        except ValueError:
            exc_info = sys.exc_info()
    rec = logging.getLogger(logger).makeRecord(
        logger, levelno, "f.py", 1, msg, args, exc_info, extra={**(extra or {}), **fields} or None
    )
    rec.created = 1_765_000_000.25
    return rec


def as_json(rec: logging.LogRecord, secrets: tuple[str, ...] = ()) -> dict[str, object]:
    line = StructuredFormatter("json", secrets).format(rec)
    assert "\n" not in line
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_json_has_the_base_keys_then_the_event_fields_in_order() -> None:
    line = as_json(record(event="agent_started", agent="demo", pid=42, run="demo/2026-x"))
    assert list(line)[:5] == ["ts", "level", "logger", "event", "message"]
    assert line["level"] == "info"
    assert line["logger"] == "trio_wrapper.agents"
    assert line["event"] == "agent_started"
    assert line["message"] == "agent demo started"
    assert list(line)[5:] == ["agent", "pid", "run"]
    assert line["pid"] == 42
    # Local time with offset and milliseconds, like every stamp of the contract.
    ts = str(line["ts"])
    assert ts[19:23] == ".250" and ts[23] in "+-Z"


def test_a_record_without_event_fields_is_a_plain_message() -> None:
    line = as_json(record("Running on %s", ("http://127.0.0.1:1",), logger="hypercorn.error"))
    assert line["event"] == "message"
    assert set(line) == {"ts", "level", "logger", "event", "message"}


def test_event_fields_do_not_replace_the_base_keys() -> None:
    forged = {"ts": "forged", "level": "forged", "logger": "forged", "exc": "forged"}
    line = as_json(record(event="x", extra=forged))
    assert line["logger"] == "trio_wrapper.agents" and line["level"] == "info"
    assert line["ts"] != "forged"
    assert "exc" not in line


def test_values_json_cannot_encode_become_strings() -> None:
    line = as_json(record(event="x", path=Path("/a/b"), pair=(1, None), nested={"k": {1, 2}}))
    assert line["path"] == "/a/b"
    assert line["pair"] == [1, None]
    assert sorted(line["nested"]["k"]) == [1, 2]  # type: ignore[index]


def test_exception_is_one_field_of_the_json_line() -> None:
    line = as_json(record(exc=True, event="internal_error"))
    assert "ValueError" in str(line["exc"]) and "Traceback" in str(line["exc"])


def test_text_is_the_message_then_key_value_pairs() -> None:
    rec = record(event="agent_exited", agent="demo", exit_code=None, ok=True, secs=0.5)
    line = StructuredFormatter("text").format(rec)
    assert line.endswith(
        " INFO trio_wrapper.agents: agent demo started "
        "event=agent_exited agent=demo exit_code=null ok=true secs=0.5"
    )


def test_text_quotes_what_is_not_one_plain_word() -> None:
    assert text_value("demo/2026-12-06-10-11-12") == "demo/2026-12-06-10-11-12"
    assert text_value("exit code 3") == '"exit code 3"'
    assert text_value('a"b') == '"a\\"b"'
    assert text_value("k=v") == '"k=v"'
    assert text_value("") == '""'
    assert text_value("line\nforged=1") == '"line\\nforged=1"'
    assert text_value([1, "a"]) == '[1,"a"]'


def test_text_keeps_one_line_per_event_whatever_the_message() -> None:
    rec = record("agent %s", ("x\n2026-01-01 INFO forged: line",), event="e")
    line = StructuredFormatter("text").format(rec)
    assert "\n" not in line
    assert "x\\n2026-01-01 INFO forged" in line


def test_text_puts_a_traceback_after_the_line() -> None:
    first, *rest = StructuredFormatter("text").format(record(exc=True)).split("\n")
    assert first.endswith("agent demo started")
    assert rest[0].startswith("Traceback") and "ValueError" in rest[-1]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_token_in_any_part_of_a_line(fmt: str) -> None:
    rec = record(
        "GET %s from %s",
        (f"/api/events?access_token={TOKEN}", TOKEN),
        exc=True,
        event="x",
        url=f"http://h/?a=1&access_token={TOKEN}&b=2",
        argv0=f"--key={TOKEN}",
        nested={"list": [f"Bearer {TOKEN}"]},
    )
    line = StructuredFormatter(fmt, [TOKEN]).format(rec)  # type: ignore[arg-type]
    assert TOKEN not in line
    assert REDACTED in line
    assert "a=1&access_token=[redacted]&b=2" in line


def test_query_token_is_redacted_without_knowing_the_token() -> None:
    assert redact("/s?access_token=abc&x=1") == "/s?access_token=[redacted]&x=1"
    assert redact("/s?ACCESS%5FTOKEN=abc") == "/s?ACCESS%5FTOKEN=[redacted]"
    assert redact("nothing here") == "nothing here"
    assert Redactor(["", "ab"])("xaby") == "x[redacted]y"


def test_configure_sends_every_logger_through_one_handler() -> None:
    root = logging.getLogger()
    saved, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        configure("warning", "json", [TOKEN], stream=stream)
        logging.getLogger("trio_wrapper.retention").info("not at this level")
        logging.getLogger("trio_wrapper.retention").warning(
            "removed %d runs", 2, extra={"event": "retention_removed", "runs": 2, "bytes": 10}
        )
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(saved_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1
    assert lines[0]["event"] == "retention_removed"
    assert lines[0]["runs"] == 2 and lines[0]["bytes"] == 10
    assert lines[0]["level"] == "warning" and lines[0]["logger"] == "trio_wrapper.retention"
