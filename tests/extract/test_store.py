"""The extraction store: exact counts, bounded recent records (kept as their JSON)."""

from __future__ import annotations

from collections import Counter

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
from trio_wrapper.extract.found import Found
from trio_wrapper.extract.store import ExtractionStore


def add(store: ExtractionStore, records: list[Record]) -> None:
    found = Found.of(records)
    store.add(found, found.counts())


def test_found_encodes_records_and_their_types() -> None:
    records: list[Record] = [Session(1, "model", "o3"), Metric(2, "cost", 0.5, "usd")]
    found = Found.of(records)
    assert found.lines() == [
        b'{"type":"session","line_num":1,"key":"model","value":"o3"}',
        b'{"type":"metric","line_num":2,"key":"cost","value":0.5,"unit":"usd"}',
    ]
    assert found.counts() == {"session": 1, "metric": 1}
    assert len(found) == 2
    assert not Found.of([])
    both = found + Found.of([Error(3, "boom\nagain", "agent")])
    assert both.counts() == {"session": 1, "metric": 1, "error": 1}
    assert (
        both.lines()[2]
        == b'{"type":"error","line_num":3,"message":"boom\\nagain","source":"agent"}'
    )


def test_counts_stay_exact_while_records_are_bounded() -> None:
    metrics: list[Record] = [Metric(i, "tokens", i, "tokens") for i in range(1, 26)]
    session: list[Record] = [Session(1, "model", "o3")]
    store = ExtractionStore("text", keep=5)
    add(store, session + metrics[:10])
    add(store, metrics[10:])
    assert store.counts == {"session": 1, "metric": 25}
    assert store.total == 26
    matches = store.matches(100)
    assert [m["line_num"] for m in matches["metrics"]] == [21, 22, 23, 24, 25]
    assert matches["session"] == [{"type": "session", "line_num": 1, "key": "model", "value": "o3"}]
    assert [m["line_num"] for m in store.matches(2)["metrics"]] == [24, 25]
    assert store.matches(2)["errors"] == []


def test_long_text_is_bounded_by_bytes_too() -> None:
    replies: list[Record] = [Response(i, "x" * 1000) for i in range(1, 11)]
    size = len(msgspec.json.encode(replies[0]))  # each reply's JSON: the same length
    store = ExtractionStore("text", keep=100, keep_bytes=3 * size + size // 2)
    add(store, replies)
    kept = store.matches(100)["responses"]
    assert [m["line_num"] for m in kept] == [8, 9, 10]  # 3 of them fit
    assert store.counts == {"response": 10}


class Reference:
    """The store's contract, one record at a time: the last ``keep`` of each type, and
    for text types no more than ``keep_bytes`` of JSON (but always the newest one)."""

    def __init__(self, keep: int, keep_bytes: int) -> None:
        self.keep, self.keep_bytes = keep, keep_bytes
        self.kept: dict[str, list[Record]] = {}

    def add(self, record: Record) -> None:
        kind = record_type(record)
        kept = self.kept.setdefault(kind, [])
        kept.append(record)
        del kept[: max(0, len(kept) - self.keep)]
        if kind in ("prompt", "response", "code_block"):
            while (
                len(kept) > 1 and sum(len(msgspec.json.encode(r)) for r in kept) > self.keep_bytes
            ):
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
    keep_bytes=st.integers(1, 200),
)
def test_batches_keep_what_one_record_at_a_time_would(
    batches: list[list[Record]], keep: int, keep_bytes: int
) -> None:
    store = ExtractionStore("text", keep=keep, keep_bytes=keep_bytes)
    reference = Reference(keep, keep_bytes)
    for batch in batches:
        assert Found.of(batch).counts() == dict(Counter(map(record_type, batch)))
        add(store, batch)
        for record in batch:
            reference.add(record)
    matches = store.matches(keep)
    for kind, key in MATCHES_KEYS.items():
        expected = [msgspec.to_builtins(r) for r in reference.kept.get(kind, [])]
        assert matches[key] == expected, kind
    assert store.total == sum(map(len, batches))
