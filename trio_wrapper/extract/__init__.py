"""Extraction: agent output lines in, structured records out. Pure: no trio, no I/O
(except :func:`load_rules` reading its file).

    ex = make_extractor("auto", rules=load_rules("conf/patterns.toml"))
    records = ex.feed(batch.lines, first_line_num, "stdout")   # per read, in order
    ...
    records = ex.finish()                                      # at end of output
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from trio_wrapper.core.models import FORMATS
from trio_wrapper.extract.aider import AiderExtractor
from trio_wrapper.extract.base import Extractor, NullExtractor
from trio_wrapper.extract.claude_json import ClaudeJsonExtractor
from trio_wrapper.extract.codex_json import CodexJsonExtractor
from trio_wrapper.extract.detect import AutoExtractor
from trio_wrapper.extract.gemini_json import GeminiJsonExtractor
from trio_wrapper.extract.records import (
    MATCHES_KEYS,
    RECORD_TYPES,
    CodeBlock,
    Error,
    FileOp,
    Metric,
    Prompt,
    Record,
    Response,
    Session,
    State,
    ToolCall,
    record_type,
)
from trio_wrapper.extract.rules import Rule, RulesError, load_rules, parse_rules
from trio_wrapper.extract.text import TextExtractor

EXTRACTOR_FORMATS: Final = FORMATS
# Formats whose extractor scans a read's lines as one buffer (or not at all): their
# lines are best kept whole (``LineSplitter(keep_whole=True)``). The JSON extractors
# (and ``auto``, which may become one) take the lines one by one.
WHOLE_BUFFER_FORMATS: Final = frozenset({"text", "aider", "none"})


def make_extractor(fmt: str, rules: Sequence[Rule] = ()) -> Extractor:
    """An extractor for one agent run. ``fmt`` is one of EXTRACTOR_FORMATS
    (ValueError otherwise); ``rules`` come from :func:`load_rules` and are tried on
    every line (not for ``none``)."""
    if fmt == "auto":
        return AutoExtractor(make_extractor, rules)
    if fmt == "text":
        return TextExtractor(rules)
    if fmt == "codex-json":
        return CodexJsonExtractor(rules)
    if fmt == "claude-stream-json":
        return ClaudeJsonExtractor(rules)
    if fmt == "gemini-stream-json":
        return GeminiJsonExtractor(rules)
    if fmt == "aider":
        return AiderExtractor(rules)
    if fmt == "none":
        return NullExtractor()
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(EXTRACTOR_FORMATS)}")


__all__ = [
    "EXTRACTOR_FORMATS",
    "MATCHES_KEYS",
    "RECORD_TYPES",
    "WHOLE_BUFFER_FORMATS",
    "CodeBlock",
    "Error",
    "Extractor",
    "FileOp",
    "Metric",
    "Prompt",
    "Record",
    "Response",
    "Rule",
    "RulesError",
    "Session",
    "State",
    "ToolCall",
    "load_rules",
    "make_extractor",
    "parse_rules",
    "record_type",
]
