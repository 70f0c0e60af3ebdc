"""One run's extraction results: exact counts, and a bounded window of recent records.

Counts (``matches_by_type``, ``total_matches``) are exact for the whole run. The records
themselves are kept only as the most recent ``keep`` of each type, and never more than
``keep_bytes`` of text per type (a long run's responses could otherwise hold gigabytes).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Sequence
from itertools import compress
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
    __slots__ = (
        "_bytes",
        "_extractor",
        "_keep",
        "_keep_bytes",
        "_recent",
        "counts",
        "last_counts",
        "total",
    )

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
        # The count of each type in what the last feed/finish returned (for observers).
        self.last_counts: dict[str, int] = {}

    @property
    def format(self) -> str:
        return self._extractor.format

    @property
    def in_code_block(self) -> bool:
        return self._extractor.in_code_block

    def feed(self, lines: Sequence[bytes], first_line_num: int, stream: str) -> list[Record]:
        records = self._extractor.feed(lines, first_line_num, stream)
        self.last_counts = self._add(records) if records else {}
        return records

    def finish(self) -> list[Record]:
        records = self._extractor.finish()
        self.last_counts = self._add(records) if records else {}
        return records

    def _add(self, records: list[Record]) -> dict[str, int]:
        """Count a batch and keep its records; returns the batch's count of each type.

        A batch can hold tens of thousands of records (a flood of result lines), so the
        work per record stays in C: one pass to name each record's type, then for each
        type present one ``compress`` pass that picks its records out for the deque.
        Only records with long text are looked at one by one (for the byte bound).
        """
        kinds = list(map(KIND_OF.__getitem__, map(type, records)))
        batch_counts = Counter(kinds)
        counts = self.counts
        recent_by_kind = self._recent
        single = len(batch_counts) == 1
        for kind, count in batch_counts.items():
            counts[kind] = counts.get(kind, 0) + count
            recent = recent_by_kind.get(kind)
            if recent is None:
                recent = recent_by_kind[kind] = deque(maxlen=self._keep)
            mine = records if single else compress(records, map(kind.__eq__, kinds))
            if kind in _LONG_TEXT:
                self._add_long(kind, recent, mine)
            else:
                recent.extend(mine)
        self.total += len(records)
        return batch_counts

    def _add_long(self, kind: str, recent: deque[Record], records: Iterable[Record]) -> None:
        size = self._bytes.get(kind, 0)
        for record in records:
            size += _text_size(record)
            if len(recent) == self._keep:
                size -= _text_size(recent[0])  # about to fall off the full deque
            recent.append(record)
            while len(recent) > 1 and size > self._keep_bytes:
                size -= _text_size(recent.popleft())
        self._bytes[kind] = size

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
