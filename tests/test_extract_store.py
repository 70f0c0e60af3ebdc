"""The extraction store: exact counts, bounded recent records."""

from __future__ import annotations

from collections.abc import Sequence

from trio_wrapper.extract import Metric, Record, Response, Session
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
