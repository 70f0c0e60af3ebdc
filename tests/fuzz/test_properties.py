"""Property tests with many examples (``make fuzz``): the line splitter, the extractors
and the request parsers take any input without raising, and keep their promises."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_wrapper.api.requests import DIGITS, nesting_depth_exceeds
from trio_wrapper.core.lines import LineSplitter
from trio_wrapper.core.models import FORMATS
from trio_wrapper.extract import make_extractor, parse_rules
from trio_wrapper.streaming.wire import parse_last_event_id

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2000"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Output as agents write it: mostly text and newlines, some \r, some bytes beyond ASCII.
output_bytes = st.one_of(
    st.binary(max_size=2000),
    st.lists(st.sampled_from([b"a", b"bc", b"\n", b"\r\n", b"\r", b"\xff", b"\xc3\xa9", b" "])).map(
        b"".join
    ),
)


def split_all(data: bytes, cuts: Sequence[int], cap: int) -> tuple[list[bytes], list[int]]:
    """Lines and cut flags of ``data`` fed in pieces at the positions ``cuts``."""
    splitter = LineSplitter(cap)
    lines: list[bytes] = []
    cut: list[int] = []
    bounds = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    for start, end in pairwise(bounds):
        batch = splitter.feed(data[start:end])
        cut += [len(lines) + i for i in batch.cut]
        lines += list(batch.lines)
    batch = splitter.flush()
    cut += [len(lines) + i for i in batch.cut]
    lines += list(batch.lines)
    return lines, cut


@FUZZ
@given(output_bytes, st.lists(st.integers(min_value=0), max_size=20), st.integers(1, 64))
def test_line_splitter_is_independent_of_chunking(data: bytes, cuts: list[int], cap: int) -> None:
    assert split_all(data, cuts, cap) == split_all(data, [], cap)


@FUZZ
@given(output_bytes, st.lists(st.integers(min_value=0), max_size=20), st.integers(1, 64))
def test_line_splitter_keeps_every_byte_and_the_cap(data: bytes, cuts: list[int], cap: int) -> None:
    lines, cut = split_all(data, cuts, cap)
    assert all(len(line) <= cap and b"\n" not in line for line in lines)
    if b"\r" in data:
        return  # a \r before \n is dropped: the rebuild below would not hold
    rebuilt = b"".join(line + (b"" if i in cut else b"\n") for i, line in enumerate(lines))
    expected = data if not data or data.endswith(b"\n") else data + b"\n"
    assert rebuilt == expected


# JSON lines in the shapes the CLIs write, with values of any kind.
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
event_keys = st.sampled_from(
    [
        "type",
        "item",
        "msg",
        "message",
        "content",
        "text",
        "role",
        "tool",
        "name",
        "input",
        "usage",
        "result",
        "error",
        "session_id",
        "subtype",
        "delta",
        "id",
        "status",
        "stats",
    ]
)
event_types = st.sampled_from(
    [
        "message",
        "assistant",
        "user",
        "system",
        "result",
        "tool_use",
        "tool_result",
        "init",
        "item.completed",
        "item.started",
        "turn.completed",
        "error",
        "thread.started",
        "usage",
    ]
)
json_event = st.builds(
    lambda t, body: json.dumps({"type": t, **body}),
    event_types,
    st.dictionaries(event_keys, json_value, max_size=6),
)
text_line = st.one_of(
    st.text(max_size=200),
    st.sampled_from(
        [
            "```python",
            "```",
            "Error: boom",
            "Traceback (most recent call last):",
            "Applied edit to src/x.py",
            "tokens used: 1,234",
            "> prompt",
            "$ ls",
            "exit code 1",
            "Tokens: 1.2k sent, 300 received. Cost: $0.01",
            "Commit abc1234 fix",
        ]
    ),
)
any_line = st.one_of(
    json_event.map(str.encode),
    text_line.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=200),
)
RULES = parse_rules(
    {
        "rules": [
            {"name": "words", "type": "metric", "regex": r"(\d[\d,.]*k?) words", "unit": "w"},
            {"name": "limited", "type": "error", "regex": r"(?i)rate limit(?:ed)?[: ]+(.+)"},
        ]
    }
)


@FUZZ
@given(
    st.sampled_from(FORMATS),
    st.lists(st.lists(any_line.map(lambda b: b.replace(b"\n", b" ")), max_size=8), max_size=8),
)
def test_extractors_take_any_lines(fmt: str, batches: list[list[bytes]]) -> None:
    extractor = make_extractor(fmt, RULES)
    line_num = 1
    for batch in batches:
        records = extractor.feed(batch, line_num, "stdout")
        assert isinstance(records, list)
        line_num += len(batch)
    assert isinstance(extractor.finish(), list)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


@FUZZ
@given(json_value, st.integers(0, 8))
def test_nesting_depth_matches_the_json(value: Any, limit: int) -> None:
    body = json.dumps(value).encode()
    assert nesting_depth_exceeds(body, limit) == (depth(value) > limit)


@FUZZ
@given(st.text(max_size=30))
def test_last_event_id_is_ascii_digits_or_nothing(text: str) -> None:
    parsed = parse_last_event_id(text)
    stripped = text.strip()
    if parsed is None:
        assert not DIGITS.match(stripped)
    else:
        assert DIGITS.match(stripped) and parsed == int(stripped)
