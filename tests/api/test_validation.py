"""Bad input on every route is a JSON 400 (or its own 4xx), never a 500: the request
checks of issue 15 (item 5) and the configurable limits, through Quart's test client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from quart.typing import TestClientProtocol as Client

from tests.api.test_routes import JSON, expect_error, post_agent
from tests.helpers import make_config, wait_for
from trio_wrapper.api.app import create_app
from trio_wrapper.api.requests import nesting_depth_exceeds
from trio_wrapper.runtime.supervisor import Supervisor


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"BAD\u0000KEY": "1"}, "'BAD\\x00KEY'"),
        ({"A=B": "1"}, "'A=B'"),
        ({"": "1"}, "must not be empty"),
        ({"GOOD": "1", "VALUE": "a\u0000b"}, "'VALUE'"),
    ],
)
async def test_env_the_os_cannot_take_is_400_naming_the_key(
    client: Client, supervisor: Supervisor, env: dict[str, str], needle: str
) -> None:
    """subprocess raised ValueError for these (a 500 with a traceback in the log)."""
    response = await post_agent(client, {"name": "e", "command": ["true"], "env": env})
    await expect_error(response, 400, "invalid_request")
    assert needle in (await response.get_json())["error"]["message"]
    assert "e" not in supervisor.agents


async def test_a_cwd_with_nul_is_400(client: Client) -> None:
    response = await post_agent(client, {"name": "c", "command": ["true"], "cwd": "/tmp\u0000x"})
    await expect_error(response, 400, "invalid_request")


async def test_lone_surrogates_are_malformed_json(client: Client, supervisor: Supervisor) -> None:
    """msgspec refuses them while decoding: they never reach the OS or an encode()."""
    created = await post_agent(client, {"name": "s", "command": ["cat"], "stdin": True})
    assert created.status_code == 201
    body = b'{"data": "\\ud800"}'
    response = await client.post("/api/agents/s/input", data=body, headers=JSON)
    await expect_error(response, 400, "invalid_request")
    response = await post_agent(client, {"name": "e", "command": ["true"], "env": {"A": "\udbff"}})
    await expect_error(response, 400, "invalid_request")


@pytest.fixture
async def finished(client: Client, supervisor: Supervisor) -> str:
    await post_agent(client, {"name": "q", "command": ["echo", "x"]})
    await wait_for(lambda: not supervisor.agents["q"].is_live)
    return "q"


# Each of these passed str.isdigit() (or msgspec's lax conversion) before.
NOT_ASCII_DIGITS = ["%C2%B2", "%D9%A1", "%EF%BC%91", "1_0", "%2B1", "-1", "1%201", "1e3", "0x10"]


@pytest.mark.parametrize("value", NOT_ASCII_DIGITS)
async def test_integers_in_queries_are_ascii_digits(
    client: Client, finished: str, value: str
) -> None:
    for target in (
        f"/api/agents/{finished}/logs?tail={value}",
        f"/api/agents/{finished}?include_matches=true&limit={value}",
        f"/api/agents/{finished}/stream?history={value}",
        f"/api/events?history={value}",
        f"/api/events?last_event_id={value}",
    ):
        await expect_error(await client.get(target), 400, "invalid_request")


@pytest.mark.parametrize("value", ["\u00b2", "\u0661", "1\u00b2"])
async def test_last_event_id_header_is_ascii_digits(client: Client, value: str) -> None:
    """``"²".isdigit()`` is true and ``int("²")`` fails: this was a 500."""
    response = await client.get("/api/events", headers={"Last-Event-ID": value})
    await expect_error(response, 400, "invalid_request")


async def test_a_huge_number_of_digits_is_400(client: Client, finished: str) -> None:
    digits = "9" * 5000  # int() refuses more than 4300 digits: was a 500
    await expect_error(await client.get(f"/api/events?history={digits}"), 400, "invalid_request")
    await expect_error(
        await client.get(f"/api/agents/{finished}/logs?tail={digits}"), 400, "invalid_request"
    )


def nested(depth: int) -> str:
    return '{"name": "d", "command": ["true"], "env": ' + "[" * depth + "]" * depth + "}"


async def test_json_nesting_deeper_than_the_limit_is_400(client: Client) -> None:
    response = await client.post("/api/agents", data=nested(33), headers=JSON)
    await expect_error(response, 400, "invalid_request")
    assert "limits.max_json_depth" in (await response.get_json())["error"]["message"]
    # Brackets inside strings do not count.
    inside = json.dumps({"name": "d", "command": ["echo", "[" * 100]})
    assert (await client.post("/api/agents", data=inside, headers=JSON)).status_code == 201


def test_nesting_depth_counts_arrays_and_objects_not_strings() -> None:
    assert not nesting_depth_exceeds(b'{"a": [[1]]}', 3)
    assert nesting_depth_exceeds(b'{"a": [[[1]]]}', 3)
    assert not nesting_depth_exceeds(b'["[[[[", "\\"[[[["]', 1)
    assert not nesting_depth_exceeds(b"[]" * 1000, 1)
    assert nesting_depth_exceeds(b"[" * 100_000, 32)


@pytest.fixture
async def limited(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Client]:
    limits: dict[str, Any] = {
        "max_json_depth": 2,
        "max_name_length": 8,
        "max_records": 5,
        "max_tail_lines": 3,
        "max_header_bytes": 2048,
    }
    config = make_config(tmp_path, limits=limits)
    sup = Supervisor(config)
    await nursery.start(sup.run)
    app = create_app(config, sup)
    async with app.test_app() as test_app:
        yield test_app.test_client()
    with trio.fail_after(30):
        await sup.shutdown()


async def test_every_limit_is_the_configured_one(limited: Client) -> None:
    client = limited
    await expect_error(
        await post_agent(client, {"name": "n" * 9, "command": ["true"]}), 400, "invalid_name"
    )
    deep = {"name": "d", "command": ["true"], "env": {"A": "1"}}
    assert (await post_agent(client, deep)).status_code == 201  # depth 2
    deeper = '{"name": "d2", "command": [["true"]]}'  # depth 3
    await expect_error(
        await client.post("/api/agents", data=deeper, headers=JSON), 400, "invalid_request"
    )
    await expect_error(await client.get("/api/agents/d/logs?tail=4"), 400, "invalid_request")
    await expect_error(
        await client.get("/api/agents/d?include_matches=true&limit=6"), 400, "invalid_request"
    )
    assert (await client.get("/api/agents/d?include_matches=true&limit=5")).status_code == 200
    big = await client.get("/api/health", headers={"X-Filler": "x" * 2048})
    await expect_error(big, 431, "headers_too_large")


async def test_a_mutating_request_from_another_origin_is_403(client: Client) -> None:
    body = json.dumps({"name": "o", "command": ["true"]})
    for origin in ("http://evil.example", "null", "http://localhost:8081"):
        response = await client.post("/api/agents", data=body, headers={**JSON, "Origin": origin})
        await expect_error(response, 403, "origin_not_allowed")
    allowed = await client.post(
        "/api/agents", data=body, headers={**JSON, "Origin": "http://localhost:8080"}
    )
    assert allowed.status_code == 201
    # The daemon's own page (/docs "Try it out") is same-origin.
    own = await client.delete(
        "/api/agents/o", headers={"Origin": "http://127.0.0.1:8151", "Host": "127.0.0.1:8151"}
    )
    assert own.status_code == 200
    # Reads stay open to any origin (CORS decides whether a page may see them).
    assert (await client.get("/api/health", headers={"Origin": "null"})).status_code == 200
