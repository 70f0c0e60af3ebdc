"""A CLI that changed its output must not silently yield nothing: event types a format does
not know are counted (bounded), and a line another event was spliced into is mended."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import pytest

from trio_wrapper.extract import Record, make_extractor, record_type
from trio_wrapper.extract.base import MAX_UNKNOWN_KINDS, OTHER_KIND, count_unknown
from trio_wrapper.extract.store import ExtractionStore


def rows(records: list[Record]) -> list[tuple[Any, ...]]:
    return [(record_type(r), *msgspec.structs.astuple(r)) for r in records]


def encode(obj: Any) -> bytes:
    return msgspec.json.encode(obj)


@pytest.mark.parametrize(
    ("fmt", "lines", "unknown"),
    [
        (
            "claude-stream-json",
            [
                {"type": "assistant_v2", "message": {}},
                {"type": "assistant_v2"},
                {"type": "rate_limit_event", "rate_limit_info": {}},  # known, nothing to take
                {"type": "system", "subtype": "hook_started"},  # known type, other subtype
                {"message": "no type at all"},
            ],
            {"assistant_v2": 2, "(none)": 1},
        ),
        (
            "codex-json",
            [
                {"type": "thread.started", "thread_id": "t"},
                {"type": "turn.started"},
                {"type": "session.renamed", "name": "x"},
                {"type": "item.completed", "item": {"id": "1", "type": "collab_call"}},
                {"type": "item.started", "item": {"id": "2", "type": "collab_call"}},
                {"something": "else"},
            ],
            {"session.renamed": 1, "item:collab_call": 1, "(none)": 1},
        ),
        (
            "gemini-stream-json",
            [
                {"type": "init", "session_id": "s", "model": "m"},
                {"type": "thought", "content": "hmm"},
                {"type": "thought", "content": "hmm"},
            ],
            {"thought": 2},
        ),
    ],
)
def test_unknown_event_types_are_counted(
    fmt: str, lines: list[dict[str, Any]], unknown: dict[str, int]
) -> None:
    ex = make_extractor(fmt)
    ex.feed([encode(line) for line in lines], 1, "stdout")
    assert ex.take_unknown() == unknown
    assert ex.take_unknown() == {}  # counted since the last call


def test_auto_counts_through_the_format_it_chose() -> None:
    ex = make_extractor("auto")
    ex.feed([encode({"type": "system", "subtype": "init", "session_id": "s"})], 1, "stdout")
    ex.feed([encode({"type": "brand_new"})], 2, "stdout")
    assert ex.format == "claude-stream-json"
    assert ex.take_unknown() == {"brand_new": 1}


@pytest.mark.parametrize("fmt", ["text", "aider", "none"])
def test_text_formats_have_no_event_types(fmt: str) -> None:
    ex = make_extractor(fmt)
    ex.feed([b'{"type": "whatever"}', b"plain"], 1, "stdout")
    assert ex.take_unknown() == {}


def test_the_names_are_bounded() -> None:
    counts: dict[str, int] = {}
    for i in range(MAX_UNKNOWN_KINDS + 10):
        count_unknown(counts, f"type{i}")
    count_unknown(counts, "x" * 500)
    assert len(counts) == MAX_UNKNOWN_KINDS + 1
    assert counts[OTHER_KIND] == 11
    store = ExtractionStore("claude-stream-json")
    store.add_unknown(counts)
    store.add_unknown({"type0": 2, "newcomer": 5})
    assert store.unknown_events["type0"] == 3
    assert store.unknown_events[OTHER_KIND] == 16
    assert len(store.unknown_events) == MAX_UNKNOWN_KINDS + 1


# claude-code #49640: a rate_limit_event written into the middle of the final assistant
# line, its own newline splitting that line in two.
ASSISTANT = (
    '{"type":"assistant","message":{"id":"m1","model":"claude-x","content":'
    '[{"type":"text","text":"Hello, wor'
)
REST = 'ld!"}],"usage":{"input_tokens":10,"output_tokens":3}},"session_id":"s1"}'
RATE = '{"type":"rate_limit_event","rate_limit_info":{"status":"allowed","resetsAt":1}}'
RESULT = '{"type":"result","subtype":"success","session_id":"s1","total_cost_usd":0.01}'


def feed_claude(lines: list[str], cuts: tuple[int, ...] = ()) -> tuple[list[Any], dict[str, int]]:
    ex = make_extractor("claude-stream-json")
    raw = [line.encode() for line in lines]
    out: list[Record] = []
    bounds = [0, *cuts, len(raw)]
    for lo, hi in itertools.pairwise(bounds):
        out += ex.feed(raw[lo:hi], lo + 1, "stdout")
    out += ex.finish()
    return rows(out), ex.take_unknown()


EXPECTED = [
    ("session", 1, "model", "claude-x"),
    ("session", 1, "session_id", "s1"),
    ("response", 1, "Hello, world!"),
    ("metric", 1, "message_input_tokens", 10, "tokens"),
    ("metric", 1, "message_output_tokens", 3, "tokens"),
    ("metric", 3, "total_cost_usd", 0.01, "usd"),
    ("state", 3, "turn_completed", "success"),
]


@pytest.mark.parametrize("cuts", [(), (1,), (2,), (1, 2)], ids=["one", "cut1", "cut2", "each"])
def test_a_line_split_by_a_spliced_event_is_mended(cuts: tuple[int, ...]) -> None:
    got, unknown = feed_claude([ASSISTANT + RATE, REST, RESULT], cuts)
    assert got == EXPECTED
    assert unknown == {}


def test_an_event_spliced_inside_one_line_is_mended() -> None:
    got, _ = feed_claude([ASSISTANT + RATE + REST, "", RESULT])
    assert got == EXPECTED


def test_a_fragment_waits_one_line_only() -> None:
    # The head of the split line, then an unrelated whole line: the head is given up, the
    # rest is read as usual, and a late tail mends nothing.
    got, _ = feed_claude([ASSISTANT + RATE, RESULT, REST])
    assert got == [
        ("session", 2, "session_id", "s1"),
        ("metric", 2, "total_cost_usd", 0.01, "usd"),
        ("state", 2, "turn_completed", "success"),
    ]


def test_broken_lines_without_a_spliced_event_stay_plain() -> None:
    got, unknown = feed_claude(['{"type":"assistant","message":{"content":[', "garbage"])
    assert got == []
    assert unknown == {}
