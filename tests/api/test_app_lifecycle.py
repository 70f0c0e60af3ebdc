"""The app served by a plain `hypercorn -k trio` (no arguments): it owns its hub and supervisor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trio_wrapper.api.app import create_app


async def test_the_no_argument_app_starts_and_stops_its_own_agents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRIO_WRAPPER_CONFIG", raising=False)
    monkeypatch.setenv("TRIO_WRAPPER_SERVER_LOGS_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("TRIO_WRAPPER_AGENTS_STOP_GRACE_SECONDS", "2")
    monkeypatch.setenv("TRIO_WRAPPER_EXTRACTION_WORKER", "false")
    app = create_app()
    async with app.test_app() as test_app:
        client = test_app.test_client()
        response = await client.post(
            "/api/agents",
            data=json.dumps({"name": "s", "command": ["sleep", "30"]}),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 201
    (meta_path,) = (tmp_path / "logs" / "agents" / "s").glob("*-meta.json")
    meta = json.loads(meta_path.read_text())
    assert meta["status"] == "stopped" and meta["stop_reason"] == "shutdown"
