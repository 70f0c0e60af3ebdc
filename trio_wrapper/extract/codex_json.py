"""Format ``codex-json``: ``codex exec --json``.

Two shapes exist. Since 2025-09-30: ``{"type": "thread.started" | "turn.*" |
"item.started" | "item.updated" | "item.completed" | "error", ...}`` with the work in
``item``; items are reported started, maybe updated, then completed, and only the
completed report makes a record (one record per item). Before: a config summary
object, a ``{"prompt": ...}`` object, then ``{"id": ..., "msg": {"type": ...}}``
events (codex-rs ``EventMsg`` serialized).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from trio_wrapper.extract.jsonl import (
    JsonLinesExtractor,
    add_metric,
    as_dict,
    compact,
    get_dict,
    get_int,
    get_list,
    get_str,
    response_records,
)
from trio_wrapper.extract.records import (
    MAX_LONG_TEXT,
    Error,
    FileOp,
    Prompt,
    Record,
    Session,
    State,
    ToolCall,
    short,
)

_USAGE_KEYS: Final = (
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_output_tokens",
)
_KIND_OPS: Final = {"add": "create", "update": "update", "delete": "delete"}
# Keys of the old shape's first line (the config summary codex printed before events).
_CONFIG_KEYS: Final = frozenset({"model", "workdir", "sandbox", "approval", "provider"})


def unwrap_message(message: str) -> str:
    """Codex passes API errors on as the raw JSON body; the human part is inside."""
    if message.startswith("{") and '"message"' in message:
        try:
            body = msgspec.json.decode(message)
        except msgspec.DecodeError:
            return message
        inner = get_str(get_dict(as_dict(body), "error"), "message") or get_str(
            as_dict(body), "message"
        )
        if inner:
            return inner
    return message


# Item types with nothing to extract: not counted as unknown.
_QUIET_ITEMS: Final = frozenset({"user_message"})


class CodexJsonExtractor(JsonLinesExtractor[dict[str, Any]]):
    FORMAT = "codex-json"

    def __init__(self, rules: Any = ()) -> None:
        super().__init__(rules)
        self._last_error = ""
        self._plans: dict[str, str] = {}
        self._commands: dict[str, str] = {}  # old shape: call_id -> command
        self._last_usage: tuple[object, ...] = ()

    def _handle(self, obj: dict[str, Any], line_num: int, out: list[Record]) -> None:
        kind = obj.get("type")
        if type(kind) is str:
            self._event(kind, obj, line_num, out)
        elif "msg" in obj:
            msg = get_dict(obj, "msg")
            msg_type = get_str(msg, "type")
            if msg_type:
                self._old_event(msg_type, msg, line_num, out)
        elif "prompt" in obj:
            prompt = get_str(obj, "prompt")
            if prompt:
                out.append(Prompt(line_num, prompt[:MAX_LONG_TEXT]))
        elif _CONFIG_KEYS.intersection(obj):
            for key, value in obj.items():
                if type(value) is str:
                    out.append(Session(line_num, "_".join(key.lower().split()), short(value)))
        else:
            self._note_unknown("")

    # Current shape.

    def _event(self, kind: str, obj: dict[str, Any], line_num: int, out: list[Record]) -> None:
        if kind.startswith("item."):
            item = get_dict(obj, "item")
            self._item(kind, item, line_num, out)
        elif kind == "thread.started":
            thread_id = get_str(obj, "thread_id")
            if thread_id:
                out.append(Session(line_num, "session_id", thread_id))
        elif kind == "turn.completed":
            usage = get_dict(obj, "usage")
            for key in _USAGE_KEYS:
                add_metric(out, line_num, key, usage.get(key), "tokens")
            out.append(State(line_num, "turn_completed", ""))
        elif kind == "turn.failed":
            out.append(State(line_num, "turn_failed", ""))
            self._error(get_str(get_dict(obj, "error"), "message"), line_num, out)
        elif kind == "error":
            self._error(get_str(obj, "message"), line_num, out)
        elif kind != "turn.started":
            self._note_unknown(kind)

    def _item(self, kind: str, item: dict[str, Any], line_num: int, out: list[Record]) -> None:
        item_type = get_str(item, "type")
        if item_type == "todo_list":
            self._plan(get_str(item, "id"), _todo_text(get_list(item, "items")), line_num, out)
            return
        if kind == "item.started":
            if item_type == "command_execution":
                out.append(State(line_num, "running_command", short(get_str(item, "command"))))
            return
        if kind != "item.completed":
            return
        if item_type == "agent_message":
            response_records(get_str(item, "text"), line_num, out)
        elif item_type == "reasoning":
            out.append(State(line_num, "thinking", short(get_str(item, "text"))))
        elif item_type == "command_execution":
            status = get_str(item, "status") or "completed"
            command = get_str(item, "command")
            out.append(
                ToolCall(line_num, "shell", short(command), status, get_int(item, "exit_code"))
            )
        elif item_type == "file_change":
            for change in get_list(item, "changes"):
                change = as_dict(change)
                path = get_str(change, "path")
                op = _KIND_OPS.get(get_str(change, "kind"), "update")
                if path:
                    out.append(FileOp(line_num, op, path))
            if get_str(item, "status") == "failed":
                self._error("file change failed", line_num, out)
        elif item_type == "mcp_tool_call":
            tool = f"{get_str(item, 'server')}.{get_str(item, 'tool')}"
            status = get_str(item, "status") or "completed"
            out.append(ToolCall(line_num, tool, compact(item.get("arguments", "")), status))
        elif item_type == "web_search":
            out.append(ToolCall(line_num, "web_search", short(get_str(item, "query")), "completed"))
        elif item_type == "error":
            self._error(get_str(item, "message"), line_num, out)
        elif item_type not in _QUIET_ITEMS:
            self._note_unknown(f"item:{item_type}")

    def _plan(self, item_id: str, text: str, line_num: int, out: list[Record]) -> None:
        # A todo list is re-sent on every update and at completion; a record only
        # when it changed.
        if text and self._plans.get(item_id) != text:
            self._plans[item_id] = text
            out.append(State(line_num, "plan", short(text)))

    def _error(self, message: str, line_num: int, out: list[Record]) -> None:
        message = unwrap_message(message)
        # turn.failed repeats the error event just before it: one failure, one record.
        if not message or message == self._last_error:
            return
        self._last_error = message
        out.append(Error(line_num, short(message), "agent"))

    # Old shape ({"id", "msg"}).

    def _old_event(self, kind: str, msg: dict[str, Any], line_num: int, out: list[Record]) -> None:
        if kind == "agent_message":
            response_records(get_str(msg, "message"), line_num, out)
        elif kind == "agent_reasoning":
            out.append(State(line_num, "thinking", short(get_str(msg, "text"))))
        elif kind == "session_configured":
            for key, field in (("session_id", "session_id"), ("model", "model")):
                value = get_str(msg, field)
                if value:
                    out.append(Session(line_num, key, value))
        elif kind == "user_message":
            text = get_str(msg, "message")
            if text:
                out.append(Prompt(line_num, text[:MAX_LONG_TEXT]))
        elif kind == "exec_command_begin":
            command = _command_text(msg.get("command"))
            self._commands[get_str(msg, "call_id")] = command
            out.append(State(line_num, "running_command", short(command)))
        elif kind == "exec_command_end":
            command = self._commands.pop(get_str(msg, "call_id"), "")
            code = get_int(msg, "exit_code")
            status = "completed" if code == 0 else "failed"
            out.append(ToolCall(line_num, "shell", short(command), status, code))
        elif kind == "patch_apply_begin":
            for path, change in get_dict(msg, "changes").items():
                change = as_dict(change)
                op = "create" if "add" in change else "delete" if "delete" in change else "update"
                out.append(FileOp(line_num, op, path))
        elif kind == "patch_apply_end":
            if msg.get("success") is False:
                self._error(get_str(msg, "stderr") or "patch failed", line_num, out)
        elif kind == "mcp_tool_call_end":
            invocation = get_dict(msg, "invocation")
            tool = f"{get_str(invocation, 'server')}.{get_str(invocation, 'tool')}"
            status = "failed" if "Err" in get_dict(msg, "result") else "completed"
            out.append(ToolCall(line_num, tool, compact(invocation.get("arguments", "")), status))
        elif kind == "web_search_end":
            out.append(ToolCall(line_num, "web_search", short(get_str(msg, "query")), "completed"))
        elif kind == "token_count":
            self._old_usage(msg, line_num, out)
        elif kind in ("error", "stream_error"):
            self._error(get_str(msg, "message"), line_num, out)
        elif kind == "task_complete":
            out.append(State(line_num, "turn_completed", ""))
        elif kind in ("exec_approval_request", "apply_patch_approval_request"):
            # codex asks before running a command or applying a patch: it waits.
            if kind == "exec_approval_request":
                asked = f"approval to run {_command_text(msg.get('command'))}"
            else:
                asked = "approval to apply a patch"
            out.append(State(line_num, "waiting_for_approval", short(asked)))
        elif kind == "plan_update":
            steps = [as_dict(s) for s in get_list(msg, "plan")]
            lines = [f"[{get_str(s, 'status')}] {get_str(s, 'step')}" for s in steps]
            self._plan("plan", "\n".join(lines), line_num, out)

    def _old_usage(self, msg: dict[str, Any], line_num: int, out: list[Record]) -> None:
        # Newer old-shape builds nest the running totals in info.total_token_usage.
        usage = get_dict(get_dict(msg, "info"), "total_token_usage") or msg
        values = tuple(usage.get(key) for key in _USAGE_KEYS)
        if values == self._last_usage:  # sent again with nothing new
            return
        self._last_usage = values
        for key, value in zip(_USAGE_KEYS, values, strict=True):
            add_metric(out, line_num, key, value, "tokens")


def _todo_text(items: list[Any]) -> str:
    lines = []
    for entry in items:
        entry = as_dict(entry)
        mark = "x" if entry.get("completed") is True else " "
        lines.append(f"[{mark}] {get_str(entry, 'text')}")
    return "\n".join(lines)


def _command_text(command: object) -> str:
    if type(command) is str:
        return command
    if type(command) is list:
        return " ".join(str(part) for part in command)
    return ""
