"""The metrics routes over a real supervisor running real children (pytest-trio).

The scenario: a past run found in the logs dir, two agents that really run (one fails
with exit 3, one ``cat``s a transcript and completes), one start that fails (422), then a
DELETE whose series must vanish while the daemon-wide counters stay.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from quart.typing import TestClientProtocol as Client

from tests.helpers import TRANSCRIPTS, make_config, wait_for
from trio_wrapper.api.app import create_app
from trio_wrapper.config import ConfigError
from trio_wrapper.core.lines import LineSplitter
from trio_wrapper.core.models import RunMeta
from trio_wrapper.core.timefmt import now_local, rfc3339
from trio_wrapper.history.runfiles import RunFiles
from trio_wrapper.runtime.supervisor import Supervisor

TRANSCRIPT = TRANSCRIPTS / "codex" / "plain_exec_v0.93_gaia_go.txt"
PROM_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NS = "trio_wrapper"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def line_count(data: bytes) -> int:
    splitter = LineSplitter()
    return len(splitter.feed(data).lines) + len(splitter.flush().lines)


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def write_past_run(logs_dir: Path) -> None:
    """A run of an earlier daemon: listed at start, but not started by this one."""
    started = now_local()
    files = RunFiles.create(logs_dir, "old-run", started)
    files.write_meta(
        RunMeta(
            name="old-run",
            status="completed",
            command=["true"],
            started_at=rfc3339(started),
            completed_at=rfc3339(started),
            exit_code=0,
            bytes={"stdout": 10, "stderr": 0},
            lines={"stdout": 2, "stderr": 0},
            total_lines=2,
            duration_seconds=1.5,
        )
    )


@pytest.fixture
async def scenario(
    tmp_path: Path, nursery: trio.Nursery
) -> AsyncIterator[tuple[Client, Supervisor]]:
    config = make_config(tmp_path)
    write_past_run(config.logs_path)
    supervisor = Supervisor(config)
    await nursery.start(supervisor.run)
    app = create_app(config, supervisor)
    async with app.test_app() as test_app:
        yield test_app.test_client(), supervisor
    with trio.fail_after(30):
        await supervisor.shutdown()


async def get_text(client: Client, path: str) -> tuple[str, str]:
    response = await client.get(path)
    assert response.status_code == 200
    return await response.get_data(as_text=True), response.headers["Content-Type"]


async def start(client: Client, name: str, command: list[str], fmt: str = "none") -> Any:
    return await client.post("/api/agents", json={"name": name, "command": command, "format": fmt})


async def test_scenario_prometheus_json_and_influx(
    scenario: tuple[Client, Supervisor],
) -> None:
    client, supervisor = scenario
    script = "printf 'a\\nb\\nc\\n'; printf 'oops\\n' >&2; exit 3"
    assert (await start(client, "printer", ["sh", "-c", script])).status_code == 201
    assert (await start(client, "reader", ["cat", str(TRANSCRIPT)])).status_code == 201
    failed = await start(client, "ghost", ["/nonexistent/agent-cli"])
    assert failed.status_code == 422
    await wait_for(lambda: all(not a.is_live for a in supervisor.agents.values()))
    transcript_lines = line_count(TRANSCRIPT.read_bytes())
    log_lines = 4 + transcript_lines

    text, content_type = await get_text(client, "/metrics")
    assert content_type == PROM_TYPE
    found = samples(text)
    assert "_created" not in text
    for status, count in {"completed": 2, "failed": 1, "running": 0, "starting": 0}.items():
        assert value(found, f"{NS}_agents", status=status) == count
    # The past run counts in the gauges, not as started; the spawn failure counts apart.
    assert value(found, f"{NS}_agents_started_total") == 2
    assert value(found, f"{NS}_failed_starts_total") == 1
    assert value(found, f"{NS}_log_lines_total") == log_lines
    assert value(found, f"{NS}_state_changes_total") == 4  # starting→running→end, twice
    extractions = sum(v for (n, _), v in found.items() if n == f"{NS}_extractions_total")
    assert value(found, f"{NS}_events_total") == log_lines + 4 + extractions
    assert value(found, f"{NS}_events_per_second") > 0
    assert value(found, f"{NS}_uptime_seconds") > 0
    assert value(found, f"{NS}_agent_status", agent="printer", status="failed") == 1
    assert value(found, f"{NS}_agent_status", agent="old-run", status="completed") == 1
    assert value(found, f"{NS}_agent_log_lines_total", agent="printer") == 4
    assert value(found, f"{NS}_agent_log_lines_total", agent="reader") == transcript_lines
    assert value(found, f"{NS}_agent_log_lines_total", agent="old-run") == 2
    assert value(found, f"{NS}_agent_output_bytes_total", agent="printer", stream="stdout") == 6
    assert value(found, f"{NS}_agent_output_bytes_total", agent="printer", stream="stderr") == 5
    assert (
        value(found, f"{NS}_agent_output_bytes_total", agent="reader", stream="stdout")
        == TRANSCRIPT.stat().st_size
    )
    assert value(found, f"{NS}_agent_exit_code", agent="printer") == 3
    assert value(found, f"{NS}_agent_exit_code", agent="reader") == 0
    assert value(found, f"{NS}_agent_duration_seconds", agent="old-run") == 1.5
    for family in ("extractions", "code_blocks", "errors"):
        assert value(found, f"{NS}_agent_{family}_total", agent="reader") == 0
    assert value(found, f"{NS}_sse_dropped_events_total") == 0  # no hub: true zeros
    assert not any(n == f"{NS}_sse_clients" for n, _ in found)

    await check_json(client, log_lines, transcript_lines)
    await check_influx(client)

    # DELETE: the agent's series vanish; the daemon-wide counters keep what it added.
    assert (await client.delete("/api/agents/printer")).status_code == 200
    after = samples((await get_text(client, "/metrics"))[0])
    assert not [key for key in after if ("agent", "printer") in key[1]]
    assert value(after, f"{NS}_agent_log_lines_total", agent="reader") == transcript_lines
    assert value(after, f"{NS}_agents", status="failed") == 0
    for name in ("log_lines_total", "events_total", "agents_started_total", "failed_starts_total"):
        assert value(after, f"{NS}_{name}") == value(found, f"{NS}_{name}")
    doc = msgspec.json.decode(await (await client.get("/api/metrics")).get_data())
    assert [a["name"] for a in doc["agents"]] == ["old-run", "reader"]
    influx = (await get_text(client, "/api/metrics/influxdb"))[0]
    assert "agent=printer" not in influx


async def check_json(client: Client, log_lines: int, transcript_lines: int) -> None:
    response = await client.get("/api/metrics")
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    doc = msgspec.json.decode(await response.get_data())
    assert list(doc) == ["version", "system", "agents", "sse"]
    system = doc["system"]
    assert list(system) == [
        "uptime_seconds",
        "total_agents",
        "running_agents",
        "completed_agents",
        "failed_agents",
        "total_events",
        "total_logs",
        "total_extractions",
        "events_per_second",
        "extractions_by_type",
        "waiting_agents",
    ]
    assert system["total_agents"] == 3
    assert system["running_agents"] == 0
    assert system["completed_agents"] == 2
    assert system["failed_agents"] == 1
    assert system["total_logs"] == log_lines
    assert system["total_events"] == log_lines + 4 + system["total_extractions"]
    assert system["total_extractions"] == sum(system["extractions_by_type"].values())
    agents = {a["name"]: a for a in doc["agents"]}
    assert set(agents) == {"old-run", "printer", "reader"}
    printer = agents["printer"]
    assert list(printer) == [
        "name",
        "status",
        "started_at",
        "completed_at",
        "log_lines",
        "extractions",
        "code_blocks",
        "errors",
        "bytes_processed",
        "exit_code",
        "duration_seconds",
    ]
    assert printer["status"] == "failed"
    assert printer["log_lines"] == 4
    assert printer["bytes_processed"] == 11
    assert printer["exit_code"] == 3
    assert printer["completed_at"] is not None
    assert agents["reader"]["log_lines"] == transcript_lines
    assert doc["sse"] == {"total_agents": 0, "total_clients": 0, "agents": {}}


async def check_influx(client: Client) -> None:
    text, content_type = await get_text(client, "/api/metrics/influxdb")
    assert content_type == "text/plain; charset=utf-8"
    lines = text.splitlines()
    assert lines[0].startswith(f"{NS},host=")
    assert ",total_agents=3i," in lines[0]
    agents = [line for line in lines if line.startswith(f"{NS}_agent,")]
    assert len(agents) == 3
    printer = next(line for line in agents if line.startswith(f"{NS}_agent,agent=printer,"))
    assert ",status=failed " in printer
    assert ",exit_code=3i," in printer
    stamp = int(printer.rsplit(" ", 1)[1])
    assert abs(stamp - time.time_ns()) < 60 * 10**9  # nanoseconds, wall clock


async def test_promtool_finds_nothing_to_report(scenario: tuple[Client, Supervisor]) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        reason = "promtool not installed (Debian package 'prometheus'): lint not run"
        print(reason)
        pytest.skip(reason)
    client, supervisor = scenario
    # Two code blocks and an error line, through the real text extractor.
    script = "printf '```py\\nx\\n```\\n```\\ny\\n```\\nError: boom\\n'; exit 1"
    assert (await start(client, "lint-me", ["sh", "-c", script], "text")).status_code == 201
    await wait_for(lambda: not supervisor.agents["lint-me"].is_live)
    text = (await get_text(client, "/metrics"))[0]
    assert f'{NS}_extractions_total{{type="code_block"}} 2' in text
    assert f'{NS}_agent_errors_total{{agent="lint-me"}} 1' in text
    result = await trio.run_process(
        [promtool, "check", "metrics"],
        stdin=text.encode(),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


async def test_openapi_documents_the_json_route(scenario: tuple[Client, Supervisor]) -> None:
    client, _ = scenario
    spec = msgspec.json.decode(await (await client.get("/openapi.json")).get_data())
    for path in ("/metrics", "/api/metrics", "/api/metrics/influxdb"):
        assert "get" in spec["paths"][path]
    schema = spec["paths"]["/api/metrics"]["get"]["responses"]["200"]["content"]
    assert "application/json" in schema


def test_namespace_is_configurable_and_checked(tmp_path: Path) -> None:
    assert make_config(tmp_path).metrics.namespace == "trio_wrapper"
    assert make_config(tmp_path, metrics={"namespace": "go_wrapper"}).metrics.namespace == (
        "go_wrapper"
    )
    for bad in ["", "1abc", "a-b", "a:b", "é"]:
        with pytest.raises(ConfigError, match=r"metrics\.namespace"):
            make_config(tmp_path, metrics={"namespace": bad})


async def test_the_task_gauge_grows_with_an_agent_and_comes_back_after_it(
    scenario: tuple[Client, Supervisor],
) -> None:
    client, supervisor = scenario

    async def tasks() -> float:
        return value(samples((await get_text(client, "/metrics"))[0]), f"{NS}_tasks")

    quiet = await tasks()
    assert quiet > 0
    assert (await start(client, "sleeper", ["sleep", "30"])).status_code == 201
    assert await tasks() > quiet  # its process, readers and line work
    assert (await client.delete("/api/agents/sleeper")).status_code == 200
    with trio.fail_after(10):
        while await tasks() != quiet:  # noqa: ASYNC110 - a gauge polled: a stopped agent's tasks all end
            await trio.sleep(0.02)
    assert not supervisor.agents.get("sleeper")
