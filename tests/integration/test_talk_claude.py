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

import pytest

from tests.daemon import running_daemon
from tests.e2e.test_interactive import BOUND, StateReader, drive_permission_session
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
