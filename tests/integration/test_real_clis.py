"""The real agent CLIs, started through the daemon with the shipped profiles, against a fake
model server: what the daemon extracts from their real output.

Each test installs its CLI into the repository's cache (tests/integration/clis.py; skipped
with the reason where that fails), then, inside a network namespace where only loopback
exists (tests/integration/netns.py; skipped where none can be made), starts a fake model
server (tests/integration/fake_models.py) and the daemon (tests/daemon.py), and asks the
daemon for an agent of the CLI's shipped profile. Endpoint, key, model and no-telemetry
settings go in the agent's ``env`` only. The model asks for a tool call that writes a file
and runs a shell command in the agent's cwd, then gives a final answer with token usage.

Each run's raw stdout is kept in tests/fixtures/transcripts/<cli>/ under the CLI's version
(written when missing, or always with ``REAL_CLI_SAVE=1``), so the replay tests of
tests/extract/test_transcripts.py follow the CLIs as they change.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import Daemon, poll
from tests.helpers import TRANSCRIPTS
from tests.integration.clis import Installed
from tests.integration.fake_models import (
    Call,
    FakeAnthropic,
    FakeGemini,
    FakeModelServer,
    FakeOpenAIChat,
    FakeOpenAIResponses,
    Script,
    Turn,
)
from tests.integration.netns import NetnsUnavailable, loopback_only, reaches_outside

pytestmark = [pytest.mark.real_cli, pytest.mark.e2e]

PROMPT = "Write hello.py that prints hello, run it, and tell me what it printed."
FINAL = "Done: hello.py prints hello."
PROGRAM = "print('hello')\n"
RUN_TIMEOUT = 240.0
FINAL_TOKENS = {"input_tokens": 2100, "output_tokens": 30}


@dataclass(frozen=True)
class Case:
    server: type[FakeModelServer]
    script: Callable[[Path], Script]
    env: Callable[[FakeModelServer, Path], dict[str, str]]
    transcript: str  # file name under tests/fixtures/transcripts/<cli>/, {version} filled in


def _claude_env(server: FakeModelServer, home: Path) -> dict[str, str]:
    return {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": server.url,
        "ANTHROPIC_API_KEY": "fake-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


def _codex_env(server: FakeModelServer, home: Path) -> dict[str, str]:
    # Codex ignores OPENAI_BASE_URL: its provider comes from CODEX_HOME/config.toml.
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(
        'model = "gpt-5.5"\n'
        'model_provider = "fake"\n'
        "[model_providers.fake]\n"
        'name = "fake"\n'
        f'base_url = "{server.url}/v1"\n'
        'env_key = "FAKE_KEY"\n'
        'wire_api = "responses"\n'
        "[analytics]\n"
        "enabled = false\n"
        "[features]\n"
        "plugins = false\n"
    )
    return {"HOME": str(home), "CODEX_HOME": str(codex_home), "FAKE_KEY": "fake-key"}


def _gemini_env(server: FakeModelServer, home: Path) -> dict[str, str]:
    settings = home / ".gemini" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(
        json.dumps(
            {
                "security": {"auth": {"selectedType": "gemini-api-key"}},
                "privacy": {"usageStatisticsEnabled": False},
            }
        )
    )
    return {
        "HOME": str(home),
        "GOOGLE_GEMINI_BASE_URL": server.url,
        "GEMINI_API_KEY": "fake-key",
        "GEMINI_MODEL": "gemini-2.5-flash",
    }


def _aider_env(server: FakeModelServer, home: Path) -> dict[str, str]:
    # LiteLLM reads its model price list from here instead of fetching it.
    prices = home / ".aider" / "caches" / "model_prices_and_context_window.json"
    prices.parent.mkdir(parents=True, exist_ok=True)
    prices.write_text(
        json.dumps(
            {
                "openai/fake-coder": {
                    "litellm_provider": "openai",
                    "mode": "chat",
                    "max_input_tokens": 128000,
                    "max_tokens": 4096,
                    "input_cost_per_token": 0.000002,
                    "output_cost_per_token": 0.00001,
                }
            }
        )
    )
    return {
        "HOME": str(home),
        "OPENAI_API_KEY": "fake-key",
        "OPENAI_API_BASE": f"{server.url}/v1",
        "AIDER_MODEL": "openai/fake-coder",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }


def _claude_script(cwd: Path) -> Script:
    return Script(
        [
            Turn(
                tool_calls=[
                    Call("Write", {"file_path": str(cwd / "hello.py"), "content": PROGRAM}),
                    Call("Bash", {"command": "python3 hello.py > out.txt && cat out.txt"}),
                ]
            ),
            Turn(text=FINAL, input_tokens=2100, output_tokens=30),
        ]
    )


def _codex_script(cwd: Path) -> Script:
    # apply_patch is a freeform tool (a custom_tool_call); exec_command a function.
    patch = f"*** Begin Patch\n*** Add File: hello.py\n+{PROGRAM}*** End Patch\n"
    return Script(
        [
            Turn(
                tool_calls=[
                    Call("apply_patch", patch),
                    Call("exec_command", {"cmd": "python3 hello.py > out.txt && cat out.txt"}),
                ]
            ),
            Turn(text=FINAL, input_tokens=2100, output_tokens=30),
        ]
    )


def _gemini_script(cwd: Path) -> Script:
    return Script(
        [
            Turn(
                tool_calls=[
                    Call("write_file", {"file_path": str(cwd / "hello.py"), "content": PROGRAM}),
                    Call("run_shell_command", {"command": "python3 hello.py > out.txt"}),
                ]
            ),
            Turn(text=FINAL, input_tokens=2100, output_tokens=30),
        ]
    )


def _aider_script(cwd: Path) -> Script:
    # Aider edits through its own text format ("whole" for an unknown model): a file name,
    # then the file in a fence. It has no shell tool: a suggested command is not run under
    # --yes-always (it asks for an explicit yes).
    reply = f"I will create hello.py.\n\nhello.py\n```python\n{PROGRAM}```\n"
    return Script([Turn(text=reply, input_tokens=2100, output_tokens=30)])


CASES = {
    "claude": Case(FakeAnthropic, _claude_script, _claude_env, "real_fake_server_{version}.jsonl"),
    "codex": Case(
        FakeOpenAIResponses, _codex_script, _codex_env, "real_fake_server_{version}.jsonl"
    ),
    "gemini": Case(FakeGemini, _gemini_script, _gemini_env, "real_fake_server_{version}.jsonl"),
    "aider": Case(FakeOpenAIChat, _aider_script, _aider_env, "real_fake_server_{version}.txt"),
}


@dataclass
class Run:
    detail: dict[str, Any]
    metrics: str
    stdout: bytes
    stderr: bytes
    server: FakeModelServer
    cwd: Path
    command: list[str]

    def matches(self, key: str) -> list[dict[str, Any]]:
        return list(self.detail["matches"][key])

    def session(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self.matches("session")}

    def metric(self, key: str) -> list[float]:
        return [r["value"] for r in self.matches("metrics") if r["key"] == key]

    def series(self, family: str, **labels: str) -> float:
        """The sum of a Prometheus family's samples whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics.splitlines():
            m = re.match(rf"{family}\{{([^}}]*)\}} (\S+)$", line)
            if m is None:
                continue
            got = dict(re.findall(r'(\w+)="([^"]*)"', m[1]))
            if all(got.get(k) == v for k, v in labels.items()):
                total += float(m[2])
        return total


