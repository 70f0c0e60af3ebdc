"""A keep-alive connection keeps serving after an answer that came before the request's
body had all arrived (a 404 for an unknown agent is decided before the body is read).

Before ``api.body_drain``, hypercorn ended such a request's cycle while the body was still
coming and closed the connection racing with its own reader: the next request on the same
connection was sometimes never answered (``make fuzz``: 30 s read timeouts)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.daemon import running_daemon

ROUNDS = 25


def test_requests_after_an_early_answer_to_a_big_body_are_served(tmp_path: Path) -> None:
    with (
        running_daemon(tmp_path) as daemon,
        httpx.Client(
            base_url=daemon.url,
            timeout=10.0,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        ) as client,
    ):
        for size in (100_000, 600_000, 3_000_000):  # the last is over max_body_bytes: 413
            body = b"x" * size
            for _ in range(ROUNDS):
                first = client.post(
                    "/api/agents/nobody/input",
                    content=body,
                    headers={"content-type": "application/json"},
                )
                assert first.status_code in (404, 413), first.text
                assert first.json()["error"]["code"] in ("agent_not_found", "body_too_large")
                second = client.post("/api/agents/nobody/restart?force=true")
                assert second.status_code == 404, second.text
        assert client.get("/api/health").json()["status"] == "healthy"
    assert "Error in ASGI" not in daemon.log and "Traceback" not in daemon.log
