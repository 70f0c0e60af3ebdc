"""codex-json (both shapes), claude-stream-json and gemini-stream-json details that the
real transcripts do not show, and lines of the wrong shape."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import TRANSCRIPTS
from trio_wrapper.core.lines import Lines
from trio_wrapper.extract import Record, make_extractor, record_type
from trio_wrapper.extract.jsonl import drop_invalid
from trio_wrapper.extract.records import Error, Metric, Response, State


def run(fmt: str, *objects: Any, stream: str = "stdout") -> list[tuple[Any, ...]]:
    lines = [o if isinstance(o, bytes) else msgspec.json.encode(o) for o in objects]
    ex = make_extractor(fmt)
    records: list[Record] = ex.feed(lines, 1, stream) + ex.finish()
    return [(record_type(r), *msgspec.structs.astuple(r)) for r in records]


def item(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "item": fields}


def test_codex_items() -> None:
    got = run(
        "codex-json",
        item(
            "item.completed",
            id="1",
            type="file_change",
            status="completed",
            changes=[
                {"path": "a.py", "kind": "add"},
                {"path": "b.py", "kind": "update"},
                {"path": "c.py", "kind": "delete"},
            ],
        ),
        item(
            "item.started",
            id="2",
            type="mcp_tool_call",
            server="docs",
            tool="search",
            arguments={"q": "x"},
            status="in_progress",
        ),
        item(
            "item.completed",
            id="2",
            type="mcp_tool_call",
            server="docs",
            tool="search",
            arguments={"q": "x"},
            status="completed",
        ),
        item("item.completed", id="3", type="web_search", query="trio"),
        item("item.started", id="4", type="todo_list", items=[{"text": "a", "completed": False}]),
        item("item.updated", id="4", type="todo_list", items=[{"text": "a", "completed": True}]),
        item("item.completed", id="4", type="todo_list", items=[{"text": "a", "completed": True}]),
        item(
            "item.completed",
            id="5",
            type="command_execution",
            command="false",
            exit_code=1,
            status="failed",
        ),
        {"type": "turn.completed", "usage": {"input_tokens": 0, "output_tokens": 3}},
    )
    assert got == [
        ("file_op", 1, "create", "a.py"),
        ("file_op", 1, "update", "b.py"),
        ("file_op", 1, "delete", "c.py"),
        ("tool_call", 3, "docs.search", '{"q":"x"}', "completed", None),
        ("tool_call", 4, "web_search", "trio", "completed", None),
        ("state", 5, "plan", "[ ] a"),
        ("state", 6, "plan", "[x] a"),
        ("tool_call", 8, "shell", "false", "failed", 1),
        ("metric", 9, "input_tokens", 0, "tokens"),
        ("metric", 9, "output_tokens", 3, "tokens"),
        ("state", 9, "turn_completed", ""),
    ]


def test_codex_old_shape() -> None:
    got = run(
        "codex-json",
        {"model": "codex-mini", "sandbox": "read-only", "reasoning effort": "high"},
        {"prompt": "say hi"},
        {"id": "0", "msg": {"type": "session_configured", "session_id": "s-1", "model": "o3"}},
        {"id": "1", "msg": {"type": "agent_reasoning", "text": "thinking hard"}},
        {
            "id": "1",
            "msg": {
                "type": "exec_command_begin",
                "call_id": "c1",
                "command": ["bash", "-lc", "ls"],
                "cwd": "/w",
            },
        },
        {"id": "1", "msg": {"type": "exec_command_end", "call_id": "c1", "exit_code": 0}},
        {
            "id": "1",
            "msg": {
                "type": "patch_apply_begin",
                "call_id": "p1",
                "changes": {"n.py": {"add": {"content": ""}}, "o.py": {"update": {}}},
            },
        },
        {
            "id": "1",
            "msg": {
                "type": "mcp_tool_call_end",
                "invocation": {"server": "gh", "tool": "issues", "arguments": None},
                "result": {"Err": "boom"},
            },
        },
        {"id": "1", "msg": {"type": "agent_message", "message": "hi\n```sh\nls\n```"}},
        {"id": "1", "msg": {"type": "token_count", "input_tokens": 10, "output_tokens": 2}},
        {"id": "1", "msg": {"type": "token_count", "input_tokens": 10, "output_tokens": 2}},
        {"id": "1", "msg": {"type": "error", "message": "stream broke"}},
        {"id": "1", "msg": {"type": "task_complete", "last_agent_message": "hi"}},
    )
    assert got == [
        ("session", 1, "model", "codex-mini"),
        ("session", 1, "sandbox", "read-only"),
        ("session", 1, "reasoning_effort", "high"),
        ("prompt", 2, "say hi"),
        ("session", 3, "session_id", "s-1"),
        ("session", 3, "model", "o3"),
        ("state", 4, "thinking", "thinking hard"),
        ("state", 5, "running_command", "bash -lc ls"),
        ("tool_call", 6, "shell", "bash -lc ls", "completed", 0),
        ("file_op", 7, "create", "n.py"),
        ("file_op", 7, "update", "o.py"),
        ("tool_call", 8, "gh.issues", "null", "failed", None),
        ("response", 9, "hi\n```sh\nls\n```"),
        ("code_block", 9, "sh", 1, "ls"),
        ("metric", 10, "input_tokens", 10, "tokens"),
        ("metric", 10, "output_tokens", 2, "tokens"),
        ("error", 12, "stream broke", "agent"),
        ("state", 13, "turn_completed", ""),
    ]


def test_claude_tools_mcp_errors_and_failed_result() -> None:
    def assistant(mid: str, *content: Any, usage: Any = None) -> dict[str, Any]:
        message = {"id": mid, "model": "claude-x", "content": list(content)}
        if usage is not None:
            message["usage"] = usage
        return {"type": "assistant", "message": message}

    got = run(
        "claude-stream-json",
        {"type": "system", "subtype": "init", "session_id": "s", "model": "claude-y"},
        assistant(
            "m1",
            {
                "type": "tool_use",
                "id": "t1",
                "name": "Edit",
                "input": {"file_path": "/r/a.py", "old_string": "a"},
            },
            usage={"input_tokens": 5, "output_tokens": 1},
        ),
        assistant(
            "m1",
            {
                "type": "tool_use",
                "id": "t2",
                "name": "mcp__github__create_issue",
                "input": {"title": "bug"},
            },
            usage={"input_tokens": 5, "output_tokens": 9},
        ),
        assistant(
            "m2",
            {"type": "tool_use", "id": "t3", "name": "Bash", "input": {"command": "ls"}},
            {"type": "tool_use", "id": "t4", "name": "Read", "input": {"file_path": "/r/b"}},
            {
                "type": "tool_use",
                "id": "t5",
                "name": "NotebookEdit",
                "input": {"notebook_path": "/r/n.ipynb"},
            },
        ),
        {
            "type": "user",
            "message": {
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t3",
                        "is_error": True,
                        "content": "exit 1",
                    }
                ]
            },
        },
        {
            "type": "user",
            "message": {
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t4",
                        "content": [{"type": "text", "text": "ok"}],
                    }
                ]
            },
        },
        {
            "type": "result",
            "subtype": "error_max_turns",
            "is_error": True,
            "num_turns": 0,
            "total_cost_usd": 0.0,
        },
    )
    assert got == [
        ("session", 1, "model", "claude-y"),  # from init, not from the messages
        ("session", 1, "session_id", "s"),
        ("tool_call", 2, "Edit", "/r/a.py", "started", None),
        ("file_op", 2, "update", "/r/a.py"),
        ("metric", 2, "message_input_tokens", 5, "tokens"),
        ("metric", 2, "message_output_tokens", 1, "tokens"),
        ("tool_call", 3, "github.create_issue", '{"title":"bug"}', "started", None),
        ("tool_call", 4, "Bash", "ls", "started", None),
        ("tool_call", 4, "Read", "/r/b", "started", None),
        ("file_op", 4, "read", "/r/b"),
        ("tool_call", 4, "NotebookEdit", "/r/n.ipynb", "started", None),
        ("file_op", 4, "update", "/r/n.ipynb"),
        ("error", 5, "exit 1", "tool"),
        ("metric", 7, "total_cost_usd", 0.0, "usd"),
        ("metric", 7, "num_turns", 0, "turns"),
        ("error", 7, "error_max_turns", "agent"),
        ("state", 7, "turn_completed", "error_max_turns"),
    ]


def test_gemini_deltas_tools_and_errors() -> None:
    got = run(
        "gemini-stream-json",
        {"type": "init", "session_id": "g", "model": "gemini-2.5-pro"},
        {"type": "message", "role": "assistant", "content": "Here is ", "delta": True},
        {"type": "message", "role": "assistant", "content": "the code:\n```py\n", "delta": True},
        {"type": "message", "role": "assistant", "content": "x = 1\n```", "delta": True},
        {
            "type": "tool_use",
            "tool_name": "write_file",
            "tool_id": "w",
            "parameters": {"file_path": "/p/x.py", "content": "x = 1"},
        },
        {
            "type": "tool_use",
            "tool_name": "replace",
            "tool_id": "r",
            "parameters": {"file_path": "/p/y.py"},
        },
        {
            "type": "tool_result",
            "tool_id": "r",
            "status": "error",
            "error": {"type": "edit_no_change", "message": "no change"},
        },
        {"type": "error", "severity": "warning", "message": "loop detected"},
        {"type": "message", "role": "assistant", "content": "Partial", "delta": True},
        {
            "type": "result",
            "status": "error",
            "error": {"type": "FatalError", "message": "quota"},
            "stats": {"total_tokens": 0, "models": {"x": 1}},
        },
        {"type": "message", "role": "assistant", "content": "unfinished", "delta": True},
    )
    assert got == [
        ("session", 1, "session_id", "g"),
        ("session", 1, "model", "gemini-2.5-pro"),
        ("response", 2, "Here is the code:\n```py\nx = 1\n```"),
        ("code_block", 2, "py", 1, "x = 1"),
        ("tool_call", 5, "write_file", "/p/x.py", "started", None),
        ("file_op", 5, "create", "/p/x.py"),
        ("tool_call", 6, "replace", "/p/y.py", "started", None),
        ("file_op", 6, "update", "/p/y.py"),
        ("error", 7, "no change", "tool"),
        ("error", 8, "loop detected", "agent"),
        ("response", 9, "Partial"),
        ("error", 10, "quota", "agent"),
        ("metric", 10, "total_tokens", 0, "tokens"),
        ("response", 11, "unfinished"),  # joined at finish()
    ]


WRONG_TYPES = [
    {"type": "thread.started", "thread_id": 7},
    {"type": "item.completed", "item": {"type": "agent_message", "text": ["x"]}},
    {
        "type": "item.completed",
        "item": {"type": "command_execution", "command": 1, "exit_code": "0"},
    },
    {"type": "item.completed", "item": {"type": "file_change", "changes": "a.py"}},
    {"type": "item.completed", "item": {"type": "file_change", "changes": [1, None, {"path": 3}]}},
    {"type": "turn.completed", "usage": {"input_tokens": "many", "output_tokens": True}},
    {"type": "turn.failed", "error": "boom"},
    {"id": 1, "msg": {"type": "exec_command_end", "call_id": None, "exit_code": None}},
    {"id": 1, "msg": {"type": "patch_apply_begin", "changes": [1]}},
    {"id": 1, "msg": "nope"},
    {"type": "system", "subtype": "init", "model": None, "session_id": {}},
    {"type": "assistant", "message": {"content": [{"type": "tool_use", "name": 5, "input": []}]}},
    {"type": "assistant", "message": {"content": "text", "usage": {"input_tokens": "x"}}},
    {
        "type": "user",
        "message": {"content": [{"type": "tool_result", "is_error": True, "content": {"x": 1}}]},
    },
    {"type": "result", "usage": [], "total_cost_usd": "free", "subtype": None},
    {"type": "control_request", "request": None},
    {"type": "init", "session_id": ["x"]},
    {"type": "message", "role": ["user"], "content": None},
    {"type": "tool_use", "tool_name": None, "parameters": "x"},
    {"type": "tool_result", "status": "error", "error": "x"},
    {"type": "result", "status": "error", "stats": [1]},
]


@pytest.mark.parametrize("fmt", ["codex-json", "claude-stream-json", "gemini-stream-json", "auto"])
def test_wrong_value_types_never_raise(fmt: str) -> None:
    got = run(fmt, *WRONG_TYPES)
    # Whatever is produced is well-typed.
    for row in got:
        assert all(isinstance(v, str | int | float | type(None)) for v in row)


def test_stderr_text_in_json_mode_is_checked_for_errors() -> None:
    got = run("codex-json", b"Error: unauthorized (401)", b"just a log line", stream="stderr")
    assert got == [("error", 1, "Error: unauthorized (401)", "stderr")]
    assert run("codex-json", b"Error: on stdout is junk") == []


def test_gemini_stray_open_brace_does_not_swallow_the_stream() -> None:
    got = run("gemini-stream-json", b"{", {"type": "init", "session_id": "s", "model": "m"})
    assert got == [("session", 2, "session_id", "s"), ("session", 2, "model", "m")]


def test_claude_value_of_the_wrong_type_loses_only_that_value() -> None:
    got = run(
        "claude-stream-json",
        {
            "type": "result",
            "subtype": "success",
            "session_id": ["not", "text"],
            "num_turns": "3",
            "duration_ms": 12,
            "usage": {"input_tokens": True, "output_tokens": 7},
        },
        {
            "type": "assistant",
            "session_id": "s1",
            "message": {
                "id": "m",
                "model": 4,
                "content": [
                    "a bare string",
                    {"type": "text", "text": None},
                    {"type": "tool_use", "name": "Bash", "input": {"command": "ls"}},
                ],
                "usage": {"input_tokens": 5, "output_tokens": "many"},
            },
        },
    )
    assert got == [
        ("metric", 1, "duration_ms", 12, "ms"),
        ("metric", 1, "output_tokens", 7, "tokens"),
        ("state", 1, "turn_completed", "success"),
        ("session", 2, "session_id", "s1"),
        ("tool_call", 2, "Bash", "ls", "started", None),
        ("metric", 2, "message_input_tokens", 5, "tokens"),
    ]


def test_claude_usage_comes_from_the_first_line_of_a_message_with_token_counts() -> None:
    def assistant(usage: Any) -> dict[str, Any]:
        return {"type": "assistant", "message": {"id": "m1", "content": [], "usage": usage}}

    got = run(
        "claude-stream-json",
        assistant({"service_tier": "standard"}),
        assistant({"input_tokens": 3, "output_tokens": 1}),
        assistant({"input_tokens": 3, "output_tokens": 9}),
    )
    assert got == [
        ("metric", 2, "message_input_tokens", 3, "tokens"),
        ("metric", 2, "message_output_tokens", 1, "tokens"),
    ]


def test_claude_error_text_is_read_from_raw_json_when_needed() -> None:
    got = run(
        "claude-stream-json",
        {"type": "result", "subtype": "error_during_execution", "result": {"not": "text"}},
        {"type": "result", "is_error": True, "result": "quota \u00e9puis\u00e9e"},
        {"type": "result", "is_error": True, "errors": ["a", 1, "b"]},
        {
            "type": "user",
            "message": {
                "content": [
                    {
                        "type": "tool_result",
                        "is_error": True,
                        "content": [{"type": "text", "text": "no such file"}, 5],
                    }
                ]
            },
        },
    )
    errors = [row for row in got if row[0] == "error"]
    assert errors == [
        ("error", 1, "error_during_execution", "agent"),
        ("error", 2, "quota \u00e9puis\u00e9e", "agent"),
        ("error", 3, "a; b", "agent"),
        ("error", 4, "no such file", "tool"),
    ]


@pytest.mark.parametrize(
    ("message", "left"),
    [
        ("Expected `str`, got `int` - at `$.message.content[1].text`", {"type": "x"}),
        ("Expected `object`, got `str` - at `$.message.content[0]`", None),
        ("Expected `int | float | null`, got `bool` - at `$.usage.input_tokens`", None),
    ],
)
def test_drop_invalid_removes_the_value_the_error_points_at(
    message: str, left: dict[str, Any] | None
) -> None:
    obj: dict[str, Any] = {
        "message": {"content": ["bare", {"type": "x", "text": 1}]},
        "usage": {"input_tokens": True, "output_tokens": 2},
    }
    assert drop_invalid(obj, message)
    if "content[1]" in message:
        assert obj["message"]["content"][1] == left
    elif "content[0]" in message:
        assert obj["message"]["content"] == [{"type": "x", "text": 1}]
    else:
        assert obj["usage"] == {"output_tokens": 2}


@pytest.mark.parametrize(
    "message",
    [
        "Expected `object`, got `array`",  # the whole line: nothing to drop
        "Expected `str`, got `int` - at `$.nowhere.text`",
        "Expected `str`, got `int` - at `$.message.content[7]`",
        "Expected `str`, got `int` - at `$`",
    ],
)
def test_drop_invalid_refuses_what_it_cannot_find(message: str) -> None:
    obj: dict[str, Any] = {"message": {"content": []}}
    assert not drop_invalid(obj, message)
    assert obj == {"message": {"content": []}}


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["type", "text", "content", "x"]), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_claude_lines_of_any_shape_never_raise(data: st.DataObject) -> None:
    """Any value anywhere in a real Claude line: records stay well-typed, nothing raises."""
    objs = [msgspec.json.decode(line) for line in _claude_transcript_lines()]
    obj = data.draw(st.sampled_from(objs))
    for _ in range(data.draw(st.integers(1, 4))):
        paths = _paths(obj)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent = obj
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = data.draw(_JSON_VALUES)
    rows = run("claude-stream-json", obj, obj)
    for row in rows:
        assert all(isinstance(v, str | int | float | type(None)) for v in row)
        assert row[1] in (1, 2)


def _claude_transcript_lines() -> list[bytes]:
    lines: list[bytes] = []
    for path in sorted((TRANSCRIPTS / "claude").glob("*.jsonl")):
        lines += [line for line in path.read_bytes().splitlines() if line.strip()]
    return lines


def test_claude_line_numbers_hold_with_blank_and_doubled_lines() -> None:
    """A blank line and a line holding two objects in one batch: each line keeps its own
    number (a value stream decoder would pair the blank line with the double one). The
    doubled line is mended (as a spliced line is: test_drift.py), both its objects read."""
    init = {"type": "system", "subtype": "init", "session_id": "s", "model": "m"}
    result = {"type": "result", "subtype": "success", "num_turns": 1}
    doubled = msgspec.json.encode(result) + b" " + msgspec.json.encode(result)
    lines = [msgspec.json.encode(init), b"", doubled, msgspec.json.encode(result)]
    for batch in (lines, Lines(b"\n".join(lines), len(lines))):
        ex = make_extractor("claude-stream-json")
        got = [(record_type(r), r.line_num) for r in ex.feed(batch, 1, "stdout")]
        assert got == [
            ("session", 1),
            ("session", 1),
            ("metric", 3),
            ("state", 3),
            ("metric", 3),
            ("state", 3),
            ("metric", 4),
            ("state", 4),
        ]


def test_a_claude_batch_kept_whole_reads_as_its_lines_do() -> None:
    """A batch kept as one buffer is decoded from views of it, line by line; a line the
    typed decode refuses goes the long way as ``bytes``. Either way the records are those
    of the same lines handed as a list, junk among them."""
    good = _claude_transcript_lines()
    junk = [
        b"",
        b"Error: something failed",
        b'{"type":"assistant","message":{"content":[{"type":"text","text":"ok \xff\xfe"}]}}',
        b'{"type":"result","num_turns":"three","total_cost_usd":0.25}',
        b"[1, 2, 3]",
        b"{not json",
    ]
    lines = [*good[:10], *junk, *good[10:]]
    by_list = make_extractor("claude-stream-json").feed(lines, 1, "stderr")
    text = b"\n".join(lines)
    kept_whole = Lines(text + b"\npartial", len(lines), len(text))
    assert make_extractor("claude-stream-json").feed(kept_whole, 1, "stderr") == by_list
    # The junk (lines 11 to 16) read as it should: the long way, whole.
    assert [r for r in by_list if 11 <= r.line_num <= 16] == [
        Error(12, "Error: something failed", "stderr"),
        Response(13, "ok \ufffd\ufffd"),
        Metric(14, "total_cost_usd", 0.25, "usd"),
        State(14, "turn_completed", ""),
    ]


@pytest.mark.parametrize("blank", [b" ", b"\t", b"\r", b" \r\t"])
def test_claude_json_whitespace_before_the_object_is_read_on_both_paths(blank: bytes) -> None:
    """A line whose object follows JSON whitespace (a carriage return left by a
    terminal, an indent) is read, whether it decodes at once (typed fast path) or needs
    mending (a value of the wrong type: the slow path), as the bare line would be."""
    plain = {"type": "system", "subtype": "init", "session_id": "s1", "model": "m"}
    mended = {"type": "result", "subtype": "success", "num_turns": "one", "total_cost_usd": 0.5}
    bare = [msgspec.json.encode(plain), msgspec.json.encode(mended)]
    padded = [blank + line for line in bare]
    want = run("claude-stream-json", *bare)
    assert [row[0] for row in want] == ["session", "session", "metric", "state"]
    assert run("claude-stream-json", *padded) == want
    for line in padded:  # one line at a time: the single-line decoder, not the batch loop
        assert run("claude-stream-json", line) == run("claude-stream-json", line.lstrip())