def run_through_daemon(name: str, tool: Installed, tmp_path: Path) -> Run:
    case = CASES[name]
    cwd, home = tmp_path / "project", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    path = f"{tool.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(loopback_only())
        except NetnsUnavailable as exc:
            pytest.skip(f"no network namespace of its own here: {exc}")
        assert not reaches_outside(), "the namespace still has a route off the machine"
        with (
            case.server(case.script(cwd)) as server,
            Daemon(tmp_path / "daemon", env={"PATH": path}) as daemon,
            daemon.client(timeout=30) as http,
        ):
            body = {
                "name": name,
                "profile": name,
                "prompt": PROMPT,
                "cwd": str(cwd),
                "env": case.env(server, home),
            }
            created = http.post("/api/agents", json=body)
            assert created.status_code == 201, created.text

            def finished() -> dict[str, Any] | None:
                detail = http.get(f"/api/agents/{name}").json()
                running = ("starting", "running", "waiting")
                return detail if detail["status"] not in running else None

            poll(finished, RUN_TIMEOUT, f"{name} to finish")
            detail = http.get(f"/api/agents/{name}?include_matches=true&limit=1000").json()
            metrics = http.get("/metrics").text
            logs = {k: (daemon.cwd / v).read_bytes() for k, v in detail["logs"].items()}
    run = Run(detail, metrics, logs["stdout"], logs["stderr"], server, cwd, detail["command"])
    _keep_transcript(name, tool, case, run)
    return run


def _keep_transcript(name: str, tool: Installed, case: Case, run: Run) -> None:
    """The run's raw stdout as a fixture: when its version has none yet, or when asked."""
    target = TRANSCRIPTS / name / case.transcript.format(version=tool.version)
    if run.detail["status"] == "completed" and (
        not target.exists() or os.environ.get("REAL_CLI_SAVE") == "1"
    ):
        target.write_bytes(run.stdout)


def _describe(run: Run) -> str:
    return (
        f"command: {run.command}\nstatus: {run.detail['status']} exit {run.detail['exit_code']}"
        f"\nstdout:\n{run.stdout.decode(errors='replace')[-4000:]}"
        f"\nstderr:\n{run.stderr.decode(errors='replace')[-4000:]}"
    )


def _common(run: Run, name: str, final: str | None = FINAL) -> None:
    """What every CLI's run shows: it completed, did the work, answered, used tokens."""
    assert run.detail["status"] == "completed", _describe(run)
    assert run.detail["exit_code"] == 0
    assert run.detail["profile"] == name
    assert (run.cwd / "hello.py").read_text() == PROGRAM
    assert run.server.conversation_requests(), run.server.requests
    if final is not None:
        responses = [r["text"] for r in run.matches("responses")]
        assert any(final in text for text in responses), responses
    assert run.detail["extraction"]["unknown_events"] == {}, run.detail["extraction"]
    assert run.series("trio_wrapper_tokens_total", agent=name, type="input") > 0
    assert run.series("trio_wrapper_tokens_total", agent=name, type="output") > 0
    assert run.series("trio_wrapper_agent_unknown_events_total", agent=name) == 0


