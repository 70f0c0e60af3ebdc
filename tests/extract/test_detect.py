"""Format ``auto``: what one line proves, and the extractor that holds lines until then."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from trio_wrapper.extract import make_extractor
from trio_wrapper.extract.base import Extractor
from trio_wrapper.extract.detect import SNIFF_LINES, AutoExtractor, sniff_json, sniff_line
from trio_wrapper.extract.records import Record, State
from trio_wrapper.extract.rules import Rule


@pytest.mark.parametrize(
    ("obj", "fmt"),
    [
        ({"type": "thread.started", "thread_id": "t"}, "codex-json"),
        ({"type": "item.completed", "item": {}}, "codex-json"),
        ({"type": "system", "subtype": "init"}, "claude-stream-json"),
        ({"type": "stream_event"}, "claude-stream-json"),
        ({"type": "result", "result": "done"}, "claude-stream-json"),
        ({"type": "result", "stats": {}}, "gemini-stream-json"),
        ({"type": "result", "status": "success"}, "gemini-stream-json"),
        ({"type": "init", "model": "g"}, "gemini-stream-json"),
        ({"type": "tool_use"}, "gemini-stream-json"),
        ({"msg": {"type": "x"}, "id": "0"}, "codex-json"),  # the older codex protocol
        ({"model": "o3", "sandbox": "read-only"}, "codex-json"),  # its config line
        ({"type": "error", "message": "x"}, None),  # Codex and Gemini both send these
        ({"type": "something-new"}, None),
        ({"type": 3}, None),
        ({"model": "o3"}, None),
        ({}, None),
    ],
)
def test_sniff_json(obj: dict[str, Any], fmt: str | None) -> None:
    assert sniff_json(obj) == fmt


@pytest.mark.parametrize(
    ("line", "fmt"),
    [
        (b'{"type":"turn.started"}', "codex-json"),
        (b"  {", "gemini-stream-json"),  # --output-format json, pretty-printed
        (b"OpenAI Codex v0.93.0 (research preview)", "text"),
        (b"[2025-08-01T10:00:00] OpenAI Codex v0.10.0", "text"),
        (b"Aider v0.86.2", "aider"),
        (b"Tokens: 2.1k sent, 120 received.", "aider"),
        (b"Applied edit to src/main.py", "aider"),
        (b"Main model: gpt-4o with diff edit format", "aider"),
        (b"hello world", None),
        (b"", None),
        (b'{"no": "type"}', None),
        (b"[1, 2]", None),
    ],
)
def test_sniff_line(line: bytes, fmt: str | None) -> None:
    assert sniff_line(line) == fmt


class FakeExtractor:
    """Records what it is fed; one State record per line, to see the replay."""

    def __init__(self, fmt: str) -> None:
        self.format = fmt
        self.in_code_block = False
        self.fed: list[tuple[list[bytes], int, str]] = []
        self.finished = False

    def feed(self, lines: Sequence[bytes], first_line_num: int, stream: str) -> list[Record]:
        self.fed.append((list(lines), first_line_num, stream))
        return [State(first_line_num + i, self.format, "") for i in range(len(lines))]

    def finish(self) -> list[Record]:
        self.finished = True
        return []


class Factory:
    def __init__(self) -> None:
        self.made: list[FakeExtractor] = []

    def __call__(self, fmt: str, rules: Sequence[Rule]) -> Extractor:
        extractor = FakeExtractor(fmt)
        self.made.append(extractor)
        return extractor


def test_lines_are_held_until_a_line_decides_then_replayed_in_order() -> None:
    factory = Factory()
    auto = AutoExtractor(factory, ())
    assert auto.format == "auto" and not auto.in_code_block
    assert auto.feed([b"warming up", b""], 1, "stderr") == []
    assert factory.made == []
    records = auto.feed([b'{"type":"thread.started"}', b"more"], 3, "stdout")
    (delegate,) = factory.made
    assert auto.format == "codex-json"
    assert delegate.fed == [
        ([b"warming up", b""], 1, "stderr"),
        ([b'{"type":"thread.started"}', b"more"], 3, "stdout"),
    ]
    assert [r.line_num for r in records] == [1, 2, 3, 4]
    # Decided: later lines go straight through.
    assert [r.line_num for r in auto.feed([b"x"], 5, "stdout")] == [5]
    assert delegate.fed[-1] == ([b"x"], 5, "stdout")


def test_without_a_signal_the_output_is_text_after_sniff_lines() -> None:
    factory = Factory()
    auto = AutoExtractor(factory, ())
    blanks = [b"   "] * (SNIFF_LINES * 2)  # blank lines do not count
    assert auto.feed(blanks, 1, "stdout") == []
    plain = [b"plain line %d" % i for i in range(SNIFF_LINES - 1)]
    assert auto.feed(plain, len(blanks) + 1, "stdout") == []
    assert factory.made == []
    records = auto.feed([b"one more"], len(blanks) + len(plain) + 1, "stdout")
    assert auto.format == "text"
    assert len(records) == len(blanks) + len(plain) + 1


def test_finish_before_a_decision_is_text() -> None:
    factory = Factory()
    auto = AutoExtractor(factory, ())
    auto.feed([b"short output"], 1, "stdout")
    assert len(auto.finish()) == 1
    (delegate,) = factory.made
    assert delegate.format == "text" and delegate.finished


def test_the_real_factory_decides_claude() -> None:
    auto = make_extractor("auto")
    auto.feed([b'{"type":"system","subtype":"init","session_id":"s"}'], 1, "stdout")
    assert auto.format == "claude-stream-json"
