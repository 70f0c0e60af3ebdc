"""The HTTP routes over a real supervisor, through Quart's test client."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import trio
from quart.typing import TestClientProtocol as Client

from tests.helpers import PY, make_config, wait_for
from trio_wrapper.api.app import create_app
from trio_wrapper.runtime.supervisor import Supervisor

JSON = {"Content-Type": "application/json"}


async def post_agent(client: Client, body: dict[str, Any]) -> Any:
    return await client.post("/api/agents", data=json.dumps(body), headers=JSON)


async def expect_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, await response.get_data(as_text=True)
    assert response.content_type.startswith("application/json")
    body = await response.get_json()
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


async def test_health(client: Client) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    body = await response.get_json()
    assert body["status"] == "healthy"
    assert body["agents"] == 0
    assert set(body) >= {"uptime", "uptime_seconds", "started_at", "version"}


async def test_health_degraded_when_logs_dir_unwritable(
    client: Client, supervisor: Supervisor, tmp_path: Path
) -> None:
    supervisor.logs_dir = tmp_path / "does-not-exist"
    response = await client.get("/api/health")
    assert response.status_code == 503
    body = await response.get_json()
    assert body["status"] == "degraded" and "not writable" in body["problems"][0]


async def test_create_list_get_logs_delete(client: Client, supervisor: Supervisor) -> None:
    code = "import sys\nfor i in range(5): print('line', i)\nprint('bad', file=sys.stderr)"
    response = await post_agent(client, {"name": "w1", "command": [PY, "-c", code]})
    assert response.status_code == 201
    detail = await response.get_json()
    assert detail["name"] == "w1" and detail["status"] == "running"
    assert detail["command"] == [PY, "-c", code]
    assert detail["logs"]["stdout"].endswith("-stdout.log")
    await wait_for(lambda: not supervisor.agents["w1"].is_live)

    listing = await (await client.get("/api/agents")).get_json()
    assert listing["count"] == 1 and listing["agents"][0]["status"] == "completed"
    assert (await (await client.get("/api/agents?status=running")).get_json())["count"] == 0

    detail = await (await client.get("/api/agents/w1")).get_json()
    assert detail["exit_code"] == 0 and detail["bytes_processed"] == 35 + 4
    assert detail["extraction"]["total_lines"] == 6
    assert detail["streams"]["stdout"] == {
        "bytes": 35,
        "lines": 5,
        "lost_bytes": 0,
        "unprocessed_bytes": 0,
    }
    assert detail["uptime"].endswith("s") and detail["duration_seconds"] >= 0

    logs = await client.get("/api/agents/w1/logs")
    assert logs.content_type == "text/plain; charset=utf-8"
    assert (await logs.get_data(as_text=True)).splitlines()[0] == "line 0"
    tail = await client.get("/api/agents/w1/logs?tail=2")
    assert await tail.get_data(as_text=True) == "line 3\nline 4\n"
    err = await client.get("/api/agents/w1/logs?stream=stderr")
    assert await err.get_data(as_text=True) == "bad\n"

    deleted = await client.delete("/api/agents/w1")
    assert deleted.status_code == 200
    assert await deleted.get_json() == {
        "message": "agent stopped",
        "name": "w1",
        "status": "completed",
        "exit_code": 0,
    }
    await expect_error(await client.get("/api/agents/w1"), 404, "agent_not_found")


async def test_original_command_and_args_form(client: Client, supervisor: Supervisor) -> None:
    response = await post_agent(client, {"name": "orig", "command": "echo", "args": ["a", "b c"]})
    assert response.status_code == 201
    agent = supervisor.agents["orig"]
    await wait_for(lambda: not agent.is_live)
    assert agent.files.log("stdout").read_bytes() == b"a b c\n"


async def test_profile_with_prompt(tmp_path: Path, nursery: trio.Nursery) -> None:
    config = make_config(tmp_path)
    config.profiles["echo"] = type(config.profiles["codex"])(
        command=["echo", "{prompt}"], format="text"
    )
    sup = Supervisor(config)
    await nursery.start(sup.run)
    app = create_app(config, sup)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        response = await post_agent(client, {"name": "p", "profile": "echo", "prompt": "hi $HOME"})
        assert response.status_code == 201
        body = await response.get_json()
        assert body["command"] == ["echo", "hi $HOME"] and body["format"] == "text"
        await expect_error(
            await post_agent(client, {"name": "q", "profile": "nope", "prompt": "x"}),
            404,
            "unknown_profile",
        )
        await expect_error(
            await post_agent(client, {"name": "q", "profile": "echo"}), 400, "invalid_request"
        )
        # The shipped profiles are there and keep their formats.
        assert config.profiles["claude"].format == "claude-stream-json"
    await sup.shutdown()


async def test_profile_permissions_per_agent(tmp_path: Path, nursery: trio.Nursery) -> None:
    config = make_config(tmp_path)
    config.profiles["echo"] = type(config.profiles["codex"])(
        command=["echo", "{permissions}", "{prompt}"], format="text", permissions=["--yes"]
    )
    sup = Supervisor(config)
    await nursery.start(sup.run)
    app = create_app(config, sup)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        shipped = await post_agent(client, {"name": "a", "profile": "echo", "prompt": "go"})
        assert (await shipped.get_json())["command"] == ["echo", "--yes", "go"]
        own = {"name": "b", "profile": "echo", "prompt": "go", "permissions": ["--ask", "-v"]}
        assert (await (await post_agent(client, own)).get_json())["command"] == [
            "echo",
            "--ask",
            "-v",
            "go",
        ]
        await expect_error(
            await post_agent(client, {"name": "c", "command": ["true"], "permissions": []}),
            400,
            "invalid_request",
        )
    await sup.shutdown()


async def test_stdin_input_round_trip(client: Client, supervisor: Supervisor) -> None:
    code = "import sys\nfor line in sys.stdin: print(line.strip().upper(), flush=True)"
    await post_agent(client, {"name": "in", "command": [PY, "-c", code], "stdin": True})
    response = await client.post(
        "/api/agents/in/input", data=json.dumps({"data": "héllo\n"}), headers=JSON
    )
    assert response.status_code == 200
    assert await response.get_json() == {"written": 7, "eof": False}
    agent = supervisor.agents["in"]
    await wait_for(lambda: agent.stats["stdout"].lines == 1)
    response = await client.post(
        "/api/agents/in/input", data=json.dumps({"eof": True}), headers=JSON
    )
    assert response.status_code == 200
    await wait_for(lambda: not agent.is_live)
    assert agent.files.log("stdout").read_text() == "HÉLLO\n"
    await expect_error(
        await client.post("/api/agents/in/input", data=json.dumps({"data": "x"}), headers=JSON),
        409,
        "stdin_not_open",
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "bad name", "command": ["true"]}, 400, "invalid_name"),
        ({"name": "-dash", "command": ["true"]}, 400, "invalid_name"),
        ({"name": "x" * 65, "command": ["true"]}, 400, "invalid_name"),
        ({"name": "ok"}, 400, "invalid_request"),
        ({"command": ["true"]}, 400, "invalid_request"),
        ({"name": "ok", "command": []}, 400, "invalid_request"),
        ({"name": "ok", "command": [""]}, 400, "invalid_request"),
        ({"name": "ok", "command": ["true"], "bogus": 1}, 400, "invalid_request"),
        ({"name": "ok", "command": ["true"], "format": "xml"}, 400, "invalid_request"),
        ({"name": "ok", "command": ["true"], "timeout_seconds": 0}, 400, "invalid_request"),
        ({"name": "ok", "command": ["true"], "env": {"A": 1}}, 400, "invalid_request"),
        ({"name": "ok", "command": ["true"], "args": ["x"]}, 400, "invalid_request"),
        ({"name": "ok", "command": ["true"], "profile": "codex"}, 400, "invalid_request"),
        ({"name": "ok", "command": ["true"], "prompt": "x"}, 400, "invalid_request"),
        ({"name": "ok", "command": ["/no/such/binary"]}, 422, "spawn_failed"),
        ({"name": "ok", "command": ["true"], "cwd": "/no/such/dir"}, 422, "spawn_failed"),
        ({"name": "ok", "profile": "missing", "prompt": "x"}, 404, "unknown_profile"),
    ],
)
async def test_create_errors(
    client: Client, supervisor: Supervisor, body: dict[str, Any], status: int, code: str
) -> None:
    await expect_error(await post_agent(client, body), status, code)
    assert "ok" not in supervisor.agents


async def test_malformed_json_wrong_type_and_media_type(client: Client) -> None:
    await expect_error(
        await client.post("/api/agents", data="{not json", headers=JSON), 400, "invalid_request"
    )
    await expect_error(
        await client.post("/api/agents", data="[1, 2]", headers=JSON), 400, "invalid_request"
    )
    await expect_error(
        await client.post("/api/agents", data='{"name":"a","command":["true"]}'),
        415,
        "unsupported_media_type",
    )
    await expect_error(
        await client.post(
            "/api/agents",
            data="name=a",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        415,
        "unsupported_media_type",
    )


async def test_body_too_large(client: Client) -> None:
    body = json.dumps({"name": "big", "command": ["echo", "x" * (1024 * 1024)]})
    await expect_error(
        await client.post("/api/agents", data=body, headers=JSON), 413, "body_too_large"
    )


async def test_agent_exists(client: Client) -> None:
    assert (
        await post_agent(client, {"name": "one", "command": ["sleep", "30"]})
    ).status_code == 201
    await expect_error(
        await post_agent(client, {"name": "one", "command": ["true"]}), 409, "agent_exists"
    )


async def test_unknown_agent_on_every_route(client: Client) -> None:
    for method, path in [
        ("GET", "/api/agents/ghost"),
        ("DELETE", "/api/agents/ghost"),
        ("GET", "/api/agents/ghost/logs"),
    ]:
        await expect_error(await client.open(path, method=method), 404, "agent_not_found")
    await expect_error(
        await client.post("/api/agents/ghost/input", data=json.dumps({"data": "x"}), headers=JSON),
        404,
        "agent_not_found",
    )


async def test_bad_query_strings(client: Client, supervisor: Supervisor) -> None:
    await post_agent(client, {"name": "q", "command": ["echo", "x"]})
    await wait_for(lambda: not supervisor.agents["q"].is_live)
    await expect_error(await client.get("/api/agents?status=sleepy"), 400, "invalid_request")
    await expect_error(await client.get("/api/agents/q/logs?stream=stdin"), 400, "invalid_request")
    await expect_error(await client.get("/api/agents/q/logs?tail=abc"), 400, "invalid_request")
    await expect_error(await client.get("/api/agents/q/logs?tail=0"), 400, "invalid_request")
    await expect_error(
        await client.post("/api/agents/q/input", data=json.dumps({"data": 5}), headers=JSON),
        400,
        "invalid_request",
    )


async def test_unknown_route_and_method(client: Client) -> None:
    await expect_error(await client.get("/api/nothing"), 404, "not_found")
    await expect_error(await client.put("/api/agents"), 405, "method_not_allowed")


async def test_openapi_and_docs(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).get_json()
    assert "/api/agents" in spec["paths"]
    assert {"get", "post"} <= set(spec["paths"]["/api/agents"])
    assert "/api/agents/{name}/input" in spec["paths"]
    assert "timeout_seconds" in json.dumps(spec["paths"]["/api/agents"]["post"])
    # Every $ref points at a component that exists.
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert refs and refs <= set(spec["components"]["schemas"])
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in (await docs.get_data(as_text=True)).lower()


async def test_cors_allows_only_configured_origins(client: Client) -> None:
    preflight = await client.options(
        "/api/agents",
        headers={
            "Origin": "http://localhost:8080",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://localhost:8080"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "content-type" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    evil = await client.get("/api/health", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in evil.headers
    ok = await client.get("/api/health", headers={"Origin": "http://127.0.0.1:8080"})
    assert ok.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8080"


async def test_dns_rebinding_guard(client: Client) -> None:
    await expect_error(
        await client.get("/api/health", headers={"Host": "evil.example:8151"}),
        403,
        "host_not_allowed",
    )
    assert (await client.get("/api/health", headers={"Host": "127.0.0.1:8151"})).status_code == 200
    assert (await client.get("/api/health", headers={"Host": "[::1]:8151"})).status_code == 200


async def test_token_protects_mutations(tmp_path: Path, nursery: trio.Nursery) -> None:
    config = make_config(tmp_path, auth={"token": "s3cret"})
    sup = Supervisor(config)
    await nursery.start(sup.run)
    app = create_app(config, sup)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        assert (await client.get("/api/agents")).status_code == 200
        await expect_error(
            await post_agent(client, {"name": "a", "command": ["true"]}), 401, "unauthorized"
        )
        wrong = await client.post(
            "/api/agents",
            data=json.dumps({"name": "a", "command": ["true"]}),
            headers={**JSON, "Authorization": "Bearer nope"},
        )
        await expect_error(wrong, 401, "unauthorized")
        right = await client.post(
            "/api/agents",
            data=json.dumps({"name": "a", "command": ["true"]}),
            headers={**JSON, "Authorization": "Bearer s3cret"},
        )
        assert right.status_code == 201
        await expect_error(await client.delete("/api/agents/a"), 401, "unauthorized")
        # ?access_token= is for EventSource (the SSE routes) only.
        await expect_error(
            await client.delete("/api/agents/a?access_token=s3cret"), 401, "unauthorized"
        )
        deleted = await client.delete("/api/agents/a", headers={"Authorization": "Bearer s3cret"})
        assert deleted.status_code == 200
    await sup.shutdown()


async def test_protect_reads(tmp_path: Path, nursery: trio.Nursery) -> None:
    config = make_config(tmp_path, auth={"token": "t", "protect_reads": True})
    sup = Supervisor(config)
    await nursery.start(sup.run)
    app = create_app(config, sup)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        await expect_error(await client.get("/api/agents"), 401, "unauthorized")
        ok = await client.get("/api/agents", headers={"Authorization": "Bearer t"})
        assert ok.status_code == 200
    await sup.shutdown()


async def test_forbidden_command_and_too_many(tmp_path: Path, nursery: trio.Nursery) -> None:
    config = make_config(tmp_path, limits={"max_agents": 1}, agents={"allowed_commands": ["sleep"]})
    sup = Supervisor(config)
    await nursery.start(sup.run)
    app = create_app(config, sup)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        await expect_error(
            await post_agent(client, {"name": "a", "command": ["rm", "-rf", "/tmp/x"]}),
            403,
            "command_not_allowed",
        )
        assert (
            await post_agent(client, {"name": "a", "command": ["sleep", "30"]})
        ).status_code == 201
        await expect_error(
            await post_agent(client, {"name": "b", "command": ["sleep", "30"]}),
            429,
            "too_many_agents",
        )
    await sup.shutdown()