def test_claude(real_cli: Callable[[str], Installed], tmp_path: Path) -> None:
    tool = real_cli("claude")
    run = run_through_daemon("claude", tool, tmp_path)
    _common(run, "claude")
    assert run.command[:3] == ["claude", "-p", PROMPT]
    assert "--allowedTools" in run.command
    session = run.session()
    assert session["version"] == tool.version
    assert session["model"]
    assert re.fullmatch(r"[0-9a-f-]{36}", session["session_id"])
    assert session["cwd"] == str(run.cwd)
    tools = [(r["tool"], r["input"]) for r in run.matches("tool_calls")]
    assert tools == [
        ("Write", str(run.cwd / "hello.py")),
        ("Bash", "python3 hello.py > out.txt && cat out.txt"),
    ]
    assert [(r["op"], r["path"]) for r in run.matches("file_ops")] == [
        ("create", str(run.cwd / "hello.py"))
    ]
    assert (run.cwd / "out.txt").read_text() == "hello\n"  # the Bash call ran
    assert run.metric("input_tokens") == [1200 + 2100]
    assert run.metric("output_tokens")
    assert run.metric("total_cost_usd")[0] > 0
    assert run.series("trio_wrapper_cost_usd_total", agent="claude") > 0
    assert not run.matches("errors")


def test_codex(real_cli: Callable[[str], Installed], tmp_path: Path) -> None:
    tool = real_cli("codex")
    run = run_through_daemon("codex", tool, tmp_path)
    _common(run, "codex")
    assert run.command[:2] == ["codex", "exec"] and run.command[-1] == PROMPT
    assert run.command[-3:-1] == ["--sandbox", "workspace-write"]
    session = run.session()
    assert re.fullmatch(r"[0-9a-f-]{36}", session["session_id"])
    calls = run.matches("tool_calls")
    assert [(r["tool"], r["status"], r["exit_code"]) for r in calls] == [("shell", "completed", 0)]
    assert "python3 hello.py > out.txt && cat out.txt" in calls[0]["input"]
    assert [(r["op"], r["path"]) for r in run.matches("file_ops")] == [
        ("create", str(run.cwd / "hello.py"))
    ]
    assert (run.cwd / "out.txt").read_text() == "hello\n"
    assert run.metric("input_tokens") == [1200 + 2100]
    assert run.metric("output_tokens") == [40 + 30]
    # The model the request named (codex's json says none): from CODEX_HOME's config.
    assert all(r.body["model"] == "gpt-5.5" for r in run.server.conversation_requests())


def test_gemini(real_cli: Callable[[str], Installed], tmp_path: Path) -> None:
    tool = real_cli("gemini")
    run = run_through_daemon("gemini", tool, tmp_path)
    _common(run, "gemini")
    assert run.command[:3] == ["gemini", "-p", PROMPT]
    assert run.command[-2:] == ["--approval-mode", "yolo"]
    session = run.session()
    assert session["model"] == "gemini-2.5-flash"
    assert re.fullmatch(r"[0-9a-f-]{36}", session["session_id"])
    assert [r["text"] for r in run.matches("prompts")] == [PROMPT]
    tools = [(r["tool"], r["input"]) for r in run.matches("tool_calls")]
    assert tools == [
        ("write_file", str(run.cwd / "hello.py")),
        ("run_shell_command", "python3 hello.py > out.txt"),
    ]
    assert (run.cwd / "out.txt").read_text() == "hello\n"
    assert str(run.cwd / "hello.py") in [r["path"] for r in run.matches("file_ops")]
    assert run.metric("input_tokens") == [1200 + 2100]


def test_aider(real_cli: Callable[[str], Installed], tmp_path: Path) -> None:
    tool = real_cli("aider")
    run = run_through_daemon("aider", tool, tmp_path)
    _common(run, "aider", None)  # aider's reply is plain text: its parts are extracted
    assert run.command[:3] == ["aider", "--message", PROMPT]
    assert run.command[-1] == "--yes-always"
    session = run.session()
    assert session["version"] == tool.version
    assert session["model"] == "openai/fake-coder"
    assert [(r["op"], r["path"]) for r in run.matches("file_ops")] == [("update", "hello.py")]
    assert [(r["language"], r["content"]) for r in run.matches("code_blocks")][:1] == [
        ("python", PROGRAM.strip())
    ]
    assert [r["state"] for r in run.matches("state")] == ["commit"]
    # Aider counts tokens itself (its tokenizer), not from the usage the server reports.
    assert run.metric("tokens_sent")[0] > 0 and run.metric("tokens_received")[0] > 0
    assert run.metric("cost_usd")[0] > 0
    assert run.series("trio_wrapper_cost_usd_total", agent="aider") > 0
