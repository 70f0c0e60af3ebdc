"""Run history through a real daemon restarted on the same logs dir: a past run's detail,
records, logs and SSE replay are the same after the restart as before it, and a name's
runs are still served after a DELETE."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.daemon import Daemon, poll, running_daemon
from tests.helpers import PY, REPO, TRANSCRIPTS

# Real codex output (many records of several kinds), then a line on stderr.
TRANSCRIPT = TRANSCRIPTS / "codex" / "plain_exec_v0.114.0_claude-os-worker.txt"
WRITE = (
    "import sys\n"
    "sys.stdout.write(open(sys.argv[1]).read())\n"
    "sys.stdout.flush()\n"
    "print('warning: the end', file=sys.stderr)\n"
)
COMMAND = [PY, "-c", WRITE, str(TRANSCRIPT)]
STOP_BOUND = 20.0


def stop(daemon: Daemon) -> None:
    code = daemon.stop(STOP_BOUND)
    assert code == 0, f"exit status {code}:\n{daemon.log}"


def finished(http: httpx.Client, path: str) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def done() -> dict[str, Any] | None:
        last.update(http.get(path).json())
        return dict(last) if last.get("status") == "completed" else None

    return poll(done, 30, lambda: f"{path} never completed: {last}")


def sse(http: httpx.Client, path: str) -> list[tuple[int | None, str, dict[str, Any]]]:
    """A finished run's whole stream: (id, event, data) of each event but ``connected``."""
    response = http.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for block in response.text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" not in fields or fields["event"] == "connected":
            continue
        number = int(fields["id"]) if "id" in fields else None
        events.append((number, fields["event"], json.loads(fields["data"])["data"]))
    return events


def retained(events: list[tuple[int | None, str, dict[str, Any]]]) -> list[Any]:
    """What a past run's stream keeps: records, status changes and the end, in order."""
    return [(kind, data) for _, kind, data in events if kind != "log"]


def snapshot(http: httpx.Client, name: str, stamp: str) -> dict[str, Any]:
    run = f"/api/agents/{name}/runs/{stamp}"
    return {
        "detail": http.get(f"{run}?include_matches=true&limit=10000").json(),
        "stdout": http.get(f"{run}/logs").text,
        "stderr": http.get(f"{run}/logs?stream=stderr").text,
        "tail": http.get(f"{run}/logs?tail=3").text,
        "stream": retained(sse(http, f"{run}/stream?history=all")),
        "listing": http.get(f"/api/agents/{name}/runs").json(),
    }


def test_a_past_run_is_the_same_after_a_daemon_restart(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with running_daemon(tmp_path / "first", logs_dir=logs, cwd=REPO) as first:
        with first.client() as http:
            created = http.post(
                "/api/agents", json={"name": "hist", "command": COMMAND, "format": "text"}
            )
            assert created.status_code == 201, created.text
            first_id = created.json()["run_id"]
            name, stamp = first_id.split("/")
            detail = finished(http, "/api/agents/hist?include_matches=true&limit=10000")
            assert detail["extraction"]["total_matches"] > 10
            assert (
                sum(map(len, detail["matches"].values())) == detail["extraction"]["total_matches"]
            )
            # The stream of the run this daemon saw: its ring, log lines included.
            live_stream = sse(http, "/api/agents/hist/stream?history=all")
            assert live_stream[-1][1] == "complete"
            assert any(kind == "log" for _, kind, _ in live_stream)
            before = snapshot(http, name, stamp)
            # The listed run and the run by its id are one and the same.
            assert before["detail"] == detail
            assert before["stream"] == retained(live_stream)
            assert before["stdout"] == TRANSCRIPT.read_text()
            assert before["stderr"] == "warning: the end\n"

            # A second run of the name: the first stays in its history.
            again = http.post("/api/agents/hist/restart")
            assert again.status_code == 201, again.text
            second_id = again.json()["run_id"]
            assert second_id != first_id and second_id.startswith("hist/")
            finished(http, "/api/agents/hist")
            runs = http.get("/api/agents/hist/runs").json()
            assert [r["id"] for r in runs["runs"]] == [second_id, first_id]
            assert [r["listed"] for r in runs["runs"]] == [True, False]
            assert snapshot(http, name, stamp)["detail"] == detail
            listing_before = runs
        stop(first)

    with running_daemon(tmp_path / "second", logs_dir=logs, cwd=REPO) as second:
        with second.client() as http:
            after = snapshot(http, name, stamp)
            # Same counts, same records in the same order, same logs, same replay.
            assert after["detail"] == before["detail"]
            assert after["stdout"] == before["stdout"]
            assert after["stderr"] == before["stderr"]
            assert after["tail"] == before["tail"]
            assert after["stream"] == before["stream"]
            assert after["listing"] == listing_before
            # The listed run (the second) by its name: records and replay are back too.
            listed = http.get("/api/agents/hist?include_matches=true&limit=10000").json()
            assert listed["run_id"] == second_id
            # (Its line numbers may differ from the first run's: stdout and stderr race.)
            sizes = {kind: len(records) for kind, records in listed["matches"].items()}
            assert sizes == {kind: len(records) for kind, records in detail["matches"].items()}
            history = sse(http, "/api/agents/hist/stream?history=50")
            kinds = [kind for _, kind, _ in history]
            assert kinds.count("extraction") > 10 and kinds[-1] == "complete"
            # Numbered in file order, the end last: a client that saw it is told 204.
            numbers = [number or 0 for number, _, _ in history]
            assert numbers == sorted(numbers) and numbers[0] > 0
            seen = http.get("/api/agents/hist/stream", headers={"Last-Event-ID": str(numbers[-1])})
            assert seen.status_code == 204
            resumed = sse(http, f"/api/agents/hist/stream?last_event_id={numbers[-3]}")
            assert [n for n, _, _ in resumed] == numbers[-2:]

            # DELETE unlists the name; its runs are still there, from their files.
            assert http.delete("/api/agents/hist").status_code == 200
            assert http.get("/api/agents/hist").status_code == 404
            runs = http.get("/api/agents/hist/runs").json()
            assert [r["id"] for r in runs["runs"]] == [second_id, first_id]
            assert not any(r["listed"] for r in runs["runs"])
            assert snapshot(http, name, stamp)["detail"] == before["detail"]
            second_stamp = second_id.split("/")[1]
            assert http.get(f"/api/agents/hist/runs/{second_stamp}/logs").text == (
                TRANSCRIPT.read_text()
            )
        stop(second)
