"""The client's pure parts: the SSE parser, tables, records and stream lines."""

from __future__ import annotations

from trio_wrapper.client import render
from trio_wrapper.client.commands import exit_status
from trio_wrapper.client.http import ApiError, Endpoint, agent_path
from trio_wrapper.client.sse import SseEvent, SseParser


def parse(text: str) -> list[SseEvent]:
    parser = SseParser()
    events = [parser.feed(line) for line in text.split("\n")]
    return [e for e in events if e is not None]


def test_sse_events_with_and_without_ids() -> None:
    wire = (
        "event: connected\n"
        'data: {"type":"connected","data":{"client_id":"c1"}}\n'
        "\n"
        ": a comment\n"
        "id: 7\n"
        "event: log\n"
        'data: {"type":"log","data":{"line":"hi","stream":"stderr"}}\n'
        "\n"
    )
    connected, log = parse(wire)
    assert (connected.event, connected.id, connected.payload) == (
        "connected",
        None,
        {"client_id": "c1"},
    )
    assert (log.event, log.id, log.payload["line"]) == ("log", 7, "hi")


def test_sse_data_lines_join_and_non_json_stays_text() -> None:
    (event,) = parse("data: one\ndata: two\n\n")
    assert event.event == "message" and event.data == "one\ntwo" and event.payload == {}


def test_table_aligns_without_counting_colour() -> None:
    style = render.Style(colour=True)
    text = render.table(["NAME", "N"], [["a", "1"], [style.status("running"), "100"]], right=[1])
    lines = text.split("\n")
    assert lines[0] == "NAME       N"
    assert lines[1] == "a          1"
    assert render.ANSI.sub("", lines[2]) == "running  100"
    assert "\x1b[32m" in lines[2]


def test_no_colour_when_off() -> None:
    style = render.Style(colour=False)
    assert style.status("failed") == "failed"
    event = SseEvent("log", 3, {"data": {"line": "oops", "stream": "stderr"}})
    assert render.stream_event(event, style) == "stderr| oops"


def test_stream_lines_mark_stderr_records_and_states() -> None:
    style = render.Style(colour=False)

    def line(kind: str, data: dict[str, object]) -> str | None:
        return render.stream_event(SseEvent(kind, 1, {"data": data}), style)

    assert line("log", {"line": "plain", "stream": "stdout"}) == "plain"
    record = {"type": "tool_call", "tool": "shell", "input": "ls -la", "status": "completed"}
    assert line("extraction", {**record, "exit_code": 0}) == (
        "» tool_call: shell: ls -la [completed, exit 0]"
    )
    assert line("state", {"state": "running", "detail": ""}) == "-- running"
    assert line("state", {"state": "completed", "detail": "exit code 0"}) is None
    assert line("complete", {"status": "failed", "exit_code": 3, "duration_seconds": 2.5}) == (
        "-- failed (exit 3, after 2.5s)"
    )
    assert line("gap", {"missed": 5}) == "-- 5 event(s) lost (the client fell behind)"
    assert line("ping", {}) is None


def test_records_one_line_each() -> None:
    assert render.record({"type": "file_op", "op": "create", "path": "a.py"}) == (
        "file_op: create a.py"
    )
    assert render.record({"type": "metric", "key": "tokens", "value": 1234, "unit": "tokens"}) == (
        "metric: tokens = 1,234 tokens"
    )
    text = render.record({"type": "response", "text": "line one\nline two " + "x" * 200})
    assert "\n" not in text and text.endswith("…") and "line one ⏎ line two" in text


def test_figures() -> None:
    assert render.seconds(2.5) == "2.5s"
    assert render.seconds(125) == "2m05s"
    assert render.seconds(3725) == "1h02m05s"
    assert render.size(512) == "512 B" and render.size(1536) == "1.5 KiB"
    assert render.cost(0.2472) == "$0.2472" and render.cost(None) == "-"
    assert render.number(15018) == "15,018"
    assert render.when("2026-12-06T08:26:09.443+00:00") == "2026-12-06 08:26:09"
    assert render.when(None) == "-"


def test_exit_status_like_a_shell() -> None:
    assert exit_status({"exit_code": 3}) == 3
    assert exit_status({"exit_code": None, "signal": "SIGTERM"}) == 143
    assert exit_status({"exit_code": None, "signal": None}) == 1


def test_endpoint_keeps_the_prefix() -> None:
    endpoint = Endpoint.parse("http://127.0.0.1:8080/wrapper/")
    assert (endpoint.host, endpoint.port, endpoint.prefix) == ("127.0.0.1", 8080, "/wrapper")
    assert str(Endpoint.parse("localhost:9")) == "http://localhost:9"
    assert agent_path("a b/c", "logs") == "/api/agents/a%20b%2Fc/logs"


def test_api_errors_are_one_line() -> None:
    error = ApiError(404, "agent_not_found", "no agent named 'x'")
    assert str(error) == "no agent named 'x' (agent_not_found, HTTP 404)"
