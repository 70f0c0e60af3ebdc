"""A CLI that changed its output: the event types its format does not know are counted in
the agent's detail (and its meta file, read back after a restart) and in ``/metrics``,
whether extraction runs in the worker process or in the daemon."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from quart.typing import TestClientProtocol as Client

from tests.helpers import make_config, wait_for
from trio_wrapper.api.app import create_app
from trio_wrapper.runtime.supervisor import Supervisor

LINES = [
    {"type": "system", "subtype": "init", "session_id": "s1", "model": "claude-x"},
    {"type": "assistant_v9", "message": {"content": "new shape"}},
    {"type": "assistant_v9", "message": {"content": "new shape"}},
    {"type": "rate_limit_event", "rate_limit_info": {"status": "allowed"}},
    {"note": "an object without a type"},
    {"type": "result", "subtype": "success", "session_id": "s1", "num_turns": 1},
]


@pytest.fixture(params=[True, False], ids=["worker", "in-daemon"])
async def served(
    tmp_path: Path, nursery: trio.Nursery, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Client, Supervisor]]:
    config = make_config(tmp_path, extraction={"worker": request.param})
    supervisor = Supervisor(config)
    await nursery.start(supervisor.run)
    app = create_app(config, supervisor)
    async with app.test_app() as test_app:
        yield test_app.test_client(), supervisor
    with trio.fail_after(30):
        await supervisor.shutdown()


async def test_unknown_event_types_in_the_detail_and_the_metrics(
    served: tuple[Client, Supervisor], tmp_path: Path
) -> None:
    client, supervisor = served
    output = tmp_path / "drift.jsonl"
    output.write_text("".join(json.dumps(line) + "\n" for line in LINES))
    for name, fmt in (("drift", "claude-stream-json"), ("plain", "text")):
        body = {"name": name, "command": ["cat", str(output)], "format": fmt}
        assert (await client.post("/api/agents", json=body)).status_code == 201
    await wait_for(lambda: all(not a.is_live for a in supervisor.agents.values()), 30)

    detail = await (await client.get("/api/agents/drift")).get_json()
    assert detail["extraction"]["unknown_events"] == {"assistant_v9": 2, "(none)": 1}
    assert detail["extraction"]["matches_by_type"]["session"] == 2  # the rest still read
    plain = await (await client.get("/api/agents/plain")).get_json()
    assert plain["extraction"]["unknown_events"] == {}

    text = await (await client.get("/metrics")).get_data(as_text=True)
    series = [line for line in text.splitlines() if "_agent_unknown_events_total{" in line]
    assert series == [
        'trio_wrapper_agent_unknown_events_total{agent="drift",format="claude-stream-json"} 3'
    ]
    # The past run's detail, read back from its meta file, keeps the counts.
    run = await client.get(f"/api/agents/drift/runs/{detail['run_id'].split('/')[1]}")
    past = await run.get_json()
    assert past["extraction"]["unknown_events"] == {"assistant_v9": 2, "(none)": 1}
