"""Format ``auto``: sniff the first lines, then hand everything to the real extractor.

A JSON line with a known event type decides at once; so do the banners of plain
``codex exec`` and aider and aider's unmistakable lines. Until then lines are held
(with their numbers and streams) and replayed into the chosen extractor, so nothing
before the decision is lost. After SNIFF_LINES non-blank lines without a signal the
output is plain text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Final

from trio_wrapper.extract.base import Extractor
from trio_wrapper.extract.jsonl import decode_object
from trio_wrapper.extract.records import Record
from trio_wrapper.extract.rules import Rule

# Enough for aider, whose first cost line can come after a screenful of response.
SNIFF_LINES: Final = 64

_CODEX_TYPES: Final = frozenset({"thread.started", "turn.started", "turn.completed", "turn.failed"})
_CLAUDE_TYPES: Final = frozenset(
    {"system", "assistant", "user", "control_request", "control_response", "stream_event"}
)
_GEMINI_TYPES: Final = frozenset({"init", "message", "tool_use", "tool_result"})
_CODEX_CONFIG_KEYS: Final = frozenset({"workdir", "sandbox", "approval"})
_TEXT_SIGNAL = re.compile(
    rb"(?:\[[0-9]{4}-[^\]]*\] )?OpenAI Codex v[0-9]"
    rb"|(?P<aider>Aider v[0-9]|Tokens: [0-9][0-9.,]*[kKmM]? sent, "
    rb"|Applied edit to |(?:Main model|Model|Models): \S+ with \S+ edit format)"
)


def sniff_json(obj: dict[str, Any]) -> str | None:
    kind = obj.get("type")
    if type(kind) is str:
        if kind in _CODEX_TYPES or kind.startswith("item."):
            return "codex-json"
        if kind in _CLAUDE_TYPES:
            return "claude-stream-json"
        if kind in _GEMINI_TYPES:
            return "gemini-stream-json"
        if kind == "result":
            if "stats" in obj or "status" in obj:
                return "gemini-stream-json"
            return "claude-stream-json"
        return None  # "error" and unknown types: both Codex and Gemini could send them
    if "msg" in obj and "id" in obj:
        return "codex-json"
    if "model" in obj and _CODEX_CONFIG_KEYS.intersection(obj):
        return "codex-json"
    return None


def sniff_line(raw: bytes) -> str | None:
    """The format this one line proves, or None."""
    obj = decode_object(raw)
    if obj is not None:
        return sniff_json(obj)
    stripped = raw.strip()
    if stripped == b"{":
        return "gemini-stream-json"  # --output-format json, pretty-printed
    m = _TEXT_SIGNAL.match(stripped)
    if m is None:
        return None
    return "aider" if m.group("aider") else "text"


class AutoExtractor:
    def __init__(
        self, factory: Callable[[str, Sequence[Rule]], Extractor], rules: Sequence[Rule]
    ) -> None:
        self._factory = factory
        self._rules = tuple(rules)
        self._delegate: Extractor | None = None
        self._held: list[tuple[Sequence[bytes], int, str]] = []
        self._seen = 0

    @property
    def format(self) -> str:
        return "auto" if self._delegate is None else self._delegate.format

    @property
    def in_code_block(self) -> bool:
        return self._delegate is not None and self._delegate.in_code_block

    def take_unknown(self) -> dict[str, int]:
        return {} if self._delegate is None else self._delegate.take_unknown()

    def feed(self, lines: Sequence[bytes], first_line_num: int, stream: str) -> list[Record]:
        if self._delegate is not None:
            return self._delegate.feed(lines, first_line_num, stream)
        self._held.append((lines, first_line_num, stream))
        for raw in lines:
            verdict = sniff_line(raw)
            if verdict is not None:
                return self._decide(verdict)
            if raw.strip():
                self._seen += 1
                if self._seen >= SNIFF_LINES:
                    return self._decide("text")
        return []

    def finish(self) -> list[Record]:
        out = self._decide("text") if self._delegate is None else []
        assert self._delegate is not None
        return out + self._delegate.finish()

    def _decide(self, fmt: str) -> list[Record]:
        delegate = self._delegate = self._factory(fmt, self._rules)
        out: list[Record] = []
        for lines, first_line_num, stream in self._held:
            out.extend(delegate.feed(lines, first_line_num, stream))
        self._held = []
        return out
