"""Stop, restart, forced and bulk DELETE, and a name's runs, over HTTP (Quart's client)."""

from __future__ import annotations

import json
from typing import Any

from quart.typing import TestClientProtocol as Client

from tests.helpers import PY, wait_for
from trio_wrapper.runtime.supervisor import Supervisor

JSON = {"Content-Type": "application/json"}
LOOP = [PY, "-c", "import time\nprint('up', flush=True)\ntime.sleep(600)"]


async def create(client: Client, name: str, command: list[str], **extra: Any) -> Any:
    body = {"name": name, "command": command, **extra}
    response = await client.post("/api/agents", data=json.dumps(body), headers=JSON)
    assert response.status_code == 201, await response.get_data(as_text=True)
    return await response.get_json()


async def error_of(response: Any, status: int) -> dict[str, str]:
    assert response.status_code == status, await response.get_data(as_text=True)
    body: dict[str, dict[str, str]] = await response.get_json()
    return body["error"]


async def test_stop_keeps_the_agent_listed(client: Client, supervisor: Supervisor) -> None:
    await create(client, "s", LOOP)
    response = await client.post("/api/agents/s/stop?force=true")
    assert response.status_code == 200
    body = await response.get_json()
    assert body["message"] == "agent stopped" and body["status"] == "stopped"
    detail = await (await client.get("/api/agents/s")).get_json()
    assert detail["status"] == "stopped" and detail["stop_reason"] == "api"
    again = await (await client.post("/api/agents/s/stop")).get_json()
    assert again["message"] == "agent was not running"
    error = await error_of(await client.post("/api/agents/nope/stop"), 404)
    assert error["code"] == "agent_not_found"
    error = await error_of(await client.post("/api/agents/s/stop?force=maybe"), 400)
    assert error["code"] == "invalid_request"


async def test_restart_answers_the_new_run(client: Client, supervisor: Supervisor) -> None:
    first = await create(client, "r", [PY, "-c", "print('x')"])
    await wait_for(lambda: not supervisor.agents["r"].is_live)
    response = await client.post("/api/agents/r/restart")
    assert response.status_code == 201
    second = await response.get_json()
    assert second["name"] == "r" and second["run_id"] != first["run_id"]
    assert second["command"] == first["command"]
    await wait_for(lambda: not supervisor.agents["r"].is_live)
    runs = await (await client.get("/api/agents/r/runs")).get_json()
    assert runs["name"] == "r" and runs["count"] == 2
    assert [run["id"] for run in runs["runs"]] == [second["run_id"], first["run_id"]]
    assert runs["runs"][1]["status"] == "completed" and runs["runs"][1]["exit_code"] == 0
    assert runs["runs"][1]["streams"]["stdout"]["bytes"] == 2
    assert runs["runs"][1]["usage"] is None


async def test_the_409_says_how_to_free_the_name(client: Client, supervisor: Supervisor) -> None:
    await create(client, "dup", ["true"])
    body = json.dumps({"name": "dup", "command": ["true"]})
    error = await error_of(await client.post("/api/agents", data=body, headers=JSON), 409)
    assert error["code"] == "agent_exists"
    assert "DELETE /api/agents/dup" in error["message"]
    assert "POST /api/agents/dup/restart" in error["message"]


async def test_delete_many(client: Client, supervisor: Supervisor) -> None:
    await create(client, "ok", ["true"])
    await create(client, "ko", ["false"])
    await create(client, "on", LOOP)
    await wait_for(lambda: not supervisor.agents["ok"].is_live)
    await wait_for(lambda: not supervisor.agents["ko"].is_live)
    error = await error_of(await client.delete("/api/agents"), 400)
    assert "status is required" in error["message"]
    error = await error_of(await client.delete("/api/agents?status=done"), 400)
    assert "'done'" in error["message"]
    response = await client.delete("/api/agents?status=completed,failed")
    assert response.status_code == 200
    body = await response.get_json()
    assert body["count"] == 2
    assert sorted(d["name"] for d in body["deleted"]) == ["ko", "ok"]
    assert set(supervisor.agents) == {"on"}
    body = await (await client.delete("/api/agents?status=running&force=true")).get_json()
    assert [d["name"] for d in body["deleted"]] == ["on"] and body["deleted"][0]["status"] == (
        "stopped"
    )
    assert supervisor.agents == {}


async def test_a_deleted_names_runs_are_still_served(
    client: Client, supervisor: Supervisor
) -> None:
    code = "import sys\nprint('Error: it broke')\nprint('bye', file=sys.stderr)"
    created = await create(client, "d", [PY, "-c", code], format="text")
    await wait_for(lambda: not supervisor.agents["d"].is_live)
    stamp = created["run_id"].split("/")[1]
    before = await (await client.get("/api/agents/d?include_matches=true")).get_json()
    assert (await client.delete("/api/agents/d?force=true")).status_code == 200
    assert (await client.get("/api/agents/d")).status_code == 404
    runs = await (await client.get("/api/agents/d/runs")).get_json()
    assert [run["stamp"] for run in runs["runs"]] == [stamp]
    assert runs["runs"][0]["listed"] is False
    run = f"/api/agents/d/runs/{stamp}"
    detail = await (await client.get(f"{run}?include_matches=true")).get_json()
    assert detail == before
    assert detail["matches"]["errors"][0]["message"] == "Error: it broke"
    assert await (await client.get(f"{run}/logs?stream=stderr")).get_data() == b"bye\n"
    assert await (await client.get(f"{run}/logs?tail=1")).get_data() == b"Error: it broke\n"
    stream = await client.get(f"{run}/stream?history=all")
    assert stream.status_code == 200
    assert stream.content_type.startswith("text/event-stream")
    text = await stream.get_data(as_text=True)
    events = [line.removeprefix("event: ") for line in text.splitlines() if "event: " in line]
    assert events == ["connected", "state", "extraction", "state", "complete"]
    # None of it for a run that never was.
    error = await error_of(await client.get("/api/agents/d/runs/2020-01-01-00-00-00"), 404)
    assert error["code"] == "run_not_found"
    await error_of(await client.get("/api/agents/d/runs/nonsense/logs"), 404)
    await error_of(await client.get("/api/agents/zz/runs"), 404)
