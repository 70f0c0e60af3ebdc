"""The SSE wire format and its helpers: plain synchronous tests."""

from __future__ import annotations

import json

from trio_wrapper.streaming.wire import Event, TimestampCache, frame, parse_last_event_id


def test_wire_format() -> None:
    event = Event("codex-1", 17, 99, "log", line=b"caf\xc3\xa9 \xff", stream="stderr", line_num=4)
    wire = event.wire()
    assert wire.startswith(b"id: 17\nevent: log\ndata: {")
    assert wire.endswith(b"}\n\n") and wire.count(b"\n") == 4
    body = json.loads(wire.split(b"data: ", 1)[1])
    assert body["type"] == "log" and body["agent_name"] == "codex-1"
    assert body["data"] == {"line": "café \ufffd", "stream": "stderr", "line_num": 4}
    assert event.global_wire().startswith(b"id: 99\n")
    assert event.wire() is wire  # encoded once, shared
    multiline = Event("a", 1, 1, "extraction", {"type": "response", "text": "a\nb\r\nc"})
    assert multiline.wire().count(b"\ndata: ") == 1  # JSON escapes the newlines
    assert frame("ping", b"{}") == b"event: ping\ndata: {}\n\n"


def test_timestamps_and_last_event_id() -> None:
    cache = TimestampCache()
    assert cache.format(1_770_000_000.25) == "2026-02-02T02:40:00.250Z"
    assert cache.format(1_770_000_000.999) == "2026-02-02T02:40:00.999Z"
    assert cache.format(1_770_000_001.0) == "2026-02-02T02:40:01.000Z"
    assert parse_last_event_id("42") == 42
    assert parse_last_event_id(" 7 ") == 7
    for bad in ("", "-1", "1.5", "abc", "9" * 30, None):
        assert parse_last_event_id(bad) is None
