"""Error messages that help (issue 18): a refused enum value names the valid ones, and a
refused Host names the setting that would let it in."""

from __future__ import annotations

import pytest
from quart.typing import TestClientProtocol as Client

from tests.api.test_routes import expect_error, post_agent
from trio_wrapper.core.models import FORMATS
from trio_wrapper.core.status import Status

STATUSES = [s.value for s in Status]


async def message_of(response: object, status: int, code: str) -> str:
    await expect_error(response, status, code)
    body = await response.get_json()  # type: ignore[attr-defined]
    message: str = body["error"]["message"]
    return message


async def test_an_unknown_format_names_every_format(client: Client) -> None:
    response = await post_agent(client, {"name": "f", "command": ["true"], "format": "xml"})
    message = await message_of(response, 400, "invalid_request")
    assert "'xml'" in message and "$.format" in message
    assert f"(one of: {', '.join(FORMATS)})" in message


async def test_an_unknown_log_stream_names_stdout_and_stderr(client: Client) -> None:
    await post_agent(client, {"name": "l", "command": ["true"]})
    response = await client.get("/api/agents/l/logs?stream=both")
    message = await message_of(response, 400, "invalid_request")
    assert message.endswith("(one of: stdout, stderr)"), message


@pytest.mark.parametrize(
    "path",
    ["/api/agents?status=done", "/api/runs?status=done"],
)
async def test_an_unknown_status_names_every_status(client: Client, path: str) -> None:
    message = await message_of(await client.get(path), 400, "invalid_request")
    assert "'done'" in message
    assert f"(one of: {', '.join(STATUSES)})" in message


async def test_an_unknown_status_to_delete_names_every_status(client: Client) -> None:
    response = await client.delete("/api/agents?status=completed,done")
    message = await message_of(response, 400, "invalid_request")
    assert "'done'" in message and f"(one of: {', '.join(STATUSES)})" in message


async def test_an_unknown_group_by_names_every_key(client: Client) -> None:
    response = await client.get("/api/usage?group_by=week")
    message = await message_of(response, 400, "invalid_request")
    assert "(one of: day, name, model, profile)" in message


async def test_a_refused_host_names_server_allowed_hosts(client: Client) -> None:
    response = await client.get("/api/health", headers={"Host": "wrapper.example.org:8443"})
    message = await message_of(response, 403, "host_not_allowed")
    assert "'wrapper.example.org'" in message
    assert "server.allowed_hosts" in message
