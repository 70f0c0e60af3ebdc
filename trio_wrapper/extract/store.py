"""One run's extraction results: exact counts, and a bounded window of recent records.

Counts (``matches_by_type``, ``total_matches``) are exact for the whole run. The records
themselves are kept only as the most recent ``keep`` of each type, and never more than
``keep_bytes`` of text per type (a long run's responses could otherwise hold gigabytes).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from typing import Any

import msgspec

from trio_wrapper.extract.base import Extractor
from trio_wrapper.extract.records import (
    KIND_OF,
    MATCHES_KEYS,
    RECORD_TYPES,
    CodeBlock,
    Prompt,
    Record,
    Response,
)

MAX_LIMIT = 10_000  # the contract's ceiling for ?limit=
KEEP_BYTES = 8 * 1024 * 1024


def _text_size(record: Record) -> int:
    if isinstance(record, Response | Prompt):
        return len(record.text)
    if isinstance(record, CodeBlock):
        return len(record.content)
    return 0


# Only these carry long text; the others are small and bounded by count alone.
_LONG_TEXT = frozenset({"prompt", "response", "code_block"})


class ExtractionStore:
    __slots__ = ("_bytes", "_extractor", "_keep", "_keep_bytes", "_recent", "counts", "total")

    def __init__(
        self, extractor: Extractor, *, keep: int = MAX_LIMIT, keep_bytes: int = KEEP_BYTES
    ) -> None:
        self._extractor = extractor
        self._keep = keep
        self._keep_bytes = keep_bytes
        self._recent: dict[str, deque[Record]] = {}
        self._bytes: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.total = 0

    @property
    def format(self) -> str:
        return self._extractor.format

    @property
    def in_code_block(self) -> bool:
        return self._extractor.in_code_block

    def feed(self, lines: Sequence[bytes], first_line_num: int, stream: str) -> list[Record]:
        records = self._extractor.feed(lines, first_line_num, stream)
        if records:
            self._add(records)
        return records

    def finish(self) -> list[Record]:
        records = self._extractor.finish()
        if records:
            self._add(records)
        return records

    def _add(self, records: list[Record]) -> None:
        counts = self.counts
        kinds = list(map(KIND_OF.__getitem__, map(type, records)))
        for kind, count in Counter(kinds).items():
            counts[kind] = counts.get(kind, 0) + count
            if kind not in self._recent:
                self._recent[kind] = deque(maxlen=self._keep)
        recent_by_kind = self._recent
        for kind, record in zip(kinds, records, strict=True):
            recent = recent_by_kind[kind]
            if kind in _LONG_TEXT:
                size = self._bytes.get(kind, 0) + _text_size(record)
                if len(recent) == self._keep:
                    size -= _text_size(recent[0])  # about to fall off the full deque
                recent.append(record)
                while len(recent) > 1 and size > self._keep_bytes:
                    size -= _text_size(recent.popleft())
                self._bytes[kind] = size
            else:
                recent.append(record)
        self.total += len(records)

    def matches(self, limit: int) -> dict[str, list[dict[str, Any]]]:
        """The most recent ``limit`` records of each kind, oldest first, as JSON objects."""
        out: dict[str, list[dict[str, Any]]] = {}
        for kind in RECORD_TYPES:
            recent = self._recent.get(kind, ())
            start = max(0, len(recent) - limit)
            out[MATCHES_KEYS[kind]] = [
                msgspec.to_builtins(record) for i, record in enumerate(recent) if i >= start
            ]
        return out
