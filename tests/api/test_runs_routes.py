"""GET /api/runs and /api/usage over a real supervisor and run index."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest
import trio
from quart.typing import TestClientProtocol as Client

from tests.api.test_routes import expect_error, post_agent
from tests.helpers import TRANSCRIPTS, wait_for
from trio_wrapper.runtime.supervisor import Supervisor

CLAUDE = TRANSCRIPTS / "claude" / "gleam_init_and_result_2.1.3.jsonl"
AIDER = TRANSCRIPTS / "aider" / "edit_and_commit_2025-12.txt"


async def get_json(client: Client, path: str) -> Any:
    response = await client.get(path)
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()


async def run_to_end(client: Client, supervisor: Supervisor, body: dict[str, Any]) -> None:
    response = await post_agent(client, body)
    assert response.status_code == 201, await response.get_data(as_text=True)
    agent = supervisor.agents[body["name"]]
    await wait_for(lambda: not agent.is_live)


async def indexed(client: Client, count: int) -> list[dict[str, Any]]:
    """The runs once the index holds ``count`` ended ones (it is written behind the agents)."""
    runs: list[dict[str, Any]] = []

    async def check() -> bool:
        nonlocal runs
        runs = (await get_json(client, "/api/runs"))["runs"]
        return sum(r["status"] == "completed" for r in runs) >= count

    for _ in range(200):
        if await check():
            return runs
        await trio.sleep(0.05)
    raise AssertionError(f"the index never held {count} ended runs: {runs}")


async def test_runs_and_usage_of_real_transcripts(client: Client, supervisor: Supervisor) -> None:
    await run_to_end(
        client,
        supervisor,
        {"name": "cl", "command": ["cat", str(CLAUDE)], "format": "claude-stream-json"},
    )
    await run_to_end(
        client, supervisor, {"name": "ai", "command": ["cat", str(AIDER)], "format": "aider"}
    )
    runs = await indexed(client, 2)
    assert [r["name"] for r in runs] == ["ai", "cl"]  # newest first
    claude = runs[1]
    assert claude["id"].startswith("cl/") and claude["status"] == "completed"
    assert claude["model"] == "claude-opus-4-5-20251101"
    assert claude["tokens"] == {
        "input": 18,
        "output": 424,
        "cache_read": 17254,
        "cache_write": 25067,
        "reasoning": 0,
        "other": 0,
    }
    assert claude["cost_usd"] == pytest.approx(0.24722425)
    aider = runs[0]
    assert (aider["tokens"]["input"], aider["tokens"]["output"]) == (15000, 191)
    assert aider["cost_usd"] == pytest.approx(0.04)
    assert aider["files"] and all(f["ops"] for f in aider["files"])

    # A name's own runs (GET /api/agents/<name>/runs) carry the same usage.
    of_name = await get_json(client, "/api/agents/cl/runs")
    (summary,) = of_name["runs"]
    assert summary["id"] == claude["id"]
    assert summary["usage"]["tokens"] == claude["tokens"]
    assert summary["usage"]["cost_usd"] == pytest.approx(0.24722425)
    assert [m["model"] for m in summary["usage"]["models"]] == ["claude-opus-4-5-20251101"]

    only = await get_json(client, "/api/runs?name=cl&status=completed&limit=5")
    assert [r["name"] for r in only["runs"]] == ["cl"] and only["count"] == 1
    none = await get_json(client, "/api/runs?since=2999-01-01")
    assert none == {"runs": [], "count": 0}

    by_name = await get_json(client, "/api/usage?group_by=name")
    assert by_name["group_by"] == "name"
    assert [(g["key"], g["runs"]) for g in by_name["groups"]] == [("ai", 1), ("cl", 1)]
    assert by_name["total"]["tokens"]["output"] == 424 + 191
    assert by_name["total"]["cost_usd"] == pytest.approx(0.24722425 + 0.04)
    by_day = await get_json(client, "/api/usage")
    assert by_day["group_by"] == "day" and len(by_day["groups"]) == 1

    # The Prometheus counters saw the same figures, once each.
    text = await (await client.get("/metrics")).get_data(as_text=True)
    assert (
        'trio_wrapper_tokens_total{agent="cl",model="claude-opus-4-5-20251101",type="output"} 424'
        in text
    )
    assert 'trio_wrapper_cost_usd_total{agent="ai",model="' in text
    assert "trio_wrapper_retention_removed_runs_total 0" in text
    promtool = shutil.which("promtool")
    if promtool is not None:  # (tests/api/test_metrics_routes.py says when it is missing)
        result = await trio.run_process(
            [promtool, "check", "metrics"],
            stdin=text.encode(),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")

    # DELETE takes the agent's series with it (unique names must not grow /metrics
    # forever); its usage stays in /api/usage, read from the index.
    assert (await client.delete("/api/agents/cl")).status_code == 200
    text = await (await client.get("/metrics")).get_data(as_text=True)
    assert 'agent="cl"' not in text
    assert 'trio_wrapper_cost_usd_total{agent="ai",model="' in text
    by_name = await get_json(client, "/api/usage?group_by=name")
    assert [(g["key"], g["runs"]) for g in by_name["groups"]] == [("ai", 1), ("cl", 1)]


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/api/runs?status=zzz", "one of: starting, running"),
        ("/api/runs?limit=0", "between 1 and 1000"),
        ("/api/runs?limit=1001", "between 1 and 1000"),
        ("/api/runs?limit=x", "limit"),
        ("/api/runs?since=yesterday", "since"),
        ("/api/runs?since=0001-01-01", "since"),  # local midnight of year 1: not a time here
        ("/api/usage?until=12/06/2026", "until"),
        ("/api/usage?group_by=week", "one of: day, name, model, profile"),
    ],
)
async def test_bad_parameters(client: Client, path: str, needle: str) -> None:
    response = await client.get(path)
    await expect_error(response, 400, "invalid_request")
    assert needle in json.loads(await response.get_data(as_text=True))["error"]["message"]


async def test_deleted_runs_stay_in_the_history(client: Client, supervisor: Supervisor) -> None:
    await run_to_end(client, supervisor, {"name": "gone", "command": ["true"]})
    (run,) = await indexed(client, 1)
    assert run["deleted_at"] is None
    assert (await client.delete("/api/agents/gone")).status_code == 200

    async def deleted() -> list[Any]:
        runs: list[Any] = (await get_json(client, "/api/runs?name=gone"))["runs"]
        return runs

    for _ in range(200):
        runs = await deleted()
        if runs[0]["deleted_at"] is not None:
            break
        await trio.sleep(0.05)
    assert [r["id"] for r in runs] == [run["id"]] and runs[0]["deleted_at"]
    assert runs[0]["status"] == "completed" and runs[0]["model"] is None
