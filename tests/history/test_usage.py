"""Usage per run from the records of the repository's real transcripts: the totals are
what each CLI reported, and a cumulative figure is counted once."""

from __future__ import annotations

import pytest

from tests.extract.test_transcripts import FORMATS, extract, lines_of
from trio_wrapper.extract.found import Found
from trio_wrapper.history.usage import (
    TOKEN_TYPES,
    ModelUsage,
    UsageTally,
    model_from_command,
    tally_events,
)


def tally_of(name: str, default_model: str | None = None) -> UsageTally:
    tally = UsageTally(default_model)
    tally.add_found(Found.of(extract(FORMATS[name], lines_of(name))))
    return tally


def tokens(**given: int) -> dict[str, int]:
    return {kind: given.get(kind, 0) for kind in TOKEN_TYPES}


def test_claude_result_is_the_session_total() -> None:
    totals = tally_of("claude/gleam_golden_basic_query_2.1.7.jsonl").totals()
    # The result line: input 10, output 25, cache creation 21570, cache read 0, $0.1354875.
    (model,) = totals
    assert totals[model].tokens == tokens(input=10, output=25, cache_write=21570)
    assert totals[model].cost_usd == pytest.approx(0.1354875)


def test_claude_permission_transcript() -> None:
    totals = tally_of("claude/vincent_stream_permission_allow_2.1.226.jsonl").totals()
    assert sum(u.tokens["input"] for u in totals.values()) == 18
    assert sum(u.tokens["output"] for u in totals.values()) == 491
    assert sum(u.tokens["cache_read"] for u in totals.values()) == 66670
    assert sum(u.tokens["cache_write"] for u in totals.values()) == 548
    assert sum(u.cost_usd or 0 for u in totals.values()) == pytest.approx(0.009825)


def test_claude_result_repeated_is_not_summed() -> None:
    name = "claude/gleam_init_and_result_2.1.3.jsonl"
    once = tally_of(name).totals()
    tally = UsageTally()
    found = Found.of(extract(FORMATS[name], lines_of(name)))
    tally.add_found(found)
    tally.add_found(found)  # a second result with the same cumulative figures
    assert tally.totals() == once
    (usage,) = once.values()
    assert usage.tokens == tokens(input=18, output=424, cache_read=17254, cache_write=25067)
    assert usage.cost_usd == pytest.approx(0.24722425)


def test_claude_without_result_sums_messages() -> None:
    lines = [
        b'{"type":"assistant","message":{"model":"m1","id":"a","content":[],'
        b'"usage":{"input_tokens":3,"output_tokens":5}}}',
        b'{"type":"assistant","message":{"model":"m1","id":"a","content":[],'
        b'"usage":{"input_tokens":3,"output_tokens":9}}}',
        b'{"type":"assistant","message":{"model":"m1","id":"b","content":[],'
        b'"usage":{"input_tokens":4,"output_tokens":1}}}',
    ]
    tally = UsageTally()
    tally.add_found(Found.of(extract("claude-stream-json", lines)))
    assert tally.totals() == {"m1": ModelUsage(tokens(input=7, output=6), None)}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("codex/exec_json_docs_sample.jsonl", tokens(input=24763, cache_read=24448, output=122)),
        (
            "codex/vincent_success.jsonl",
            tokens(input=14312, cache_read=2432, output=32, reasoning=25),
        ),
        (
            "codex/vincent_tooluse.jsonl",
            tokens(input=28858, cache_read=16128, output=196, reasoning=87),
        ),
    ],
)
def test_codex_turn_completed(name: str, expected: dict[str, int]) -> None:
    totals = tally_of(name, "gpt-5-codex").totals()
    assert totals == {"gpt-5-codex": ModelUsage(expected, None)}


