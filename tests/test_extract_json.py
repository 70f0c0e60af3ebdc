"""codex-json (both shapes), claude-stream-json and gemini-stream-json details that the
real transcripts do not show, and lines of the wrong shape."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from trio_wrapper.extract import Record, make_extractor, record_type


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
