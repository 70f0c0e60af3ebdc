"""The command-line client against a real daemon on an ephemeral port (issue 18).

Every subcommand is run as a user runs it, as the ``trio-wrapper`` console script in a
subprocess, and its output and exit code are checked. The daemon has a token, so every
call also shows that the client sends it. Each test uses agent names of its own; waits
are bounded (``poll``) and never stand in for an order of events.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon import Daemon, clean_environ, daemon_command, poll
from tests.helpers import TRANSCRIPTS
from trio_wrapper.core.models import FORMATS

pytestmark = pytest.mark.e2e

TOKEN = "cli-test-token"
CLI_TIMEOUT = 60.0
WAIT = 30.0
CLAUDE = TRANSCRIPTS / "claude" / "gleam_golden_basic_query_2.1.7.jsonl"
CONFIG = """
[profiles.echo]
command = ["echo", "prompt was: {prompt}"]
format = "text"
"""
SUBCOMMANDS = ("serve", "ls", "start", "stop", "restart", "rm", "show", "logs", "tail", "input")
SUBCOMMANDS += ("run", "runs", "usage", "metrics")


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Env:
    daemon: Daemon
    http: httpx.Client
    workdir: Path

    def cli(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        token: bool = True,
        stdin: str | None = None,
    ) -> Result:
        """``trio-wrapper ARGS`` with the daemon's URL (and token) in the environment."""
        base = {"TRIO_WRAPPER_URL": self.daemon.url, "NO_COLOR": "1"}
        if token:
            base["TRIO_WRAPPER_AUTH_TOKEN"] = TOKEN
        return run_cli(args, {**base, **(env or {})}, self.workdir, stdin)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """``trio-wrapper ARGS`` left running, with Ctrl-C at its default as in a terminal.

        A suite started in the background by a script runs with SIGINT ignored, and a child
        inherits an ignored signal (Python then leaves it ignored): a Ctrl-C test could not
        interrupt it. A handled one is reset to the default in the child."""
        env = clean_environ({"TRIO_WRAPPER_URL": self.daemon.url, "TRIO_WRAPPER_AUTH_TOKEN": TOKEN})
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return subprocess.Popen(
                [*daemon_command(), *args],
                env=env,
                cwd=self.workdir,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        finally:
            signal.signal(signal.SIGINT, previous)

    def agent(self, name: str) -> dict[str, Any]:
        answer = self.http.get(f"/api/agents/{name}")
        assert answer.status_code == 200, answer.text
        detail: dict[str, Any] = answer.json()
        return detail

    def wait_status(self, name: str, *statuses: str) -> dict[str, Any]:
        return poll(
            lambda: (d := self.agent(name))["status"] in statuses and d,
            WAIT,
            f"{name} never reached {statuses}",
        )


def run_cli(
    args: Sequence[str], env: Mapping[str, str], cwd: Path, stdin: str | None = None
) -> Result:
    done = subprocess.run(
        [*daemon_command(), *args],
        env=clean_environ(env),
        cwd=cwd,
        input="" if stdin is None else stdin,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def one_line_error(result: Result) -> str:
    """A failure as the issue wants it: non-zero, one line on stderr, no traceback."""
    assert result.code != 0, result
    assert "Traceback" not in result.err, result.err
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    workdir = tmp_path_factory.mktemp("cli")
    config = workdir / "trio_wrapper.toml"
    config.write_text(CONFIG)
    daemon = Daemon(
        workdir,
        env={"TRIO_WRAPPER_AUTH_TOKEN": TOKEN, "TRIO_WRAPPER_AGENTS_STOP_GRACE_SECONDS": "2"},
        config=config,
    )
    daemon.start()
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=daemon.url, timeout=10, headers=headers) as http:
            yield Env(daemon, http, workdir)
    finally:
        daemon.stop()


# ---- no daemon needed ---------------------------------------------------------------


def test_help_reads_as_plain_text(tmp_path: Path) -> None:
    top = run_cli(["--help"], {}, tmp_path)
    assert top.code == 0, top
    for name in SUBCOMMANDS:
        assert f"\n    {name} " in top.out, name
    for name in SUBCOMMANDS:
        page = run_cli([name, "--help"], {}, tmp_path)
        assert page.code == 0, page
        assert page.out.startswith(f"usage: trio-wrapper {name}"), page.out
        # Plain text: no reStructuredText or Markdown markup.
        assert "``" not in page.out and "`" not in page.out, page.out
    start = run_cli(["start", "--help"], {}, tmp_path).out
    assert "trio-wrapper start demo -- sh -c 'echo hello'" in start
    assert ", ".join(FORMATS) in " ".join(start.split())


def test_a_bad_flag_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for args in (["ls", "--bogus"], ["usage", "--by", "week"], ["frobnicate"], ["tail"]):
        result = run_cli(args, {}, tmp_path)
        assert result.code == 2, result
        line = one_line_error(result)
        assert line.startswith("trio-wrapper"), line
        assert "--help" in line
    week = run_cli(["usage", "--by", "week"], {}, tmp_path)
    assert "'day', 'model', 'name', 'profile'" in week.err


def test_a_daemon_that_is_down_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    for args in (["ls"], ["run", "x", "--", "true"], ["tail", "-f", "x"]):
        result = run_cli(args, {"TRIO_WRAPPER_URL": url}, tmp_path)
        assert result.code == 1, result
        line = one_line_error(result)
        assert line == (
            f"trio-wrapper: error: cannot reach the daemon at {url}: connection refused "
            "(is 'trio-wrapper serve' running? see --url)"
        )


def test_the_url_comes_from_the_config_file(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "c.toml"
    server = f'[server]\nhost = "0.0.0.0"\nport = {port}\nroot_path = "/wrapper"\n'
    config.write_text(server + '[auth]\ntoken = "from-the-config"\n')
    result = run_cli(["ls", "--config", str(config)], {}, tmp_path)
    assert f"http://127.0.0.1:{port}/wrapper: connection refused" in one_line_error(result)
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 'x'\n")
    line = one_line_error(run_cli(["ls"], {"TRIO_WRAPPER_CONFIG": str(bad)}, tmp_path))
    assert "config error" in line and "server.port" in line, line


# ---- against the daemon -------------------------------------------------------------


def test_run_passes_the_exit_code_and_the_two_streams_through(env: Env) -> None:
    result = env.cli("run", "r3", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert result.code == 3, result
    assert result.out == "out\n"
    assert result.err == "err\n"
    assert env.agent("r3")["exit_code"] == 3
    ok = env.cli("run", "r0", "--", "true")
    assert (ok.code, ok.out, ok.err) == (0, "", "")


def test_run_stdin_passes_this_stdin_to_the_agent(env: Env) -> None:
    result = env.cli("run", "rin", "--stdin", "--", "cat", stdin="one\ntwo ünï\n")
    assert (result.code, result.out, result.err) == (0, "one\ntwo ünï\n", ""), result
    # Without --stdin the agent reads /dev/null.
    result = env.cli("run", "rno", "--", "cat", stdin="ignored\n")
    assert (result.code, result.out) == (0, ""), result


def test_run_verbose_shows_records_and_status(env: Env) -> None:
    script = "printf 'before\\n```python\\nprint(1)\\n```\\n'"
    result = env.cli("run", "rv", "-v", "--format", "text", "--", "sh", "-c", script)
    assert result.code == 0, result
    assert result.out == "before\n```python\nprint(1)\n```\n"
    assert "trio-wrapper: started rv (pid " in result.err
    assert "» code_block: python, 1 line(s): print(1)" in result.err
    assert "-- completed (exit 0, after " in result.err


def test_run_killed_by_a_signal_exits_128_plus_it(env: Env) -> None:
    result = env.cli("run", "rk", "--", "sh", "-c", "kill -TERM $$")
    assert result.code == 128 + signal.SIGTERM, result


def test_ctrl_c_during_run_stops_the_agent(env: Env) -> None:
    running = env.popen("run", "ctrl-c", "--", "sleep", "300")
    try:
        # Once its stream has a client, `run` is following it: the interrupt lands there.
        poll(
            lambda: env.http.get("/api/sse/stats").json()["agents"].get("ctrl-c"),
            WAIT,
            "run never subscribed to its agent's stream",
        )
        running.send_signal(signal.SIGINT)
        out, err = running.communicate(timeout=CLI_TIMEOUT)
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate()
    assert running.returncode == 130, err
    assert (out, err) == ("", "trio-wrapper: interrupted: ctrl-c stopped\n")
    assert env.agent("ctrl-c")["status"] == "stopped"


def test_a_running_name_is_not_replaced(env: Env) -> None:
    assert env.cli("start", "busy", "--", "sleep", "300").code == 0
    line = one_line_error(env.cli("start", "busy", "--replace", "--", "true"))
    assert line == (
        "trio-wrapper: error: an agent named 'busy' already exists and is running: "
        "'trio-wrapper stop busy' stops it (then --replace), or pick another name"
    )
    assert env.cli("rm", "busy", "--force").code == 0


def test_start_then_ls_show_logs_and_tail(env: Env) -> None:
    script = "echo hello; echo oops >&2; printf '```sh\\nls\\n```\\n'; echo Error: disk full"
    started = env.cli("start", "demo", "--format", "text", "--", "sh", "-c", script)
    assert started.code == 0, started
    assert started.out.startswith("started demo (pid ")
    assert "run demo/" in started.out
    detail = env.wait_status("demo", "completed")
    assert detail["cwd"] == str(env.workdir)  # the client's directory: the daemon is local

    listing = env.cli("ls")
    assert listing.code == 0, listing
    header, *rows = listing.out.splitlines()
    assert header.split() == [
        "NAME",
        "STATUS",
        "PID",
        "UPTIME",
        "END",
        "LINES",
        "RECORDS",
        "ERRORS",
        "STARTED",
    ]
    row = next(r.split() for r in rows if r.split()[0] == "demo")
    assert row[1:3] == ["completed", str(detail["pid"])]
    assert row[4:6] == ["exit", "0"]
    assert row[6] == "6"  # lines
    as_json = json.loads(env.cli("ls", "--json").out)
    assert "demo" in [a["name"] for a in as_json["agents"]]
    only_running = env.cli("ls", "--status", "running")
    assert "demo" not in only_running.out.split()

    show = env.cli("show", "demo")
    assert show.code == 0, show
    assert "status:   completed (exit 0)" in show.out
    assert "command:  sh -c " in show.out
    assert "code_block 1" in show.out and "error 1" in show.out
    assert "code_block: sh, 1 line(s): ls" in show.out
    assert "error: Error: disk full (stdout)" in show.out
    assert json.loads(env.cli("show", "demo", "--json").out)["name"] == "demo"

    logs = env.cli("logs", "demo")
    assert logs.out == "hello\n```sh\nls\n```\nError: disk full\n"
    assert env.cli("logs", "demo", "--stderr").out == "oops\n"
    assert env.cli("logs", "demo", "--tail", "1").out == "Error: disk full\n"

    tail = env.cli("tail", "demo", "-n", "2")
    assert tail.out.splitlines() == ["```", "Error: disk full", "stderr| oops"]

    # -f on an agent that has ended: its last events, then its end.
    followed = env.cli("tail", "-f", "demo", "-n", "100")
    assert followed.code == 0, followed
    lines = followed.out.splitlines()
    assert lines[0] == "-- running"
    assert "hello" in lines and "stderr| oops" in lines
    assert "» error: Error: disk full (stdout)" in lines
    assert lines[-1].startswith("-- completed (exit 0, after ")


def test_tail_f_follows_until_the_agent_completes(env: Env) -> None:
    assert env.cli("start", "feed", "--stdin", "--", "cat").code == 0
    env.wait_status("feed", "running")
    tail = env.popen("tail", "-f", "feed")
    try:
        # What tail -f shows first comes from the agent's ring, so it does not matter
        # whether the input below reaches the agent before or after tail subscribed.
        sent = env.cli("input", "feed", "hello there")
        assert (sent.code, sent.out) == (0, "wrote 12 bytes to feed\n"), sent
        closed = env.cli("input", "feed", "--eof")
        assert (closed.code, closed.out) == (0, "wrote 0 bytes to feed; stdin closed\n")
        out, err = tail.communicate(timeout=CLI_TIMEOUT)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.communicate()
    assert tail.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == "-- running"
    assert "hello there" in lines
    assert lines[-1].startswith("-- completed (exit 0, after ")
    refused = env.cli("input", "feed", "more")
    assert "stdin_not_open" in one_line_error(refused)


def test_input_needs_text_or_eof(env: Env) -> None:
    line = one_line_error(env.cli("input", "feed"))
    assert line == "trio-wrapper: error: give the TEXT to send, or --eof to close its stdin"


def test_stop_restart_runs_and_rm(env: Env) -> None:
    assert env.cli("start", "sleeper", "--", "sleep", "300").code == 0
    env.wait_status("sleeper", "running")
    stopped = env.cli("stop", "sleeper")
    assert (stopped.code, stopped.out) == (0, "agent stopped: sleeper (stopped)\n"), stopped
    again = env.cli("stop", "sleeper")
    assert again.out == "agent was not running: sleeper (stopped)\n"

    restarted = env.cli("restart", "sleeper")
    assert restarted.code == 0, restarted
    assert restarted.out.startswith("restarted sleeper (pid ")
    assert env.agent("sleeper")["status"] == "running"

    runs = env.cli("runs", "sleeper")
    assert runs.code == 0, runs
    header, first, second, footer = runs.out.splitlines()
    assert header.split()[:2] == ["RUN", "STATUS"]
    assert first.split()[1:3] == ["*", "running"]  # newest first, the listed one
    assert second.split()[1] == "stopped"
    assert footer.startswith("2 run(s)")
    assert json.loads(env.cli("runs", "sleeper", "--json").out)["count"] == 2

    removed = env.cli("rm", "sleeper", "--force")
    assert removed.code == 0, removed
    assert removed.out == (
        "removed: sleeper (stopped); its files stay on disk ('trio-wrapper runs sleeper')\n"
    )
    assert "sleeper" not in [a["name"] for a in json.loads(env.cli("ls", "--json").out)["agents"]]
    gone = one_line_error(env.cli("show", "sleeper"))
    assert gone == ("trio-wrapper: error: no agent named 'sleeper' (agent_not_found, HTTP 404)")


def test_start_from_a_profile_with_a_prompt(env: Env) -> None:
    started = env.cli("start", "prof", "--profile", "echo", "--prompt", "fib in python")
    assert started.code == 0, started
    env.wait_status("prof", "completed")
    assert env.cli("logs", "prof").out == "prompt was: fib in python\n"
    unknown = one_line_error(env.cli("start", "p2", "--profile", "nope", "--prompt", "x"))
    assert "unknown_profile" in unknown and "HTTP 404" in unknown
    both = one_line_error(env.cli("start", "p3", "--profile", "echo", "--", "true"))
    assert "not both" in both


def test_4xx_answers_are_one_line(env: Env) -> None:
    assert env.cli("run", "dup", "--", "true").code == 0
    taken = one_line_error(env.cli("start", "dup", "--", "true"))
    assert taken == (
        "trio-wrapper: error: an agent named 'dup' already exists (completed): --replace "
        "starts the new one in its place, 'trio-wrapper restart dup' runs its command again "
        "(its runs stay on disk either way)"
    )
    replaced = env.cli("run", "dup", "--replace", "--", "sh", "-c", "exit 4")
    assert replaced.code == 4, replaced
    assert env.agent("dup")["exit_code"] == 4
    bad = one_line_error(env.cli("start", "bad/name", "--", "true"))
    assert "invalid_name" in bad and "HTTP 400" in bad
    missing = one_line_error(env.cli("start", "nox", "--", "/nonexistent/program"))
    assert "spawn_failed" in missing and "HTTP 422" in missing


def test_the_token(env: Env, tmp_path: Path) -> None:
    without = one_line_error(env.cli("start", "t1", "--", "true", token=False))
    assert "unauthorized" in without and "HTTP 401" in without
    assert without.endswith("; give the token with --token-file or $TRIO_WRAPPER_AUTH_TOKEN")
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    with_file = env.cli("start", "t1", "--token-file", str(token_file), "--", "true", token=False)
    assert with_file.code == 0, with_file
    prefixed = one_line_error(env.cli("ls", "--url", env.daemon.url + "/elsewhere"))
    assert "(not_found, HTTP 404); is --url right?" in prefixed
    missing = one_line_error(env.cli("ls", "--token-file", str(tmp_path / "none")))
    assert "cannot read --token-file" in missing


def test_usage_and_metrics(env: Env) -> None:
    ran = env.cli("run", "claude-1", "--format", "claude-stream-json", "--", "cat", str(CLAUDE))
    assert ran.code == 0, ran

    def indexed() -> bool:
        answer = env.http.get("/api/usage", params={"group_by": "name"})
        return any(g["key"] == "claude-1" for g in answer.json()["groups"])

    poll(indexed, WAIT, "the run index never counted claude-1")
    by_model = env.cli("usage", "--by", "model")
    assert by_model.code == 0, by_model
    header, *rows = by_model.out.splitlines()
    assert header.split() == [
        "MODEL",
        "RUNS",
        "INPUT",
        "OUTPUT",
        "CACHE_READ",
        "CACHE_WRITE",
        "REASONING",
        "OTHER",
        "COST",
    ]
    assert any(r.startswith("claude-") and "$" in r for r in rows), rows
    assert rows[-1].startswith("TOTAL")
    by_name = env.cli("usage", "--by", "name")
    assert any(r.split()[0] == "claude-1" for r in by_name.out.splitlines())
    usage_json = json.loads(env.cli("usage", "--json").out)
    assert usage_json["group_by"] == "day" and usage_json["total"]["runs"] >= 1

    metrics = env.cli("metrics")
    assert metrics.code == 0, metrics
    fields = dict(line.split(":", 1) for line in metrics.out.splitlines())
    assert set(fields) >= {"uptime", "agents", "events", "log lines", "records", "sse clients"}
    assert int(fields["agents"].split()[0]) >= 1
    prometheus = env.cli("metrics", "--prometheus").out
    assert "\ntrio_wrapper_uptime_seconds " in prometheus
    assert json.loads(env.cli("metrics", "--json").out)["system"]["total_agents"] >= 1