def test_codex_cumulative_turns_count_once() -> None:
    first = b'{"type":"turn.completed","usage":{"input_tokens":100,"output_tokens":10}}'
    second = b'{"type":"turn.completed","usage":{"input_tokens":250,"output_tokens":30}}'
    tally = UsageTally()
    tally.add_found(Found.of(extract("codex-json", [first, second])))
    assert tally.totals() == {"unknown": ModelUsage(tokens(input=250, output=30), None)}


def test_codex_plain_tokens_used() -> None:
    totals = tally_of("codex/plain_exec_v0.114.0_claude-os-worker.txt").totals()
    assert totals == {"gpt-5.4": ModelUsage(tokens(other=1468), None)}


def test_gemini_stream_result_stats() -> None:
    totals = tally_of("gemini/official_docs_stream_json_example_v0.11.jsonl").totals()
    (usage,) = totals.values()
    assert usage.tokens == tokens(input=50, output=200)
    assert usage.cost_usd is None


def test_gemini_json_per_model() -> None:
    totals = tally_of("gemini/official_docs_json_output_example.json").totals()
    assert totals == {
        "gemini-2.5-pro": ModelUsage(
            tokens(input=24939, output=20, cache_read=21263, reasoning=154), None
        ),
        "gemini-2.5-flash": ModelUsage(tokens(input=8965, output=10, reasoning=30), None),
    }


def test_aider_tokens_and_session_cost() -> None:
    totals = tally_of("aider/edit_and_commit_2025-12.txt").totals()
    (usage,) = totals.values()
    assert usage.tokens == tokens(input=15000, output=191)
    assert usage.cost_usd == pytest.approx(0.04)
    assert tally_of("aider/edit_and_commit_2025-12.txt").files  # "Applied edit to …"


def test_aider_session_cost_is_cumulative() -> None:
    lines = [
        b"Model: gpt-4o with diff edit format",
        b"Tokens: 1,000 sent, 100 received. Cost: $0.01 message, $0.01 session.",
        b"Tokens: 2,000 sent, 200 received. Cost: $0.02 message, $0.03 session.",
        b"Tokens: 3,000 sent, 300 received. Cost: $0.03 message, $0.06 session.",
    ]
    tally = UsageTally()
    tally.add_found(Found.of(extract("aider", lines)))
    (usage,) = tally.totals().values()
    assert usage.tokens == tokens(input=6000, output=600)
    assert usage.cost_usd == pytest.approx(0.06)  # not 0.01 + 0.03 + 0.06
    assert tally.model == "gpt-4o"


def test_events_file_reads_the_same_as_live() -> None:
    name = "claude/vincent_stream_permission_allow_2.1.226.jsonl"
    found = Found.of(extract(FORMATS[name], lines_of(name)))
    stamp = b'{"timestamp":"2026-12-06T08:26:17.677+00:00",'
    events = b'{"type":"state","state":"running","detail":"","timestamp":"x"}\n'
    events += b"".join(stamp + line[1:] + b"\n" for line in found.lines())
    live = UsageTally()
    live.add_found(found)
    from_file = tally_events(events)
    assert from_file.totals() == live.totals()
    assert from_file.files == live.files
    assert from_file.files  # the transcript writes hello.txt


def test_model_from_command() -> None:
    assert model_from_command(["codex", "exec", "-m", "o3", "hi"]) == "o3"
    assert model_from_command(["claude", "--model=opus", "-p", "x"]) == "opus"
    assert model_from_command(["aider", "--model", "gpt-4o"]) == "gpt-4o"
    assert model_from_command(["sh", "-c", "echo"]) is None


@pytest.mark.parametrize("name", sorted(n for n in FORMATS if n.endswith(".jsonl")))
def test_a_batch_tallies_as_its_records_one_by_one(name: str) -> None:
    found = Found.of(extract(FORMATS[name], lines_of(name)))
    batch = UsageTally("m0")
    batch.add_found(found)
    single = UsageTally("m0")
    for line in found.lines():
        single.add_json(line)
    assert batch.totals() == single.totals()
    assert (batch.files, batch.model) == (single.files, single.model)
