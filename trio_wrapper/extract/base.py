"""What every extractor offers, and the two trivial ones."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final, Protocol

from trio_wrapper.core.lines import joined
from trio_wrapper.extract.records import Error, Record, short
from trio_wrapper.extract.rules import Rule, apply_rules


class Extractor(Protocol):
    """Lines in, records out; one instance per agent run, fed in read order.

    ``feed`` gets the raw lines of one read (no newline, maybe invalid UTF-8) with the
    ``line_num`` of the first one and the stream (``"stdout"``/``"stderr"``); ``finish``
    is called once at end of output and returns what was still open (an unclosed
    code block, a response still being streamed).
    """

    @property
    def format(self) -> str: ...

    @property
    def in_code_block(self) -> bool: ...

    def feed(self, lines: Sequence[bytes], first_line_num: int, stream: str) -> list[Record]: ...

    def finish(self) -> list[Record]: ...

    def take_unknown(self) -> dict[str, int]:
        """Event types the format does not know (a CLI changed its output), counted since
        the last call: at most ``MAX_UNKNOWN_KINDS`` names, the rest as ``(other)``."""
        ...


# An extractor of a structured format counts the event types it does not know, so that a
# CLI that changed its output shows up as such instead of silently yielding nothing.
MAX_UNKNOWN_KINDS = 16
MAX_KIND_CHARS = 64
OTHER_KIND = "(other)"
NO_KIND = "(none)"


def count_unknown(counts: dict[str, int], kind: str, count: int = 1) -> None:
    """Add ``count`` events of ``kind`` to ``counts``, keeping it to ``MAX_UNKNOWN_KINDS``
    names (cut to ``MAX_KIND_CHARS``) plus ``(other)``: a CLI printing a new type name on
    every line cannot grow it without bound."""
    kind = kind[:MAX_KIND_CHARS] or NO_KIND
    if kind not in counts and len(counts) >= MAX_UNKNOWN_KINDS:
        kind = OTHER_KIND
    counts[kind] = counts.get(kind, 0) + count


class NullExtractor:
    """Format ``none``: lines are logged and counted elsewhere, nothing is extracted."""

    __slots__ = ()

    @property
    def format(self) -> str:
        return "none"

    @property
    def in_code_block(self) -> bool:
        return False

    def feed(self, lines: Sequence[bytes], first_line_num: int, stream: str) -> list[Record]:
        return []

    def finish(self) -> list[Record]:
        return []

    def take_unknown(self) -> dict[str, int]:
        return {}


def decode_batch(lines: Sequence[bytes]) -> str:
    """One decode for the whole batch: far cheaper than one per line."""
    return joined(lines).decode("utf-8", "replace")


def with_rules(
    records: list[Record], rules: Sequence[Rule], text: str, first_line_num: int
) -> list[Record]:
    """Merge rule records into a batch's records, keeping line order."""
    extra = apply_rules(rules, text, first_line_num)
    if not extra:
        return records
    if not records:
        return extra
    merged = records + extra
    merged.sort(key=_line_of)
    return merged


def _line_of(record: Record) -> int:
    return record.line_num


# A line that reads as an error or warning report. Anchored at the start and needing
# text after the colon, so "errors: 0", "Error handling", "error:" alone or an
# indented quote do not count.
ERROR_LINE = re.compile(
    r"(?:(?:error|ERROR|Error|fatal|FATAL|Fatal|panic)(?:\[[^\]]*\])?"
    r"|(?:\w+\.)*[A-Z][A-Za-z]*(?:Error|Exception))"
    r":[ \t]*\S"
)
WARNING_LINE = re.compile(r"(?:warning|WARNING|Warning|WARN)(?:\[[^\]]*\])?:[ \t]*\S")
# Such a line begins with the first letter of one of the words above, or holds "Error:" or
# "Exception:" (an exception's name ends so). Most lines a text extractor looks at are no
# error: this test, a set lookup and two substring searches, spares them both patterns.
_ERROR_FIRST: Final = frozenset("eEfFpwW")


def is_error_line(line: str) -> bool:
    """The line reads as an error or warning report (above)."""
    if line[:1] not in _ERROR_FIRST and "Error:" not in line and "Exception:" not in line:
        return False
    return ERROR_LINE.match(line) is not None or WARNING_LINE.match(line) is not None


def error_line(line: str, line_num: int, source: str) -> Error | None:
    """An ``error`` record for an error or warning line, else None. The message is the
    line itself, so a warning still reads "warning: …"."""
    if is_error_line(line):
        return Error(line_num, short(line.rstrip()), source)
    return None
