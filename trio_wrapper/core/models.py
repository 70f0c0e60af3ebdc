"""Request and response shapes: decoded with msgspec, described in /openapi.json."""

from __future__ import annotations

from typing import Literal

import msgspec

Format = Literal[
    "auto", "text", "codex-json", "claude-stream-json", "gemini-stream-json", "aider", "none"
]


class AgentCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Start an agent: ``command`` (argv list, or the original's string + ``args``) or a
    ``profile`` from the config with a ``prompt``."""

    name: str
    command: list[str] | str | None = None
    args: list[str] | None = None
    profile: str | None = None
    prompt: str | None = None
    cwd: str | None = None
    env: dict[str, str] = msgspec.field(default_factory=dict)
    format: Format | None = None
    stdin: bool = False
    pty: bool = False
    timeout_seconds: float | None = None


class AgentInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Bytes for the agent's stdin (UTF-8 text), and/or ``eof`` to close it."""

    data: str = ""
    eof: bool = False


class AgentListQuery(msgspec.Struct, kw_only=True):
    status: str | None = None


class DetailQuery(msgspec.Struct, kw_only=True):
    include_matches: bool = False
    limit: int = 100


class LogsQuery(msgspec.Struct, kw_only=True):
    stream: Literal["stdout", "stderr"] = "stdout"
    tail: int | None = None


class ErrorBody(msgspec.Struct):
    code: str
    message: str


class ErrorResponse(msgspec.Struct):
    error: ErrorBody


class StreamFigures(msgspec.Struct):
    bytes: int
    lines: int


class AgentSummary(msgspec.Struct):
    name: str
    status: str
    pid: int | None
    format: str
    started_at: str
    completed_at: str | None
    uptime: str
    duration_seconds: float
    exit_code: int | None


class Extraction(msgspec.Struct):
    format: str
    total_lines: int
    total_matches: int
    in_code_block: bool
    matches_by_type: dict[str, int]


class AgentDetail(AgentSummary):
    command: list[str]
    cwd: str | None
    profile: str | None
    signal: str | None
    stop_reason: str | None
    error: str | None
    stdin_open: bool
    pty: bool
    timeout_seconds: float | None
    bytes_processed: int
    streams: dict[str, StreamFigures]
    logs: dict[str, str]
    extraction: Extraction


class AgentList(msgspec.Struct):
    agents: list[AgentSummary]
    count: int


class Health(msgspec.Struct):
    status: str
    uptime: str
    uptime_seconds: float
    agents: int
    started_at: str
    version: str
    problems: list[str] = msgspec.field(default_factory=list)


class Deleted(msgspec.Struct):
    message: str
    name: str
    status: str
    exit_code: int | None


class InputAccepted(msgspec.Struct):
    written: int
    eof: bool


class StreamQuery(msgspec.Struct, kw_only=True):
    """Stream resume: ``history`` replays the last N retained events on connect;
    ``last_event_id`` (or the ``Last-Event-ID`` header) replays what came after it."""

    history: int = 0
    last_event_id: int | None = None


class SseStats(msgspec.Struct):
    total_agents: int
    total_clients: int
    agents: dict[str, int]
    events_clients: int
    dropped_events_total: int
    slow_disconnects_total: int
