"""Every transcript through a real child process and the real pipeline: the records the
agent keeps, writes to events.jsonl and serves are the ones the extractor tests pin down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from tests.extract.test_transcripts import FORMATS, extract, lines_of
from tests.helpers import PY, TRANSCRIPTS, make_config, wait_for
from trio_wrapper.api.app import create_app
from trio_wrapper.config import Config
from trio_wrapper.extract import MATCHES_KEYS, RECORD_TYPES
from trio_wrapper.runtime.agent import Agent, AgentSpec
from trio_wrapper.runtime.supervisor import Supervisor


@pytest.fixture(params=[True, False], ids=["worker", "in-daemon"])
def config(tmp_path: Path, request: pytest.FixtureRequest) -> Config:
    """Every test here twice: extraction in the worker process, and in the daemon."""
    return make_config(tmp_path, extraction={"worker": request.param})


# A child that writes its file one byte at a time, flushing each: the worst chunking.
BYTEWISE = [
    PY,
    "-c",
    "import sys\n"
    "data = open(sys.argv[1], 'rb').read()\n"
    "for i in range(len(data)):\n"
    "    sys.stdout.buffer.write(data[i:i + 1]); sys.stdout.flush()\n",
]


def stored(agent: Agent) -> list[dict[str, Any]]:
    """Every record the agent keeps, in line order (the window is far larger than these)."""
    matches = agent.extraction.matches(10_000)
    flat = [r for kind in RECORD_TYPES for r in matches[MATCHES_KEYS[kind]]]
    return sorted(flat, key=lambda r: (r["line_num"], json.dumps(r, sort_keys=True)))


def expected(name: str) -> list[dict[str, Any]]:
    records = [msgspec.to_builtins(r) for r in extract(FORMATS[name], lines_of(name))]
    return sorted(records, key=lambda r: (r["line_num"], json.dumps(r, sort_keys=True)))


async def replay(supervisor: Supervisor, name: str, command: list[str], fmt: str) -> Agent:
    agent = await supervisor.start(AgentSpec(name, command, format=fmt))
    await wait_for(lambda: not agent.is_live, 30)
    return agent


@pytest.mark.parametrize("name", sorted(FORMATS))
async def test_transcript_through_a_real_child(supervisor: Supervisor, name: str) -> None:
    path = TRANSCRIPTS / name
    want = expected(name)
    assert want, f"{name}: the extractor tests expect records from this file"
    whole = await replay(supervisor, "whole", ["cat", str(path)], FORMATS[name])
    assert stored(whole) == want
    counts: dict[str, int] = {}
    for record in want:
        counts[record["type"]] = counts.get(record["type"], 0) + 1
    assert whole.extraction.counts == counts
    assert whole.extraction.total == len(want)
    # events.jsonl holds the state changes and one line per record.
    lines = [json.loads(line) for line in whole.files.events.read_text().splitlines()]
    logged = [{k: v for k, v in e.items() if k != "timestamp"} for e in lines if "line_num" in e]
    assert sorted(logged, key=lambda r: (r["line_num"], json.dumps(r, sort_keys=True))) == want
    assert all("timestamp" in e for e in lines)

    bytewise = await replay(supervisor, "bytes", [*BYTEWISE, str(path)], FORMATS[name])
    assert stored(bytewise) == want
    auto = await replay(supervisor, "auto", ["cat", str(path)], "auto")
    assert stored(auto) == want
    for agent in (whole, bytewise, auto):
        await supervisor.remove(agent.name)


async def test_api_serves_concrete_records(config: Config, supervisor: Supervisor) -> None:
    app = create_app(config, supervisor)
    path = TRANSCRIPTS / "codex" / "exec_json_docs_sample.jsonl"
    async with app.test_app() as test_app:
        client = test_app.test_client()
        created = await client.post(
            "/api/agents", json={"name": "codex-1", "command": ["cat", str(path)]}
        )
        assert created.status_code == 201
        agent = supervisor.agents["codex-1"]
        await wait_for(lambda: not agent.is_live)
        detail = await (await client.get("/api/agents/codex-1?include_matches=true")).get_json()
        assert detail["format"] == "codex-json"  # auto-detected
        extraction = detail["extraction"]
        assert extraction["matches_by_type"] == {
            "session": 1,
            "state": 4,
            "tool_call": 1,
            "response": 1,
            "metric": 3,
        }
        assert extraction["total_matches"] == 10 and extraction["in_code_block"] is False
        matches = detail["matches"]
        assert matches["session"] == [
            {
                "type": "session",
                "line_num": 1,
                "key": "session_id",
                "value": "0199a213-81c0-7800-8aa1-bbab2a035a53",
            }
        ]
        assert matches["tool_calls"][0]["input"] == "bash -lc ls"
        assert matches["tool_calls"][0]["exit_code"] == 0
        assert [(m["key"], m["value"]) for m in matches["metrics"]] == [
            ("input_tokens", 24763),
            ("cached_input_tokens", 24448),
            ("output_tokens", 122),
        ]
        assert set(matches) == set(MATCHES_KEYS.values())
        limited = await (
            await client.get("/api/agents/codex-1?include_matches=true&limit=1")
        ).get_json()
        assert [m["key"] for m in limited["matches"]["metrics"]] == ["output_tokens"]
        assert limited["extraction"]["matches_by_type"]["metric"] == 3  # counts stay exact
        for query in (
            "include_matches=true&limit=0",
            "include_matches=true&limit=10001",
            "include_matches=true&limit=x",
            "include_matches=maybe",
        ):
            bad = await client.get(f"/api/agents/codex-1?{query}")
            assert bad.status_code == 400, query
            assert (await bad.get_json())["error"]["code"] == "invalid_request"
        plain = await (await client.get("/api/agents/codex-1")).get_json()
        assert "matches" not in plain


async def test_counts_survive_a_restart(nursery: trio.Nursery, config: Config) -> None:
    first = Supervisor(config)
    await nursery.start(first.run)
    path = TRANSCRIPTS / "aider" / "edit_and_commit_2025-12.txt"
    agent = await replay(first, "aider-1", ["cat", str(path)], "aider")
    counts = dict(agent.extraction.counts)
    assert counts
    await first.shutdown()
    second = Supervisor(config)
    await nursery.start(second.run)
    assert second.agents["aider-1"].extraction.counts == counts
    await second.shutdown()


def test_every_fixture_file_has_a_format() -> None:
    files = {str(p.relative_to(TRANSCRIPTS)) for p in Path(TRANSCRIPTS).rglob("*") if p.is_file()}
    assert files - {"SOURCES.md"} == set(FORMATS)
