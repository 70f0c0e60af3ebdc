"""The interactive session of tests/e2e/test_interactive.py with the real claude CLI:
started through the daemon with the ``claude-chat`` profile (stream-json on stdin and
stdout, permission prompts over stdio) against a fake Anthropic server on 127.0.0.1. The
model asks for Bash; the permission prompt is answered "yes" through the API; the file
is written; the turn ends and claude waits; its stdin closed, it completes.

Needs the installer of the real-CLI tests (tests/integration/clis.py): skipped, with the
reason printed (``-ra``), where it is absent or claude cannot be installed here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import poll, running_daemon
from tests.e2e.test_interactive import BOUND, StateReader, drive_permission_session, status_of
from tests.integration.fake_models import Call, FakeAnthropic, Script, Turn

try:
    from tests.integration.clis import CLIS, InstallError, install
except ImportError:
    pytest.skip(
        "tests/integration/clis.py (the real-CLI installer) is not in this tree",
        allow_module_level=True,
    )

pytestmark = [pytest.mark.real_cli, pytest.mark.e2e]


def test_claude_stream_json_answers_a_permission_prompt(tmp_path: Path) -> None:
    try:
        claude = install(CLIS["claude"])
    except InstallError as exc:
        pytest.skip(f"claude could not be installed here: {exc}")
    print(f"claude: {claude.version_text}")
    cwd, home = tmp_path / "work", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    script = Script(
        [
            Turn(tool_calls=[Call("Bash", {"command": "echo hi > a.txt"})]),
            Turn(text="a.txt written"),
        ]
    )
    path = f"{claude.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    with (
        FakeAnthropic(script) as server,
        running_daemon(tmp_path / "daemon", env={"PATH": path}) as daemon,
        daemon.client(timeout=BOUND) as http,
    ):
        body = {
            "name": "claude",
            "profile": "claude-chat",
            "stdin": True,
            "cwd": str(cwd),
            "env": {
                "HOME": str(home),
                "ANTHROPIC_BASE_URL": server.url,
                "ANTHROPIC_API_KEY": "fake-key",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            },
        }
        created = http.post("/api/agents", json=body)
        assert created.status_code == 201, created.text
        print("command:", " ".join(created.json()["command"]))
        reader = StateReader(daemon.url, "claude")
        reader.start()
        assert reader.connected.wait(BOUND)
        details = drive_permission_session(http, reader, "claude", cwd)
        print("waiting for:", details)
        assert details[1] == "permission to use Bash"
        assert (cwd / "a.txt").read_text() == "hi\n"
        detail = http.get("/api/agents/claude?include_matches=true").json()
        assert detail["exit_code"] == 0
        assert any(t["tool"] == "Bash" for t in detail["matches"]["tool_calls"])


def test_claude_asks_its_user_a_question(tmp_path: Path) -> None:
    """claude's ``AskUserQuestion`` through the API: the agent waits with the question as
    its ``waiting_detail``; the message's text is the answer the model gets back."""
    try:
        claude = install(CLIS["claude"])
    except InstallError as exc:
        pytest.skip(f"claude could not be installed here: {exc}")
    cwd, home = tmp_path / "work", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    question = {
        "questions": [
            {
                "question": "Which colour?",
                "header": "Colour",
                "multiSelect": False,
                "options": [
                    {"label": "red", "description": "warm"},
                    {"label": "blue", "description": "cool"},
                ],
            }
        ]
    }
    script = Script([Turn(tool_calls=[Call("AskUserQuestion", question)]), Turn(text="blue")])
    path = f"{claude.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    with (
        FakeAnthropic(script) as server,
        running_daemon(tmp_path / "daemon", env={"PATH": path}) as daemon,
        daemon.client(timeout=BOUND) as http,
    ):
        env = {
            "HOME": str(home),
            "ANTHROPIC_BASE_URL": server.url,
            "ANTHROPIC_API_KEY": "fake-key",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
        body = {"name": "ask", "profile": "claude-chat", "stdin": True, "cwd": str(cwd)}
        created = http.post("/api/agents", json={**body, "env": env})
        assert created.status_code == 201, created.text
        status_of(http, "ask", "waiting")
        assert http.post("/api/agents/ask/message", json={"text": "ask me"}).status_code == 200

        def asking() -> dict[str, Any] | None:
            detail: dict[str, Any] = http.get("/api/agents/ask").json()
            return detail if detail["waiting_detail"] == "question: Which colour?" else None

        poll(asking, BOUND, "claude never asked its question")
        answered = http.post("/api/agents/ask/message", json={"text": "blue"})
        assert answered.json()["answered"] == "AskUserQuestion", answered.text

        def turn_done() -> dict[str, Any] | None:
            detail: dict[str, Any] = http.get("/api/agents/ask").json()
            done = detail["status"] == "waiting" and "turn" in (detail["waiting_detail"] or "")
            return detail if done else None

        poll(turn_done, BOUND, "claude never ended its turn")
        results = [
            block
            for request in server.requests
            for message in (request.body or {}).get("messages", [])
            if isinstance(message.get("content"), list)
            for block in message["content"]
            if block.get("type") == "tool_result"
        ]
        assert any('"blue"' in str(block.get("content")) for block in results), results
        assert http.post("/api/agents/ask/input", json={"eof": True}).status_code == 200
        status_of(http, "ask", "completed")
