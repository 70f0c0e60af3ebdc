"""The record types: their JSON (tagged by ``type``), the tables derived from them."""

from __future__ import annotations

import msgspec

from trio_wrapper.extract.records import (
    KIND_OF,
    MATCHES_KEYS,
    MAX_SHORT_TEXT,
    RECORD_CLASSES,
    RECORD_TYPES,
    CodeBlock,
    Metric,
    Record,
    ToolCall,
    record_type,
    short,
)


def test_a_record_encodes_with_its_type_first() -> None:
    record = Metric(7, "tokens_in", 1200, "tokens")
    assert msgspec.json.encode(record) == (
        b'{"type":"metric","line_num":7,"key":"tokens_in","value":1200,"unit":"tokens"}'
    )
    assert msgspec.to_builtins(record) == {
        "type": "metric",
        "line_num": 7,
        "key": "tokens_in",
        "value": 1200,
        "unit": "tokens",
    }


def test_records_decode_back_by_their_tag() -> None:
    records: list[Record] = [
        ToolCall(3, "shell", "ls", "completed", 0),
        CodeBlock(4, "py", 1, "x"),
    ]
    data = msgspec.json.encode(records)
    assert msgspec.json.decode(data, type=list[Record]) == records


def test_optional_fields_default() -> None:
    assert ToolCall(1, "shell", "ls", "started").exit_code is None
    assert b'"exit_code":null' in msgspec.json.encode(ToolCall(1, "shell", "ls", "started"))


def test_the_tables_agree_with_the_classes() -> None:
    assert RECORD_TYPES == (
        "session",
        "prompt",
        "response",
        "code_block",
        "tool_call",
        "file_op",
        "metric",
        "error",
        "state",
    )
    assert set(MATCHES_KEYS) == set(RECORD_TYPES)
    assert len(set(MATCHES_KEYS.values())) == len(RECORD_TYPES)
    for cls, name in zip(RECORD_CLASSES, RECORD_TYPES, strict=True):
        assert KIND_OF[cls] == name
    assert record_type(CodeBlock(1, "", 0, "")) == "code_block"


def test_short_cuts_with_an_ellipsis() -> None:
    assert short("abc") == "abc"
    assert short("x" * MAX_SHORT_TEXT) == "x" * MAX_SHORT_TEXT
    cut = short("x" * (MAX_SHORT_TEXT + 5))
    assert len(cut) == MAX_SHORT_TEXT and cut.endswith("…")
    assert short("abcdef", 4) == "abc…"
