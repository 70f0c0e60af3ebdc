"""The deployment files of conf/: the systemd unit, the Prometheus scrape config and alert
rules, and the Grafana dashboard, each checked against the tool that reads it where it is
installed (skipped with a printed reason otherwise) and against the metrics a real
daemon exposes.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from tests.daemon import Daemon, daemon_command, poll
from tests.helpers import REPO, TRANSCRIPTS, need
from trio_wrapper.config import load_config

pytestmark = pytest.mark.e2e

CONF = REPO / "conf"
UNIT = CONF / "trio_wrapper.service"
PROMETHEUS = CONF / "prometheus.yml"
RULES = CONF / "prometheus-rules.yml"
DASHBOARD = CONF / "grafana-dashboard.json"
CLAUDE = TRANSCRIPTS / "claude" / "gleam_golden_basic_query_2.1.7.jsonl"
TOOL_TIMEOUT = 60.0
WAIT = 30.0
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = frozenset({"instance", "job"})
METRIC = re.compile(r"\b(trio_wrapper_[a-z0-9_]+|up)\b")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")
BY = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


# ---- systemd ------------------------------------------------------------------------


def unit_settings(text: str) -> dict[str, list[str]]:
    """``Key=value`` of the unit, every value of a key in order (comments left out)."""
    settings: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_the_unit_stops_agents_through_the_daemon_and_is_hardened() -> None:
    settings = unit_settings(UNIT.read_text())

    def one(key: str) -> str:
        values = settings.get(key, [])
        assert len(values) == 1, f"{key}: {values}"
        return values[0]

    assert one("KillMode") == "mixed"  # SIGTERM to the daemon alone; it stops its agents
    assert one("KillSignal") == "SIGTERM"
    assert one("Restart") == "on-failure"
    assert one("RestartPreventExitStatus") == "2"  # a config error
    assert one("NoNewPrivileges") == "yes"
    assert one("ProtectSystem") == "strict"
    assert one("PrivateTmp") == "yes"
    # Long enough for the daemon's own stop: the agents' grace, then its exit.
    defaults = load_config(None, environ={})
    assert float(one("TimeoutStopSec")) > defaults.agents.stop_grace_seconds + 10
    # The logs dir is in the state directory, the only place ProtectSystem leaves writable.
    state = one("StateDirectory")
    exec_start = one("ExecStart").split()
    assert exec_start[1:2] == ["serve"]
    logs_dir = exec_start[exec_start.index("--logs-dir") + 1]
    assert logs_dir.startswith(f"/var/lib/{state}/"), logs_dir
    assert one("WorkingDirectory") == f"/var/lib/{state}"
    assert "/etc/trio_wrapper/trio_wrapper.toml" in exec_start
    # The token as a credential, read through auth.token_file.
    assert one("Environment") == "TRIO_WRAPPER_AUTH_TOKEN_FILE=%d/token"
    assert one("LoadCredential").startswith("token:")


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = need("systemd-analyze")
    script = Path(daemon_command()[0])
    if script.name != "trio-wrapper":
        pytest.skip("no trio-wrapper console script beside this Python")
    # The unit as installed with this checkout's venv: only ExecStart's program differs
    # (systemd-analyze checks that it exists and is executable).
    text = UNIT.read_text()
    rendered, count = re.subn(
        r"^ExecStart=\S+/trio-wrapper ", f"ExecStart={script} ", text, flags=re.M
    )
    assert count == 1
    unit = tmp_path / UNIT.name
    unit.write_text(rendered)
    done = subprocess.run(
        [analyze, "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        check=False,
    )
    # Unknown keys and bad values are warnings with exit code 0: none may be printed.
    assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), done


# ---- Prometheus ---------------------------------------------------------------------


def test_promtool_accepts_the_scrape_config_and_rules() -> None:
    promtool = need("promtool")
    for args in (["check", "config", str(PROMETHEUS)], ["check", "rules", str(RULES)]):
        done = subprocess.run(
            [promtool, *args], capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SUCCESS" in done.stdout


# ---- Grafana, against a real daemon's /metrics --------------------------------------


def families(exposition: str) -> dict[str, set[str]]:
    """Every metric family of a /metrics answer (its ``# TYPE`` lines) with the label
    names its samples carry."""
    found: dict[str, set[str]] = {}
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            found.setdefault(line.split()[2], set())
        elif line and not line.startswith("#"):
            name, _, rest = line.partition("{")
            labels = re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', rest.partition("}")[0])
            found.setdefault(name.split()[0], set()).update(labels)
    return found


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, set[str]]]:
    """/metrics of a daemon with series of every kind: a finished Claude run (tokens and
    cost), a live agent with an SSE client (per-agent gauges), a run with an unknown event."""
    daemon = Daemon(tmp_path_factory.mktemp("metrics"))
    daemon.start()
    try:
        with httpx.Client(base_url=daemon.url, timeout=10) as http:
            body = {"name": "claude-1", "command": ["cat", str(CLAUDE)]}
            body["format"] = "claude-stream-json"
            assert http.post("/api/agents", json=body).status_code == 201
            live = {"name": "live", "command": ["cat"], "stdin": True}
            assert http.post("/api/agents", json=live).status_code == 201
            # An event type its format does not know (a CLI that changed its output).
            drift = {"name": "drift", "command": ["printf", '{"type":"brand_new_event"}\\n']}
            drift["format"] = "claude-stream-json"
            assert http.post("/api/agents", json=drift).status_code == 201

            def tokens_counted() -> bool:
                text = http.get("/metrics").text
                return "trio_wrapper_tokens_total{" in text and "_unknown_events_total{" in text

            poll(tokens_counted, WAIT, "claude-1's tokens or drift's unknown event never showed")
            with connect_sse(http, "GET", "/api/agents/live/stream") as source:
                assert next(source.iter_sse()).event == "connected"

                def with_client() -> str | None:
                    metrics = http.get("/metrics").text
                    return metrics if "_sse_clients{" in metrics else None

                text = poll(with_client, WAIT, "the stream client never showed in /metrics")
            http.post("/api/agents/live/input", json={"eof": True})
        yield families(text)
    finally:
        daemon.stop()


def check_expression(expr: str, exposed: dict[str, set[str]], where: str) -> list[str]:
    """What is wrong with a PromQL expression: a metric the daemon does not expose, a label
    its series do not carry."""
    problems = []
    names = set(METRIC.findall(expr))
    if not names:
        problems.append(f"{where}: names no metric: {expr}")
    labels = set(TARGET_LABELS)
    for name in names:
        if name == "up":
            continue
        if name not in exposed:
            problems.append(f"{where}: {name} is not a metric the daemon exposes")
        labels |= exposed.get(name, set())
    for selector in re.findall(r"\{([^}]*)\}", expr):
        for label in MATCHER.findall(selector):
            if label not in labels and label != "__name__":
                problems.append(f"{where}: no series of {sorted(names)} has label {label!r}")
    for group in BY.findall(expr):
        for label in (part.strip() for part in group.split(",")):
            if label and label not in labels:
                problems.append(f"{where}: no series of {sorted(names)} has label {label!r}")
    return problems


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable.get("type") == "query":
            yield f"variable {variable['name']!r}", variable["definition"]


def test_the_grafana_dashboard_queries_only_metrics_the_daemon_exposes(
    exposed: dict[str, set[str]],
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    problems = []
    for where, expr in dashboard_queries(dashboard):
        problems += check_expression(expr, exposed, where)
    assert problems == []
    # Every metric family the daemon has is on the dashboard somewhere.
    used = {name for _, expr in dashboard_queries(dashboard) for name in METRIC.findall(expr)}
    assert set(exposed) - used == set()


def test_the_grafana_dashboard_is_importable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    inputs = {item["name"] for item in dashboard["__inputs"]}
    assert inputs == {"DS_PROMETHEUS"}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_the_alert_rules_query_only_metrics_the_daemon_exposes(
    exposed: dict[str, set[str]],
) -> None:
    exprs = re.findall(r"^\s*expr:\s*(.+)$", RULES.read_text(), flags=re.M)
    assert len(exprs) >= 3
    problems = [p for e in exprs for p in check_expression(e, exposed, "rule")]
    assert problems == []


def test_the_checks_catch_a_wrong_name_and_a_wrong_label() -> None:
    exposed = {"trio_wrapper_agents": {"status"}}
    assert check_expression('sum by (status) (trio_wrapper_agents{job="x"})', exposed, "q") == []
    assert check_expression("trio_wrapper_agent_count", exposed, "q") == [
        "q: trio_wrapper_agent_count is not a metric the daemon exposes"
    ]
    assert check_expression("sum by (model) (trio_wrapper_agents)", exposed, "q") == [
        "q: no series of ['trio_wrapper_agents'] has label 'model'"
    ]
