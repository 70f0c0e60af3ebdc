"""Format ``claude-stream-json``: ``claude -p --output-format stream-json --verbose``.

Lines: ``system`` (``init`` first), ``assistant`` (one content block per line: text,
thinking or tool_use), ``user`` (tool results), ``result`` (totals), and in the
bidirectional SDK mode ``control_request`` (e.g. a permission prompt). The ``usage``
of an assistant message repeats on every line of that message id, so it is taken
once per id.
"""

from __future__ import annotations

from typing import Any, Final

from trio_wrapper.extract.jsonl import (
    JsonLinesExtractor,
    add_metric,
    as_dict,
    compact,
    get_dict,
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

# Built-in tools that touch one file, the op, and where the path is.
_FILE_TOOLS: Final = {
    "Write": ("create", "file_path"),
    "Edit": ("update", "file_path"),
    "MultiEdit": ("update", "file_path"),
    "NotebookEdit": ("update", "notebook_path"),
    "Read": ("read", "file_path"),
}
# Input field that best says what a tool call does, shown as its ``input``.
_MAIN_INPUT: Final = {
    "Bash": "command",
    "Glob": "pattern",
    "Grep": "pattern",
    "WebFetch": "url",
    "WebSearch": "query",
    "Task": "description",
}
_RESULT_METRICS: Final = (
    ("total_cost_usd", "usd"),
    ("duration_ms", "ms"),
    ("duration_api_ms", "ms"),
    ("num_turns", "turns"),
)
_RESULT_USAGE: Final = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


def tool_name(name: str) -> str:
    """MCP tools come as ``mcp__<server>__<tool>``; the contract names them
    ``<server>.<tool>``."""
    if name.startswith("mcp__"):
        server, sep, tool = name[5:].partition("__")
        if sep:
            return f"{server}.{tool}"
    return name


class ClaudeJsonExtractor(JsonLinesExtractor):
    FORMAT = "claude-stream-json"

    def __init__(self, rules: Any = ()) -> None:
        super().__init__(rules)
        self._sessions: set[str] = set()  # session keys already reported
        self._usage_ids: set[str] = set()

    def _session(self, key: str, value: str, line_num: int, out: list[Record]) -> None:
        if value and key not in self._sessions:
            self._sessions.add(key)
            out.append(Session(line_num, key, short(value)))

    def _handle(self, obj: dict[str, Any], line_num: int, out: list[Record]) -> None:
        kind = obj.get("type")
        if kind == "assistant":
            self._assistant(obj, line_num, out)
        elif kind == "user":
            self._user(obj, line_num, out)
        elif kind == "system":
            if obj.get("subtype") == "init":
                self._session("model", get_str(obj, "model"), line_num, out)
                self._session("session_id", get_str(obj, "session_id"), line_num, out)
                self._session("cwd", get_str(obj, "cwd"), line_num, out)
                self._session("version", get_str(obj, "claude_code_version"), line_num, out)
        elif kind == "result":
            self._result(obj, line_num, out)
        elif kind == "control_request":
            request = get_dict(obj, "request")
            if get_str(request, "subtype") == "can_use_tool":
                tool = tool_name(get_str(request, "tool_name"))
                out.append(State(line_num, "waiting_for_input", f"permission to use {tool}"))

    def _assistant(self, obj: dict[str, Any], line_num: int, out: list[Record]) -> None:
        message = get_dict(obj, "message")
        # The init line may be missing or trimmed; then the first message says it.
        self._session("model", get_str(message, "model"), line_num, out)
        self._session("session_id", get_str(obj, "session_id"), line_num, out)
        for block in get_list(message, "content"):
            block = as_dict(block)
            block_type = block.get("type")
            if block_type == "text":
                response_records(get_str(block, "text"), line_num, out)
            elif block_type == "thinking":
                out.append(State(line_num, "thinking", short(get_str(block, "thinking"))))
            elif block_type in ("tool_use", "server_tool_use"):
                self._tool_use(block, line_num, out)
        message_id = get_str(message, "id")
        usage = get_dict(message, "usage")
        if usage and message_id not in self._usage_ids:
            if message_id:
                self._usage_ids.add(message_id)
            add_metric(out, line_num, "message_input_tokens", usage.get("input_tokens"), "tokens")
            add_metric(out, line_num, "message_output_tokens", usage.get("output_tokens"), "tokens")

    def _tool_use(self, block: dict[str, Any], line_num: int, out: list[Record]) -> None:
        name = get_str(block, "name")
        tool_input = get_dict(block, "input")
        file_tool = _FILE_TOOLS.get(name)
        main = _MAIN_INPUT.get(name) or (file_tool[1] if file_tool else "")
        summary = get_str(tool_input, main) if main else ""
        out.append(ToolCall(line_num, tool_name(name), summary or compact(tool_input), "started"))
        if file_tool is not None:
            path = get_str(tool_input, file_tool[1])
            if path:
                out.append(FileOp(line_num, file_tool[0], path))

    def _user(self, obj: dict[str, Any], line_num: int, out: list[Record]) -> None:
        message = get_dict(obj, "message")
        content = message.get("content")
        if type(content) is str:
            if content.strip():
                out.append(Prompt(line_num, content[:MAX_LONG_TEXT]))
            return
        for block in content if type(content) is list else ():
            block = as_dict(block)
            block_type = block.get("type")
            if block_type == "tool_result" and block.get("is_error") is True:
                text = _result_text(block.get("content"))
                out.append(Error(line_num, short(text or "tool error"), "tool"))
            elif block_type == "text":
                text = get_str(block, "text")
                if text.strip():
                    out.append(Prompt(line_num, text[:MAX_LONG_TEXT]))

    def _result(self, obj: dict[str, Any], line_num: int, out: list[Record]) -> None:
        self._session("session_id", get_str(obj, "session_id"), line_num, out)
        for key, unit in _RESULT_METRICS:
            add_metric(out, line_num, key, obj.get(key), unit)
        usage = get_dict(obj, "usage")
        for key in _RESULT_USAGE:
            add_metric(out, line_num, key, usage.get(key), "tokens")
        subtype = get_str(obj, "subtype")
        if obj.get("is_error") is True or (subtype and subtype != "success"):
            errors = [e for e in get_list(obj, "errors") if type(e) is str]
            message = get_str(obj, "result") or "; ".join(errors) or subtype or "error"
            out.append(Error(line_num, short(message), "agent"))
        out.append(State(line_num, "turn_completed", subtype))


def _result_text(content: object) -> str:
    if type(content) is str:
        return content
    if type(content) is list:
        parts = [get_str(as_dict(part), "text") for part in content]
        return "\n".join(part for part in parts if part)
    return ""
