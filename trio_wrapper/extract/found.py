"""What extraction yielded for one batch of lines, already encoded.

Records leave the extractor as JSON — one object a line, exactly what the events file,
SSE and ``include_matches`` show — plus one byte per record naming its type. That form
is cheap to pass between processes (the extraction worker sends it as it is), cheap to
count, and what every consumer wants in the end; nothing downstream rebuilds objects.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import compress
from typing import Final

import msgspec

from trio_wrapper.extract.figures import UsageFigure, condense
from trio_wrapper.extract.records import (
    RECORD_CLASSES,
    RECORD_TYPES,
    FileOp,
    Metric,
    Record,
    Session,
)

_KIND_INDEX: Final[dict[type, int]] = {cls: i for i, cls in enumerate(RECORD_CLASSES)}
_encode_lines = msgspec.json.Encoder().encode_lines
# A translation of ``kinds``: 1 for the kinds ``condense`` reads, 0 for the others, which
# ``compress`` then leaves out in C instead of its loop in Python (on Claude's stream,
# whose states, tool calls and responses it skipped one by one: 9 % of the instructions
# extraction takes).
_USAGE_KINDS: Final = bytes([cls in (Metric, Session, FileOp) for cls in RECORD_CLASSES])
_USAGE_TABLE: Final = _USAGE_KINDS.ljust(256, b"\0")


class Found:
    """``data``: the records as JSON lines (each ends with ``\\n``); ``kinds``: for each
    record, its index in :data:`RECORD_TYPES`; ``usage``: the records' usage figures,
    condensed (``figures.condense``: a few records, for the usage tally)."""

    __slots__ = ("data", "kinds", "usage")

    def __init__(
        self, data: bytes = b"", kinds: bytes = b"", usage: Sequence[UsageFigure] = ()
    ) -> None:
        self.data = data
        self.kinds = kinds
        self.usage = usage

    @classmethod
    def of(cls, records: Sequence[Record]) -> Found:
        if not records:
            return NOTHING
        kinds = bytes(map(_KIND_INDEX.__getitem__, map(type, records)))
        return cls(
            _encode_lines(records),
            kinds,
            condense(compress(records, kinds.translate(_USAGE_TABLE))),
        )

    def __len__(self) -> int:
        return len(self.kinds)

    def __bool__(self) -> bool:
        return bool(self.kinds)

    def __add__(self, other: Found) -> Found:
        if not other:
            return self
        if not self:
            return other
        return Found(self.data + other.data, self.kinds + other.kinds, [*self.usage, *other.usage])

    def lines(self) -> list[bytes]:
        """One JSON object per record. (JSON strings never hold a raw newline.)"""
        parts = self.data.split(b"\n")
        parts.pop()
        return parts

    def reversed_lines(self) -> Iterator[bytes]:
        """The records' JSON objects, newest first, cut out one at a time as they are
        read: for a reader that stops at the first that tells it something."""
        data = self.data
        end = len(data) - 1  # the newest record's newline
        while end > 0:
            start = data.rfind(b"\n", 0, end) + 1
            yield data[start:end]
            end = start - 1

    def counts(self) -> dict[str, int]:
        """How many records of each type, by ``type`` name (in the contract's order).
        One ``bytes.count`` per type: a fifth of what a ``Counter`` of the bytes costs."""
        kinds = self.kinds
        return {name: n for index, name in enumerate(RECORD_TYPES) if (n := kinds.count(index))}

    def __repr__(self) -> str:
        return f"Found({self.data!r}, {self.kinds!r}, {self.usage!r})"


NOTHING: Final = Found()
