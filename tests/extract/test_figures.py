"""Condensed usage figures tally exactly as the records they stand for, batch after batch."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.extract.test_transcripts import FORMATS, extract, lines_of
from trio_wrapper.extract.figures import (
    FALLBACK_TOKENS,
    LATEST_COST,
    LATEST_TOKENS,
    SUMMED_COST,
    SUMMED_TOKENS,
    condense,
)
from trio_wrapper.extract.found import Found
from trio_wrapper.extract.records import (
    Error,
    FileOp,
    Metric,
    Record,
    Response,
    Session,
    State,
    ToolCall,
)
from trio_wrapper.history.usage import UsageTally

KEYS = [
    *sorted({*LATEST_TOKENS, *LATEST_COST, *SUMMED_TOKENS, *SUMMED_COST, *FALLBACK_TOKENS}),
    "models.gemini-2.5-pro.tokens.prompt",
    "models.gemini-2.5-pro.tokens.cached",
    "models.flash.tokens.candidates",
    "models.flash.tokens.other",  # not a kind the tally knows
    "duration_ms",  # a figure the tally does not book
]
VALUES = st.one_of(
    st.integers(-5, 10**6),
    st.floats(-1.0, 1e4, allow_nan=False),
    st.sampled_from([math.nan, 0.5, 1.5, 2.5, 0.1, 0.2, 0.3]),  # rounding, float sums
)
MODELS = st.sampled_from(["", "opus", "sonnet", "o3"])
PATHS = st.sampled_from(["", "a.py", "b.py"])
RECORDS = st.one_of(
    st.builds(Metric, st.integers(1, 9), st.sampled_from(KEYS), VALUES, st.just("")),
    st.builds(Session, st.integers(1, 9), st.sampled_from(["model", "session_id"]), MODELS),
    st.builds(FileOp, st.integers(1, 9), st.sampled_from(["read", "write"]), PATHS),
    st.builds(Response, st.integers(1, 9), st.just("text")),
)


def state(tally: UsageTally) -> object:
    return tally.totals(), tally.files, tally.model


@given(records=st.lists(RECORDS, max_size=40), cuts=st.lists(st.integers(0, 40), max_size=5))
def test_condensed_batches_tally_as_every_record_one_by_one(
    records: list[Record], cuts: list[int]
) -> None:
    condensed = UsageTally("start")
    one_by_one = UsageTally("start")
    bounds = sorted({0, len(records), *(c for c in cuts if c < len(records))})
    for lo, hi in itertools.pairwise(bounds):
        batch = records[lo:hi]
        condensed.add_found(Found.of(batch))
        for record in batch:
            if isinstance(record, Metric | Session | FileOp):
                one_by_one.add_figure(record)
        # After every batch, not only at the end: the daemon books what each one grew by.
        assert state(condensed) == state(one_by_one)


@given(
    records=st.lists(
        RECORDS
        | st.builds(State, st.integers(1, 9), st.just("thinking"), st.just(""))
        | st.builds(ToolCall, st.integers(1, 9), st.just("Bash"), st.just("ls"), st.just("started"))
        | st.builds(Error, st.integers(1, 9), st.just("boom"), st.just("tool")),
        max_size=40,
    )
)
def test_a_batch_is_condensed_as_its_usage_records_alone(records: list[Record]) -> None:
    """``Found.of`` hands ``condense`` only the kinds it reads (picked out in C): the
    same figures as condensing the whole batch."""
    assert list(Found.of(records).usage) == condense(records)


def test_condensing_leaves_the_batchs_records_as_they_were() -> None:
    records: list[Record] = [
        Metric(1, "message_input_tokens", 3, "tokens"),
        Metric(2, "message_input_tokens", 4, "tokens"),
    ]
    figures = condense(records)
    assert figures == [Metric(2, "message_input_tokens", 7, "tokens")]
    assert records[0] == Metric(1, "message_input_tokens", 3, "tokens")


def test_a_model_change_splits_the_figures_between_the_models() -> None:
    records: list[Record] = [
        Metric(1, "output_tokens", 10, "tokens"),
        Session(2, "model", "sonnet"),
        Metric(3, "output_tokens", 20, "tokens"),
    ]
    assert condense(records) == records
    tally = UsageTally("opus")
    tally.add_found(Found.of(records))
    # A cumulative figure is the run's latest, booked under the model then named.
    assert {model: usage.tokens["output"] for model, usage in tally.totals().items()} == {
        "sonnet": 20
    }


@pytest.mark.parametrize("name", sorted(n for n in FORMATS if "claude" in n))
def test_a_claude_stream_condenses_to_a_few_figures(name: str) -> None:
    records = extract(FORMATS[name], lines_of(name))
    usage = [r for r in records if isinstance(r, Metric | Session | FileOp)]
    figures = condense(records)
    assert len(figures) <= len(usage)
    # A cumulative or summed key has one figure a model (file operations are each kept).
    metrics = [(f.key, f.line_num) for f in figures if isinstance(f, Metric)]
    models = 1 + sum(1 for f in figures if isinstance(f, Session))
    assert len(metrics) <= models * len(KEYS)
