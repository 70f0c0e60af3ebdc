"""One run's extraction results: exact counts, and a bounded window of recent records.

Counts (``matches_by_type``, ``total_matches``) are exact for the whole run. Records are
kept as the JSON they arrive in (:class:`Found`), in chunks of one type: the records of
that type from one batch. A flood of metrics is therefore a few appends per batch, not
one per record. Chunks are dropped from the old end once the newer ones cover the
window: the most recent ``keep`` of each type, and for the types with long text no more
than ``keep_bytes`` of JSON (a long run's responses could otherwise hold gigabytes), but
always the newest one. :meth:`matches` cuts the answer to that window exactly; between
answers at most one chunk per type beyond it is held.
"""

from __future__ import annotations

from collections import deque
from itertools import compress
from typing import Any

import msgspec

from trio_wrapper.extract.base import count_unknown
from trio_wrapper.extract.found import Found
from trio_wrapper.extract.records import MATCHES_KEYS, RECORD_TYPES

MAX_LIMIT = 10_000  # the contract's ceiling for ?limit=
KEEP_BYTES = 8 * 1024 * 1024
# Whole batches held for a type that is a good part of them (see ``add``), at most this
# many bytes per run (a batch held for two types counts twice); beyond it a type's
# records are copied out like any other.
SHARE_BYTES = 8 * 1024 * 1024

# Only these carry long text; the others are small and bounded by count alone.
_LONG_TEXT = frozenset({"prompt", "response", "code_block"})
_decode = msgspec.json.Decoder().decode


# For each record type's index, a table that ``bytes.translate`` turns a ``kinds`` string
# with: 1 where a record is of that type, 0 elsewhere. ``compress`` then picks the type's
# records with no call per record (``map(index.__eq__, kinds)`` made one: with the split,
# most of what a Claude batch cost the store).
_OF_KIND = [bytes(int(kind == index) for kind in range(256)) for index in range(len(RECORD_TYPES))]


def of_kind(kinds: bytes | bytearray, index: int) -> bytes | bytearray:
    """Selectors for ``itertools.compress``: which records of ``kinds`` are of type
    ``index``."""
    return kinds.translate(_OF_KIND[index])


class _Chunk:
    """Records of one type from one batch: ``data`` is JSON lines, either theirs alone
    or the whole batch's, with ``kinds`` and ``index`` telling which lines are theirs.
    ``size``: their JSON bytes (only exact when not shared; only used for long text)."""

    __slots__ = ("count", "data", "index", "kinds", "size")

    def __init__(self, data: bytes, count: int, kinds: bytes = b"", index: int = -1) -> None:
        self.data = data
        self.count = count
        self.kinds = kinds
        self.index = index
        self.size = len(data) - (len(kinds) if kinds else count)

    def lines(self) -> list[bytes]:
        lines = self.data.split(b"\n")
        lines.pop()
        if self.kinds:
            return list(compress(lines, of_kind(self.kinds, self.index)))
        return lines


class _Kept:
    """The chunks of one type, oldest first, with how many records they hold and (for long
    text) how many bytes of JSON, newlines not counted."""

    __slots__ = ("chunks", "count", "size")

    def __init__(self) -> None:
        self.chunks: deque[_Chunk] = deque()
        self.count = 0
        self.size = 0


class ExtractionStore:
    """``format`` and ``in_code_block`` are set by whoever extracts (the extractor may be
    in another process), and ``unknown_events`` added to (:meth:`add_unknown`); the rest
    is fed by :meth:`add`."""

    __slots__ = (
        "_keep",
        "_keep_bytes",
        "_kept",
        "_shared_bytes",
        "counts",
        "format",
        "in_code_block",
        "total",
        "unknown_events",
    )

    def __init__(self, fmt: str, *, keep: int = MAX_LIMIT, keep_bytes: int = KEEP_BYTES) -> None:
        self.format = fmt
        self.in_code_block = False
        self._keep = keep
        self._keep_bytes = keep_bytes
        self._kept: dict[str, _Kept] = {}
        self._shared_bytes = 0  # of whole batches held by shared chunks
        self.counts: dict[str, int] = {}
        self.total = 0
        # Event types the format does not know, with their counts (bounded: base.py).
        self.unknown_events: dict[str, int] = {}

    def add_unknown(self, counts: dict[str, int]) -> None:
        for kind, count in counts.items():
            count_unknown(self.unknown_events, kind, count)

    def add(self, found: Found, batch_counts: dict[str, int]) -> None:
        """Count a batch and keep its records (``batch_counts`` is ``found.counts()``)."""
        counts = self.counts
        total = len(found)
        lines: list[bytes] | None = None
        for kind, count in batch_counts.items():
            counts[kind] = counts.get(kind, 0) + count
            index = RECORD_TYPES.index(kind)
            if (
                count * 8 >= total
                and kind not in _LONG_TEXT
                and self._shared_bytes + len(found.data) <= SHARE_BYTES
            ):
                # An eighth of the batch or more: hold the whole batch and pick this type
                # out only when asked (nothing copied now), within SHARE_BYTES for the run.
                # Not for long text, whose bound is in bytes and must be counted exactly.
                self._shared_bytes += len(found.data)
                self._keep_chunk(kind, _Chunk(found.data, count, found.kinds, index))
            else:
                if lines is None:
                    lines = found.lines()
                mine = b"\n".join(compress(lines, of_kind(found.kinds, index)))
                self._keep_chunk(kind, _Chunk(mine + b"\n", count))
        self.total += total

    def _keep_chunk(self, kind: str, chunk: _Chunk) -> None:
        kept = self._kept.get(kind)
        if kept is None:
            kept = self._kept[kind] = _Kept()
        kept.chunks.append(chunk)
        kept.count += chunk.count
        kept.size += chunk.size
        # Drop the oldest chunk while the others still cover the window.
        long_text = kind in _LONG_TEXT
        chunks = kept.chunks
        while len(chunks) > 1:
            old = chunks[0]
            left_count = kept.count - old.count
            left_size = kept.size - old.size
            if left_count < self._keep and not (long_text and left_size >= self._keep_bytes):
                break
            chunks.popleft()
            kept.count, kept.size = left_count, left_size
            if old.kinds:
                self._shared_bytes -= len(old.data)

    def matches(self, limit: int) -> dict[str, list[dict[str, Any]]]:
        """The most recent ``limit`` records of each kind, oldest first, as JSON objects."""
        out: dict[str, list[dict[str, Any]]] = {}
        for kind in RECORD_TYPES:
            kept = self._kept.get(kind)
            records = self._window(kind, kept, limit) if kept is not None else []
            out[MATCHES_KEYS[kind]] = [_decode(record) for record in records]
        return out

    def _window(self, kind: str, kept: _Kept, limit: int) -> list[bytes]:
        """The newest records of one type within ``limit``, ``keep`` and, for long text,
        ``keep_bytes`` (but at least the newest one), oldest first."""
        limit = min(limit, self._keep)
        budget = self._keep_bytes if kind in _LONG_TEXT else None
        picked: list[bytes] = []
        size = 0
        for chunk in reversed(kept.chunks):
            for line in reversed(chunk.lines()):
                if len(picked) >= limit:
                    break
                if budget is not None and picked and size + len(line) > budget:
                    limit = len(picked)  # the window ends here
                    break
                size += len(line)
                picked.append(line)
            if len(picked) >= limit:
                break
        picked.reverse()
        return picked
