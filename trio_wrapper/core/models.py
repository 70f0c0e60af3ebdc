"""The shapes of the contract, one msgspec Struct each: the request bodies and queries
(decoded), the response bodies and the run's meta file (encoded). The HTTP bodies, the
meta file and /openapi.json all come from these types; nothing builds them as dicts.

Field order is the JSON key order. ``UNSET`` marks a key that is left out, not null.
"""

from __future__ import annotations

from typing import Any, Final, Literal, get_args

import msgspec
from msgspec import UNSET, UnsetType

from trio_wrapper.core.status import Status

# Output formats an agent may declare (contract section 3, ``format``).
Format = Literal[
    "auto", "text", "codex-json", "claude-stream-json", "gemini-stream-json", "aider", "none"
]
FORMATS: Final[tuple[str, ...]] = get_args(Format)


class AgentCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Start an agent: ``command`` (argv list, or the original's string + ``args``) or a
    ``profile`` from the config with a ``prompt``."""

    name: str
    command: list[str] | str | None = None
    args: list[str] | None = None
    profile: str | None = None
    prompt: str | None = None
    # Replaces the profile's permission flags (its ``{permissions}`` argument); only with
    # ``profile``.
    permissions: list[str] | None = None
    cwd: str | None = None
    env: dict[str, str] = msgspec.field(default_factory=dict)
    format: Format | None = None
    stdin: bool = False
    pty: bool = False
    timeout_seconds: float | None = None
    # With ``pty``: the terminal's [rows, cols] (default [24, 80]).
    pty_size: list[int] | None = None
    # A regex: a quiet terminal whose last lines match it waits for its user (overrides
    # the profile's).
    waiting_pattern: str | None = None


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
    # In the log file: never more than it holds.
    bytes: int
    lines: int
    # Read from the agent but not in the log file: the write failed (no space…).
    lost_bytes: int = 0
    # Never made into lines (so not counted, streamed or extracted): neither in memory
    # nor readable back from the log.
    unprocessed_bytes: int = 0


class AgentSummary(msgspec.Struct):
    name: str
    status: Status
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
    # Event types of a structured format the extractor does not know (a CLI changed its
    # output), with their counts: at most 16 names, the rest as "(other)".
    unknown_events: dict[str, int] = msgspec.field(default_factory=dict)


class LeftoverProcess(msgspec.Struct):
    """A process of an interrupted run still running (the daemon that started it died)."""

    pid: int
    argv0: str


class Resources(msgspec.Struct, kw_only=True):
    """From the run's cgroup: CPU time of all its processes, memory where the kernel's
    memory controller is enabled for it (else null). A finished run keeps its last figures."""

    cgroup: str
    cpu_seconds: float | None
    memory_bytes: int | None
    memory_peak_bytes: int | None


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
    # With ``include_matches=true`` only: the newest records of each kind, oldest first.
    matches: dict[str, list[dict[str, Any]]] | UnsetType = UNSET
    # An interrupted run only, while some of its processes still run: DELETE kills them.
    orphans: list[LeftoverProcess] | UnsetType = UNSET
    # Only where the run has a cgroup of its own (docs/api.md): its CPU and memory.
    resources: Resources | UnsetType = UNSET
    # The run shown: "<name>/<stamp>" (its files' stamp), for /api/agents/<name>/runs/<stamp>.
    run_id: str = ""
    # Since when the agent waits for its user (status ``waiting``), and what for.
    waiting_since: str | None = None
    waiting_detail: str | None = None
    # Whether ``POST /api/agents/<name>/message`` can reach it: "pty", "stream-json" or null.
    messages: str | None = None
    # A PTY agent's terminal size, [rows, cols].
    pty_size: list[int] | None = None


class AgentList(msgspec.Struct):
    agents: list[AgentSummary]
    count: int


class Health(msgspec.Struct):
    status: Literal["healthy", "degraded"]
    uptime: str
    uptime_seconds: float
    agents: int
    started_at: str
    version: str
    # Only when ``status`` is ``degraded``: what is wrong.
    problems: list[str] | UnsetType = UNSET


class Deleted(msgspec.Struct):
    message: str
    name: str
    status: Status
    exit_code: int | None


class Stopped(Deleted):
    """The answer to ``POST /api/agents/<name>/stop`` (the agent stays listed)."""


class DeletedMany(msgspec.Struct):
    """The answer to ``DELETE /api/agents?status=…``: each agent it stopped and unlisted."""

    deleted: list[Deleted]
    count: int


class ForceQuery(msgspec.Struct, kw_only=True):
    """``force=true``: no grace (SIGTERM and SIGKILL at once), also for a stop already
    waiting out its grace."""

    force: bool = False


class DeleteManyQuery(msgspec.Struct, kw_only=True):
    """``status``: one status or several, comma-separated (required)."""

    status: str | None = None
    force: bool = False


class RunSummary(msgspec.Struct):
    """One run of a name (``GET /api/agents/<name>/runs``)."""

    id: str  # "<name>/<stamp>"
    name: str
    stamp: str
    # The run ``GET /api/agents/<name>`` shows (not DELETEd, the newest of the name).
    listed: bool
    status: Status
    started_at: str
    completed_at: str | None
    duration_seconds: float
    exit_code: int | None
    signal: str | None
    stop_reason: str | None
    error: str | None
    bytes_processed: int
    streams: dict[str, StreamFigures]
    extraction: Extraction
    # Tokens and cost of an ended run, from the run index; null while it runs, when it
    # reported none, or when the index cannot answer.
    usage: RunUsage | None = None


class NameRuns(msgspec.Struct):
    name: str
    runs: list[RunSummary]
    count: int


class InputAccepted(msgspec.Struct):
    written: int
    eof: bool


class AgentMessage(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One user turn for an interactive agent."""

    text: str


class MessageDelivered(msgspec.Struct, kw_only=True):
    """How a message reached the agent: typed into its terminal (``pty``), as a
    stream-json user message, or as the answer to a pending permission prompt."""

    delivered: Literal["pty", "stream-json"]
    written: int
    # A permission prompt's answer: which tool, and whether the text allowed it.
    answered: str | None = None
    allowed: bool | None = None
    status: Status


class Screen(msgspec.Struct, kw_only=True):
    """A PTY agent's current screen, rendered by a terminal emulator."""

    name: str
    status: Status
    rows: int
    cols: int
    cursor: list[int]  # [row, col], from 0
    lines: list[str]  # right-trimmed, one per row
    text: str  # the lines joined by newlines, trailing blank lines left out


class StreamQuery(msgspec.Struct, kw_only=True):
    """Stream resume: ``history`` replays the last N retained events on connect (``all``:
    every one retained); ``last_event_id`` (or the ``Last-Event-ID`` header) replays what
    came after it."""

    history: int | Literal["all"] = 0
    last_event_id: int | None = None


class SseStats(msgspec.Struct):
    total_agents: int
    total_clients: int
    agents: dict[str, int]
    events_clients: int
    dropped_events_total: int
    slow_disconnects_total: int


# ---- the run's meta file (<stamp>-meta.json) --------------------------------------------


class MetaExtraction(msgspec.Struct, kw_only=True):
    """``extraction`` in the meta file: ``Extraction``'s keys, each with a default so that a
    file written by an older version (or cut short) still reads."""

    format: str = "none"
    total_lines: int = 0
    total_matches: int = 0
    in_code_block: bool = False
    matches_by_type: dict[str, int] = msgspec.field(default_factory=dict)
    unknown_events: dict[str, int] = msgspec.field(default_factory=dict)


class RunMeta(msgspec.Struct, kw_only=True):
    """The meta file of one run, rewritten (atomically) at every status change.

    Read back at start to list past runs: every key has a default, so a file with missing
    keys reads as today; ``status`` stays a string (an unknown one reads as interrupted).
    """

    name: str | None = None
    # Absent: not a run's meta (an empty reservation, another file).
    status: str | UnsetType | None = UNSET
    command: list[str] = msgspec.field(default_factory=list)
    cwd: str | None = None
    format: str = "auto"
    profile: str | None = None
    stdin: bool = False
    pty: bool = False
    timeout_seconds: float | None = None
    pty_size: list[int] | None = None
    # How a restart of the run from disk talks to it again (core.interactive).
    waiting_pattern: str | None = None
    enter: str = "\r"
    waiting_since: str | None = None
    pid: int | None = None
    # How the run's processes are recognised after a daemon crash (runtime.proctree): the
    # leader's start time (/proc/<pid>/stat field 22, ticks after boot), its session id,
    # the boot it ran in, and the cookie put in its environment.
    pid_start_ticks: int | None = None
    session_id: int | None = None
    boot_id: str | None = None
    run_cookie: str | None = None
    # The run's cgroup (absent where none could be made) and its CPU and peak memory.
    cgroup: str | None = None
    cpu_seconds: float | None = None
    memory_peak_bytes: int | None = None
    started_at: str | None = None
    completed_at: str | None = None
    duration_seconds: float | None = None
    exit_code: int | None = None
    signal: str | None = None
    stop_reason: str | None = None
    error: str | None = None
    bytes: dict[str, int] = msgspec.field(default_factory=dict)
    lines: dict[str, int] = msgspec.field(default_factory=dict)
    # As ``streams.<s>.lost_bytes`` and ``unprocessed_bytes`` in the API.
    lost_bytes: dict[str, int] = msgspec.field(default_factory=dict)
    unprocessed_bytes: dict[str, int] = msgspec.field(default_factory=dict)
    total_lines: int = 0
    extraction: MetaExtraction = msgspec.field(default_factory=MetaExtraction)
    logs: dict[str, str] = msgspec.field(default_factory=dict)
    # Set by a DELETE: the run is not listed again after a restart.
    deleted_at: str | UnsetType | None = UNSET


class StateEvent(msgspec.Struct, kw_only=True):
    """A status change as the events file records it (one JSON object a line)."""

    type: str = "state"
    state: str
    detail: str
    timestamp: str


# ---- the run index: GET /api/runs, GET /api/usage ---------------------------------------


class RunsQuery(msgspec.Struct, kw_only=True):
    """``since`` / ``until``: RFC 3339 or ``YYYY-MM-DD`` (local midnight), on ``started_at``."""

    name: str | None = None
    status: str | None = None
    since: str | None = None
    until: str | None = None
    limit: int = 100


class UsageQuery(msgspec.Struct, kw_only=True):
    since: str | None = None
    until: str | None = None
    group_by: str = "day"


class TokenCounts(msgspec.Struct):
    """Tokens by type, as the CLI reported them (``other``: reported without a type)."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0
    other: int = 0


class ModelUsageEntry(msgspec.Struct):
    model: str
    tokens: TokenCounts
    cost_usd: float | None


class RunUsage(msgspec.Struct):
    """A run's totals and their split by model (as in ``GET /api/runs``)."""

    tokens: TokenCounts
    cost_usd: float | None
    models: list[ModelUsageEntry]


class RunFile(msgspec.Struct):
    """A file the run touched (``file_op`` records) and what it did to it."""

    path: str
    ops: list[str]


class RunEntry(msgspec.Struct):
    id: str
    name: str
    stamp: str
    status: str
    format: str
    profile: str | None
    model: str | None
    command: list[str]
    started_at: str | None
    completed_at: str | None
    duration_seconds: float | None
    exit_code: int | None
    bytes: int
    disk_bytes: int
    deleted_at: str | None
    tokens: TokenCounts
    cost_usd: float | None
    usage: list[ModelUsageEntry]
    files: list[RunFile]


class RunList(msgspec.Struct):
    runs: list[RunEntry]
    count: int


class UsageGroup(msgspec.Struct):
    key: str | None
    runs: int
    tokens: TokenCounts
    cost_usd: float | None


class UsageReport(msgspec.Struct):
    group_by: str
    since: str | None
    until: str | None
    groups: list[UsageGroup]
    total: UsageGroup
