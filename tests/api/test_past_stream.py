"""A past run's stream: its events file replayed, bounded by ``limits.max_records``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client

from tests.helpers import PY, make_config, wait_for
from trio_wrapper.config import Config
from trio_wrapper.runtime.supervisor import Supervisor

JSON = {"Content-Type": "application/json"}
# Five error records: with its two status changes, seven lines in its events file.
FIVE_ERRORS = [PY, "-c", "for i in range(5): print(f'Error: failure {i}')"]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path, limits={"max_records": 3})


def parse(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            data = json.loads(fields["data"])["data"]
            events.append({"id": fields.get("id"), "event": fields["event"], "data": data})
    return events


async def past_run(client: Client, supervisor: Supervisor) -> str:
    body = json.dumps({"name": "e", "command": FIVE_ERRORS, "format": "text"})
    response = await client.post("/api/agents", data=body, headers=JSON)
    run_id: str = (await response.get_json())["run_id"]
    await wait_for(lambda: not supervisor.agents["e"].is_live)
    assert (await client.delete("/api/agents/e")).status_code == 200
    return f"/api/agents/{run_id.replace('/', '/runs/')}/stream"


async def test_history_all_is_bounded_by_max_records(
    client: Client, supervisor: Supervisor
) -> None:
    stream = await past_run(client, supervisor)
    events = parse(await (await client.get(f"{stream}?history=all")).get_data(as_text=True))
    assert [(e["id"], e["event"]) for e in events] == [
        (None, "connected"),
        ("5", "extraction"),
        ("6", "extraction"),
        ("7", "state"),
        ("8", "complete"),
    ]
    assert events[2]["data"]["message"] == "Error: failure 4"
    assert events[3]["data"] == {"state": "completed", "detail": "exit code 0"}
    assert events[4]["data"]["status"] == "completed"
    # history=N without Last-Event-ID: the last N.
    events = parse(await (await client.get(f"{stream}?history=1")).get_data(as_text=True))
    assert [e["id"] for e in events] == [None, "7", "8"]


async def test_a_resume_past_the_bound_is_told_the_gap(
    client: Client, supervisor: Supervisor
) -> None:
    stream = await past_run(client, supervisor)
    response = await client.get(stream, headers={"Last-Event-ID": "0"})
    events = parse(await response.get_data(as_text=True))
    assert events[1]["event"] == "gap"
    assert events[1]["data"] == {"missed": 4, "first_id": 1, "last_id": 4}
    assert [e["id"] for e in events[2:]] == ["5", "6", "7", "8"]
    # Resumed at the end: 204, so an EventSource stops reconnecting.
    assert (await client.get(stream, headers={"Last-Event-ID": "8"})).status_code == 204
    resumed = parse(await (await client.get(f"{stream}?last_event_id=6")).get_data(as_text=True))
    assert [e["id"] for e in resumed] == [None, "7", "8"]
