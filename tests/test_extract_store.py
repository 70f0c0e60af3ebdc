"""The extraction store: exact counts, bounded recent records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from trio_wrapper.extract import (
    MATCHES_KEYS,
    CodeBlock,
    Error,
    Metric,
    Prompt,
    Record,
    Response,
    Session,
    record_type,
)
from trio_wrapper.extract.store import ExtractionStore


class Scripted:
    """An extractor that returns what the test says."""

    def __init__(self, batches: list[list[Record]]) -> None:
        self._batches = batches

    format = "text"
    in_code_block = False

    def feed(self, lines: Sequence[bytes], first_line_num: int, stream: str) -> list[Record]:
        return self._batches.pop(0)

    def finish(self) -> list[Record]:
        return []


def test_counts_stay_exact_while_records_are_bounded() -> None:
    metrics: list[Record] = [Metric(i, "tokens", i, "tokens") for i in range(1, 26)]
    session: list[Record] = [Session(1, "model", "o3")]
    store = ExtractionStore(Scripted([session + metrics[:10], metrics[10:]]), keep=5)
    store.feed([b""], 1, "stdout")
    store.feed([b""], 11, "stdout")
    assert store.counts == {"session": 1, "metric": 25}
    assert store.total == 26
    matches = store.matches(100)
    assert [m["line_num"] for m in matches["metrics"]] == [21, 22, 23, 24, 25]
    assert matches["session"] == [{"type": "session", "line_num": 1, "key": "model", "value": "o3"}]
    assert [m["line_num"] for m in store.matches(2)["metrics"]] == [24, 25]
    assert store.matches(2)["errors"] == []


def test_long_text_is_bounded_by_bytes_too() -> None:
    replies: list[Record] = [Response(i, "x" * 1000) for i in range(1, 11)]
    store = ExtractionStore(Scripted([replies]), keep=100, keep_bytes=3500)
    store.feed([b""], 1, "stdout")
    kept = store.matches(100)["responses"]
    assert [m["line_num"] for m in kept] == [8, 9, 10]  # 3 x 1000 chars fit in 3500
    assert store.counts == {"response": 10}


def _text_size(record: Record) -> int:
    if isinstance(record, Response | Prompt):
        return len(record.text)
    return len(record.content) if isinstance(record, CodeBlock) else 0


class Reference:
    """The store's contract, one record at a time: the last ``keep`` of each type, and
    for text types no more than ``keep_bytes`` of text (but always the newest one)."""

    def __init__(self, keep: int, keep_bytes: int) -> None:
        self.keep, self.keep_bytes = keep, keep_bytes
        self.kept: dict[str, list[Record]] = {}

    def add(self, record: Record) -> None:
        kept = self.kept.setdefault(record_type(record), [])
        kept.append(record)
        del kept[: max(0, len(kept) - self.keep)]
        while len(kept) > 1 and sum(map(_text_size, kept)) > self.keep_bytes:
            del kept[0]


_RECORDS = st.one_of(
    st.builds(Metric, st.integers(1, 99), st.just("tokens"), st.integers(0, 9), st.just("")),
    st.builds(Session, st.integers(1, 99), st.sampled_from(["model", "cwd"]), st.just("m")),
    st.builds(Response, st.integers(1, 99), st.text("ab", max_size=30)),
    st.builds(Prompt, st.integers(1, 99), st.text("ab", max_size=30)),
    st.builds(CodeBlock, st.integers(1, 99), st.just("py"), st.just(1), st.text("c", max_size=30)),
    st.builds(Error, st.integers(1, 99), st.just("boom"), st.just("agent")),
)


@given(
    batches=st.lists(st.lists(_RECORDS, max_size=12), max_size=8),
    keep=st.integers(1, 6),
    keep_bytes=st.integers(1, 60),
)
def test_batches_keep_what_one_record_at_a_time_would(
    batches: list[list[Record]], keep: int, keep_bytes: int
) -> None:
    store = ExtractionStore(Scripted([list(b) for b in batches]), keep=keep, keep_bytes=keep_bytes)
    reference = Reference(keep, keep_bytes)
    for batch in batches:
        store.feed([b""], 1, "stdout")
        assert store.last_counts == dict(Counter(map(record_type, batch)))
        for record in batch:
            reference.add(record)
    matches = store.matches(keep)
    for kind, key in MATCHES_KEYS.items():
        expected = [msgspec.to_builtins(r) for r in reference.kept.get(kind, [])]
        assert matches[key] == expected, kind
    assert store.total == sum(map(len, batches))
