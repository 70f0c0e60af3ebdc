"""Format ``claude-stream-json``: ``claude -p --output-format stream-json --verbose``.

Lines: ``system`` (``init`` first), ``assistant`` (one content block per line: text,
thinking or tool_use), ``user`` (tool results), ``result`` (totals), and in the
bidirectional SDK mode ``control_request`` (e.g. a permission prompt). The ``usage``
of an assistant message repeats on every line of that message id, so it is taken
once per id.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from msgspec.structs import astuple

from trio_wrapper.extract.jsonl import (
    JsonLinesExtractor,
    LineDecoder,
    add_metric,
    add_metrics,
    compact,
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

# The line as the extractor reads it: only the fields it uses, each with the type the
# CLI sends. The rest of a line (signatures, tool results, model usage…) is skipped
# by the decoder without being built. Text read only on an error stays raw JSON.
Number = int | float | None


class Usage(msgspec.Struct, gc=False):
    input_tokens: Number = None
    output_tokens: Number = None
    cache_creation_input_tokens: Number = None
    cache_read_input_tokens: Number = None


class Block(msgspec.Struct, gc=False):
    type: str = ""
    text: str = ""  # text
    thinking: str = ""  # thinking
    name: str = ""  # tool_use
    input: dict[str, Any] = {}
    is_error: bool = False  # tool_result
    content: msgspec.Raw = msgspec.Raw()  # tool_result: text or a list of text blocks


class Message(msgspec.Struct, gc=False):
    model: str = ""
    id: str = ""
    content: str | list[Block] = ""
    usage: Usage | None = None


class Request(msgspec.Struct, gc=False):
    subtype: str = ""
    tool_name: str = ""


class Line(msgspec.Struct, gc=False):
    type: str = ""
    subtype: str = ""
    session_id: str = ""
    model: str = ""  # system init
    cwd: str = ""
    claude_code_version: str = ""
    message: Message | None = None  # assistant, user
    request: Request | None = None  # control_request
    usage: Usage | None = None  # result
    total_cost_usd: Number = None
    duration_ms: Number = None
    duration_api_ms: Number = None
    num_turns: Number = None
    is_error: bool = False
    errors: list[Any] = []
    result: msgspec.Raw = msgspec.Raw()


_NO_MESSAGE: Final = Message()
# Line types read but with nothing to extract: not counted as unknown.
_QUIET_TYPES: Final = frozenset(
    {
        "stream_event",  # --include-partial-messages: the deltas of what comes whole later
        "rate_limit_event",
        "control_response",
        "control_cancel_request",
        "keep_alive",
        "auth_status",
        "tool_progress",
    }
)
_decode_text = msgspec.json.Decoder(str | list[Any] | None).decode
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
# A result line's metrics: its own figures, then ``Usage``'s fields in its order, all in
# tokens (the values are read in this order in ``_result``).
_RESULT_KEYS: Final = (
    "total_cost_usd",
    "duration_ms",
    "duration_api_ms",
    "num_turns",
    *Usage.__struct_fields__,
)
_RESULT_UNITS: Final = ("usd", "ms", "ms", "turns", *(["tokens"] * len(Usage.__struct_fields__)))
_NO_USAGE: Final = Usage()


def tool_name(name: str) -> str:
    """MCP tools come as ``mcp__<server>__<tool>``; the contract names them
    ``<server>.<tool>``."""
    if name.startswith("mcp__"):
        server, sep, tool = name[5:].partition("__")
        if sep:
            return f"{server}.{tool}"
    return name


class ClaudeJsonExtractor(JsonLinesExtractor[Line]):
    FORMAT = "claude-stream-json"

    def __init__(self, rules: Any = ()) -> None:
        super().__init__(rules, _decode_line)
        self._sessions: set[str] = set()  # session keys already reported
        self._usage_ids: set[str] = set()

    def _session(self, key: str, value: str, line_num: int, out: list[Record]) -> None:
        if value and key not in self._sessions:
            self._sessions.add(key)
            out.append(Session(line_num, key, short(value)))

    def _handle(self, line: Line, line_num: int, out: list[Record]) -> None:
        kind = line.type
        if kind == "assistant":
            self._assistant(line, line.message or _NO_MESSAGE, line_num, out)
        elif kind == "user":
            if line.message is not None:
                self._user(line.message, line_num, out)
        elif kind == "system":
            if line.subtype == "init":
                self._session("model", line.model, line_num, out)
                self._session("session_id", line.session_id, line_num, out)
                self._session("cwd", line.cwd, line_num, out)
                self._session("version", line.claude_code_version, line_num, out)
        elif kind == "result":
            self._result(line, line_num, out)
        elif kind == "control_request":
            request = line.request
            if request is not None and request.subtype == "can_use_tool":
                tool = tool_name(request.tool_name)
                out.append(State(line_num, "waiting_for_input", f"permission to use {tool}"))
        elif kind not in _QUIET_TYPES:
            self._note_unknown(kind)

    def _assistant(self, line: Line, message: Message, line_num: int, out: list[Record]) -> None:
        # The init line may be missing or trimmed; then the first message says it.
        if "session_id" not in self._sessions or "model" not in self._sessions:
            self._session("model", message.model, line_num, out)
            self._session("session_id", line.session_id, line_num, out)
        content = message.content
        for block in content if type(content) is list else ():
            block_type = block.type
            if block_type == "text":
                response_records(block.text, line_num, out)
            elif block_type == "thinking":
                out.append(State(line_num, "thinking", short(block.thinking)))
            elif block_type in ("tool_use", "server_tool_use"):
                self._tool_use(block, line_num, out)
        usage = message.usage
        # Taken from the first line of the message that has token counts.
        if usage is not None and (usage.input_tokens, usage.output_tokens) != (None, None):
            message_id = message.id
            if message_id not in self._usage_ids:
                if message_id:
                    self._usage_ids.add(message_id)
                add_metric(out, line_num, "message_input_tokens", usage.input_tokens, "tokens")
                add_metric(out, line_num, "message_output_tokens", usage.output_tokens, "tokens")

    def _tool_use(self, block: Block, line_num: int, out: list[Record]) -> None:
        name = block.name
        tool_input = block.input
        file_tool = _FILE_TOOLS.get(name)
        main = _MAIN_INPUT.get(name) or (file_tool[1] if file_tool else "")
        summary = get_str(tool_input, main) if main else ""
        out.append(ToolCall(line_num, tool_name(name), summary or compact(tool_input), "started"))
        if file_tool is not None:
            path = get_str(tool_input, file_tool[1])
            if path:
                out.append(FileOp(line_num, file_tool[0], path))

    def _user(self, message: Message, line_num: int, out: list[Record]) -> None:
        content = message.content
        if isinstance(content, str):
            if content.strip():
                out.append(Prompt(line_num, content[:MAX_LONG_TEXT]))
            return
        for block in content:
            block_type = block.type
            if block_type == "tool_result" and block.is_error:
                text = _result_text(block.content)
                out.append(Error(line_num, short(text or "tool error"), "tool"))
            elif block_type == "text" and block.text.strip():
                out.append(Prompt(line_num, block.text[:MAX_LONG_TEXT]))

    def _result(self, line: Line, line_num: int, out: list[Record]) -> None:
        self._session("session_id", line.session_id, line_num, out)
        add_metrics(
            out,
            line_num,
            _RESULT_KEYS,  # the values below in its order
            _RESULT_UNITS,
            (
                line.total_cost_usd,
                line.duration_ms,
                line.duration_api_ms,
                line.num_turns,
                *astuple(line.usage or _NO_USAGE),
            ),
        )
        subtype = line.subtype
        if line.is_error or (subtype and subtype != "success"):
            errors = [e for e in line.errors if type(e) is str]
            message = _raw_str(line.result) or "; ".join(errors) or subtype or "error"
            out.append(Error(line_num, short(message), "agent"))
        out.append(State(line_num, "turn_completed", subtype))


_decode_line = LineDecoder(Line)


def _raw_str(raw: msgspec.Raw) -> str:
    """A raw JSON value read as text only when needed: a string, else ""."""
    text = _raw_text(raw)
    return text if type(text) is str else ""


def _raw_text(raw: msgspec.Raw) -> object:
    if not raw:
        return None
    try:
        return _decode_text(raw)
    except msgspec.DecodeError:
        return None


def _result_text(raw: msgspec.Raw) -> str:
    """The text of a failed tool result: a string, or the text parts of a list of blocks."""
    content = _raw_text(raw)
    if type(content) is str:
        return content
    if type(content) is list:
        parts = [get_str(part, "text") for part in content if type(part) is dict]
        return "\n".join(part for part in parts if part)
    return ""
