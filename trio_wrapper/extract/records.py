"""The records extractors produce (contract section 3, "Agent detail" table).

msgspec Structs tagged by ``type``: ``msgspec.json.encode(record)`` gives
``{"type": "metric", "line_num": 7, "key": ..., ...}`` without a per-field Python
loop, and ``msgspec.to_builtins(record)`` gives the same as a dict. ``gc=False``
because records never hold references back to anything (no cycles), which keeps
millions of them cheap for the garbage collector. The caller adds timestamps.
"""

from __future__ import annotations

from typing import Final, TypeAlias

import msgspec


class Session(msgspec.Struct, tag="session", tag_field="type", gc=False):
    line_num: int
    key: str
    value: str


class Prompt(msgspec.Struct, tag="prompt", tag_field="type", gc=False):
    line_num: int
    text: str


class Response(msgspec.Struct, tag="response", tag_field="type", gc=False):
    line_num: int
    text: str


class CodeBlock(msgspec.Struct, tag="code_block", tag_field="type", gc=False):
    line_num: int
    language: str
    line_count: int
    content: str


class ToolCall(msgspec.Struct, tag="tool_call", tag_field="type", gc=False):
    line_num: int
    tool: str
    input: str
    status: str
    exit_code: int | None = None


class FileOp(msgspec.Struct, tag="file_op", tag_field="type", gc=False):
    line_num: int
    op: str
    path: str


class Metric(msgspec.Struct, tag="metric", tag_field="type", gc=False):
    line_num: int
    key: str
    value: int | float
    unit: str


class Error(msgspec.Struct, tag="error", tag_field="type", gc=False):
    line_num: int
    message: str
    source: str


class State(msgspec.Struct, tag="state", tag_field="type", gc=False):
    line_num: int
    state: str
    detail: str


Record: TypeAlias = (
    Session | Prompt | Response | CodeBlock | ToolCall | FileOp | Metric | Error | State
)

RECORD_CLASSES: Final = (
    Session,
    Prompt,
    Response,
    CodeBlock,
    ToolCall,
    FileOp,
    Metric,
    Error,
    State,
)
# The ``type`` names, in the contract's order; also the keys of ``matches_by_type``.
RECORD_TYPES: Final[tuple[str, ...]] = tuple(
    str(cls.__struct_config__.tag) for cls in RECORD_CLASSES
)
# Record class -> its ``type`` name, for counting many records without an attribute walk.
KIND_OF: Final[dict[type, str]] = {cls: str(cls.__struct_config__.tag) for cls in RECORD_CLASSES}
# ``type`` name -> the ``matches`` key of the agent detail (contract table, first column).
MATCHES_KEYS: Final[dict[str, str]] = {
    "session": "session",
    "prompt": "prompts",
    "response": "responses",
    "code_block": "code_blocks",
    "tool_call": "tool_calls",
    "file_op": "file_ops",
    "metric": "metrics",
    "error": "errors",
    "state": "state",
}

FILE_OPS: Final = frozenset({"create", "update", "delete", "read"})

# Free text copied into short fields (tool input, state detail) is cut here: a 2 MB
# heredoc in a shell command should not become a 2 MB event on every SSE client.
MAX_SHORT_TEXT = 2000
# Long fields (responses, prompts, code block content) are cut here.
MAX_LONG_TEXT = 256 * 1024


def record_type(record: Record) -> str:
    """The ``type`` name of a record (``"metric"`` …)."""
    return str(record.__struct_config__.tag)


def short(text: str, limit: int = MAX_SHORT_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
