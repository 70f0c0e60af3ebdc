"""Configuration: defaults < TOML file < ``TRIO_WRAPPER_<SECTION>_<KEY>`` env < CLI flags.

msgspec does the type checking, so a wrong type or an unknown key is reported with its
path; ``ConfigError`` carries a one-line message naming the key.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from trio_wrapper.core.errors import Refusal
from trio_wrapper.core.interactive import compile_pattern
from trio_wrapper.core.logformat import LOG_FORMATS, LOG_LEVELS
from trio_wrapper.core.models import FORMATS
from trio_wrapper.core.names import DEFAULT_MAX_NAME_LENGTH, MAX_NAME_LENGTH
from trio_wrapper.core.tomlfile import TomlFileError, read_toml
from trio_wrapper.extract.rules import Rule, RulesError, load_rules

ENV_PREFIX = "TRIO_WRAPPER_"
TOKEN_ENV = f"{ENV_PREFIX}AUTH_TOKEN"
MIN_HEADER_BYTES = 1024
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


DEFAULT_CONFIG_FILE = Path("conf/trio_wrapper.toml")
CONFIG_ENV = f"{ENV_PREFIX}CONFIG"


def config_file(arg: str | None) -> str | None:
    """The config file to read: ``arg`` (``--config``), else ``$TRIO_WRAPPER_CONFIG``, else
    ``conf/trio_wrapper.toml`` if it exists here, else None (the defaults)."""
    if arg:
        return arg
    env = os.environ.get(CONFIG_ENV)
    if env:
        return env
    return str(DEFAULT_CONFIG_FILE) if DEFAULT_CONFIG_FILE.is_file() else None


class ConfigError(Exception):
    """A bad configuration: the message names the key."""


class ServerConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8151
    logs_dir: str = "logs"
    root_path: str = ""
    forwarded_hops: int = 0
    graceful_timeout_seconds: float = 3.0
    allowed_hosts: list[str] = msgspec.field(default_factory=list)
    # The listen queue (hypercorn's default, 100, overflowed under 200 reconnecting clients).
    backlog: int = 1024


# What of the daemon's environment an agent gets (then the request's env on top). The
# usual session variables and the agent CLIs' own keys and endpoints; a trailing ``*``
# matches a prefix. TRIO_WRAPPER_* is never passed, listed or not.
DEFAULT_ENV_PASSTHROUGH: tuple[str, ...] = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TERM",
    "COLORTERM",
    "TZ",
    "TMPDIR",
    "XDG_*",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "CODEX_HOME",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CONFIG_DIR",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "AIDER_*",
)


class AgentsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # A cgroup (v2) per agent where the daemon can make one (runtime.cgroups). Off by
    # default: joining it before exec makes each spawn a fork of the daemon (100 agents
    # started at once: 0.9 s without, 1.6-2.7 s with; docs/benchmarks.md).
    cgroups: bool = False
    stop_grace_seconds: float = 10.0
    default_format: str = "auto"
    allowed_commands: list[str] = msgspec.field(default_factory=list)
    stdin_write_timeout_seconds: float = 10.0
    env_passthrough: list[str] = msgspec.field(
        default_factory=lambda: list(DEFAULT_ENV_PASSTHROUGH)
    )


class LimitsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    max_agents: int = 1000
    max_body_bytes: int = 1024 * 1024
    # The request line and headers together (hypercorn's own default).
    max_header_bytes: int = 16 * 1024
    # Nesting of arrays and objects in a request body; no request needs more than 3.
    max_json_depth: int = 32
    # Agent names become directory names (at most core.names.MAX_NAME_LENGTH).
    max_name_length: int = DEFAULT_MAX_NAME_LENGTH
    max_line_bytes: int = 64 * 1024
    read_chunk_bytes: int = 1024 * 1024  # as big as the pipe buffer (runtime/pipes.py)
    # Extraction records one agent keeps in memory, per kind: the most ?limit= returns.
    max_records: int = 10_000
    # ... and for the kinds with long text (prompt, response, code_block), their JSON bytes.
    max_record_text_bytes: int = 8 * 1024 * 1024
    # ?tail= of an agent's log (lines).
    max_tail_lines: int = 100_000
    # File descriptors kept free: new agents and SSE clients are refused (503
    # too_many_open_files) before the open-file limit leaves fewer than this.
    fd_reserve: int = 64


class AuthConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    token: str = ""
    token_file: str = ""
    protect_reads: bool = False


class CorsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    allow_origins: list[str] = msgspec.field(
        default_factory=lambda: ["http://localhost:8080", "http://127.0.0.1:8080"]
    )
    allow_credentials: bool = False


# A metric name prefix Prometheus accepts; no ':' (reserved for recording rules).
METRIC_NAMESPACE_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class MetricsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    namespace: str = "trio_wrapper"


class SseConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    client_buffer: int = 1_000_000  # events (log lines, records, states) waiting per client
    # The memory all clients' buffers hold together, each event counted once however many
    # clients wait for it (streaming.backlog).
    client_buffers_total_bytes: int = 256 * 1024 * 1024
    ping_interval_seconds: float = 15.0
    stall_timeout_seconds: float = 120.0
    sweep_interval_seconds: float = 30.0
    retained_events_per_agent: int = 1000
    retained_events_global: int = 10_000
    # ... and at most this much of their text (a few 64 KiB lines would otherwise hold
    # what a thousand short ones do): the oldest go first, the newest publish is kept.
    retained_bytes_per_agent: int = 2 * 1024 * 1024
    retained_bytes_global: int = 16 * 1024 * 1024
    max_clients: int = 20_000
    max_clients_per_agent: int = 10_000


DEFAULT_PATTERNS_FILE = "conf/patterns.toml"


class ExtractionConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    patterns_file: str = DEFAULT_PATTERNS_FILE
    # Extract in a worker process (another core) rather than in the daemon itself.
    worker: bool = True


class LoggingConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # The daemon's own log on stderr: "text" (message, then key=value pairs) or "json".
    format: str = "text"
    level: str = "info"
    # Lines about clients hitting a limit: at most one per kind per this many seconds.
    limit_interval_seconds: float = 60.0


class RetentionConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Each 0 = off. Of each agent name, keep the newest keep_runs runs; remove runs started
    # more than keep_days ago; remove the oldest while all runs take more than
    # max_total_bytes. A live run, and the run an agent is listed with, are never removed.
    keep_runs: int = 0
    keep_days: float = 0.0
    max_total_bytes: int = 0
    # Applied at start and then this often.
    interval_seconds: float = 3600.0


# The prompts of the CLIs' terminal UIs (regexes over a quiet screen's last lines, with
# re.MULTILINE; lines are right-trimmed): an empty input line ">" (claude, gemini, maybe
# inside a box) or U+203A (codex), a question asking for approval, aider's "> " or
# "architect> ".
CLAUDE_TUI_PROMPT = r"^[\s│]*>\s*│?$|Do you want to"
CODEX_TUI_PROMPT = "^\\s*\u203a|Allow command|approve"
GEMINI_TUI_PROMPT = r"^[\s│]*>\s*│?$|Type your message|Allow execution"
AIDER_PROMPT = r"^[\w-]*>$"


class Profile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    command: list[str]
    format: str = "auto"
    # What an argument ``{permissions}`` of ``command`` becomes (several arguments, or
    # none); a request's ``permissions`` replaces it for that agent.
    permissions: list[str] = msgspec.field(default_factory=list)
    # Run under a PTY (core.interactive): a quiet terminal whose last lines match this
    # regex waits for its user ("" = never); the Enter typed after a message.
    waiting_pattern: str = ""
    enter: str = "\r"


class InteractiveConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # A PTY agent's terminal must have written nothing this long before its screen is
    # read for its prompt.
    quiet_seconds: float = 1.0
    # Between a message's text and its Enter: TUIs take text and Enter arriving together
    # for a paste, and the Enter for a new line in it.
    enter_delay_seconds: float = 0.1


class NotifyConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # An http:// or https:// URL that gets a JSON POST when an agent starts waiting,
    # fails or completes ("" = off).
    webhook: str = ""
    # Notifications waiting to be sent; past this the newest are dropped (and counted).
    queue_size: int = 100
    # Tries per notification (the first included), and each one's time limit.
    attempts: int = 3
    timeout_seconds: float = 5.0
    retry_delay_seconds: float = 1.0


# The shipped profiles, tried with Claude Code 2.1.197, Codex 0.171.0, Gemini CLI 0.61.0 and
# Aider 0.86.2 (tests/integration): each lets an unattended agent work in its cwd, and takes
# its endpoint, key and model from the agent's ``env`` alone (docs/profiles.md).
def _default_profiles() -> dict[str, Profile]:
    return {
        "codex": Profile(
            # stdin stays closed (the default): with a pipe, ``codex exec`` waits on it.
            command=[
                "codex",
                "exec",
                "--json",
                "--skip-git-repo-check",
                "{permissions}",
                "{prompt}",
            ],
            format="codex-json",
            permissions=["--sandbox", "workspace-write"],
        ),
        "claude": Profile(
            command=[
                "claude",
                "-p",
                "{prompt}",
                "--output-format",
                "stream-json",
                "--verbose",
                "{permissions}",
            ],
            format="claude-stream-json",
            permissions=["--permission-mode", "acceptEdits", "--allowedTools", "Bash"],
        ),
        "gemini": Profile(
            command=[
                "gemini",
                "-p",
                "{prompt}",
                "--output-format",
                "stream-json",
                "--skip-trust",
                "{permissions}",
            ],
            format="gemini-stream-json",
            permissions=["--approval-mode", "yolo"],
        ),
        "aider": Profile(
            command=[
                "aider",
                "--message",
                "{prompt}",
                "--no-pretty",
                "--no-check-update",
                "--analytics-disable",
                "--no-show-model-warnings",
                "{permissions}",
            ],
            format="aider",
            permissions=["--yes-always"],
        ),
        # Talked to while they run (docs/api.md, "Interactive agents"). The TUIs need
        # "pty": true and "stdin": true; their prompts as the versions in CHANGELOG draw them.
        "claude-chat": Profile(
            command=[
                "claude",
                "-p",
                "--input-format",
                "stream-json",
                "--output-format",
                "stream-json",
                "--verbose",
                "--permission-prompt-tool",
                "stdio",
            ],
            format="claude-stream-json",
        ),
        "claude-tui": Profile(
            command=["claude", "{prompt}"],
            format="text",
            waiting_pattern=CLAUDE_TUI_PROMPT,
        ),
        "codex-tui": Profile(
            command=["codex", "{prompt}"], format="text", waiting_pattern=CODEX_TUI_PROMPT
        ),
        "gemini-tui": Profile(
            command=["gemini", "-i", "{prompt}"],
            format="text",
            waiting_pattern=GEMINI_TUI_PROMPT,
        ),
        "aider-tui": Profile(
            command=["aider", "--no-pretty"], format="aider", waiting_pattern=AIDER_PROMPT
        ),
    }


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    agents: AgentsConfig = msgspec.field(default_factory=AgentsConfig)
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)
    cors: CorsConfig = msgspec.field(default_factory=CorsConfig)
    sse: SseConfig = msgspec.field(default_factory=SseConfig)
    extraction: ExtractionConfig = msgspec.field(default_factory=ExtractionConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    retention: RetentionConfig = msgspec.field(default_factory=RetentionConfig)
    interactive: InteractiveConfig = msgspec.field(default_factory=InteractiveConfig)
    notify: NotifyConfig = msgspec.field(default_factory=NotifyConfig)
    profiles: dict[str, Profile] = msgspec.field(default_factory=_default_profiles)

    @property
    def logs_path(self) -> Path:
        return Path(self.server.logs_dir)

    def rules(self) -> list[Rule]:
        """The user extraction rules; the shipped default file may be absent."""
        path = Path(self.extraction.patterns_file)
        if self.extraction.patterns_file == DEFAULT_PATTERNS_FILE and not path.exists():
            return []
        try:
            return load_rules(path)
        except RulesError as exc:
            raise ConfigError(f"extraction.patterns_file: {exc}") from exc

    @property
    def token(self) -> str:
        """The bearer token, from ``auth.token`` or the first line of ``auth.token_file``;
        "" when neither is set. A token that is set but empty is a ``ConfigError``: it
        would otherwise turn authentication off without a word."""
        if self.auth.token:
            return checked_token(self.auth.token, "auth.token")
        if self.auth.token_file:
            try:
                text = Path(self.auth.token_file).read_text()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise ConfigError(f"auth.token_file: cannot read: {reason}") from exc
            first_line = text.splitlines()[0].strip() if text.strip() else ""
            return checked_token(first_line, "auth.token_file")
        return ""


def checked_token(token: str, where: str) -> str:
    """``token`` if a client can send it in ``Authorization: Bearer …``; else a
    ``ConfigError``. Such a token could never match, so it would lock every client out
    (or, empty, have been taken for "no auth")."""
    if not token.strip():
        raise ConfigError(f"{where}: the token is empty (or only whitespace)")
    if not all("!" <= char <= "~" for char in token):
        raise ConfigError(
            f"{where}: the token must be printable ASCII without spaces or control "
            "characters (it travels in an HTTP header)"
        )
    return token


_SECTIONS: dict[str, type[msgspec.Struct]] = {
    "server": ServerConfig,
    "agents": AgentsConfig,
    "limits": LimitsConfig,
    "auth": AuthConfig,
    "cors": CorsConfig,
    "sse": SseConfig,
    "extraction": ExtractionConfig,
    "metrics": MetricsConfig,
    "logging": LoggingConfig,
    "retention": RetentionConfig,
    "interactive": InteractiveConfig,
    "notify": NotifyConfig,
}


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Collect ``TRIO_WRAPPER_<SECTION>_<KEY>`` values; lists are comma-separated."""
    out: dict[str, dict[str, Any]] = {}
    for section, struct in _SECTIONS.items():
        for field in msgspec.structs.fields(struct):
            name = f"{ENV_PREFIX}{section.upper()}_{field.name.upper()}"
            if name not in environ:
                continue
            raw = environ[name]
            value: Any = raw
            if getattr(field.type, "__origin__", None) is list:
                value = [item.strip() for item in raw.split(",") if item.strip()]
            out.setdefault(section, {})[field.name] = value
    return out


def _merge(base: dict[str, Any], extra: Mapping[str, Mapping[str, Any]]) -> None:
    for section, values in extra.items():
        target = base.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{section}: expected a table")
        target.update(values)


def _describe(exc: msgspec.ValidationError) -> str:
    # msgspec says e.g. "Expected `int`, got `str` - at `$.server.port`"; lead with the key.
    text = str(exc)
    if " - at `$." in text:
        message, _, where = text.rpartition(" - at `$.")
        return f"{where.rstrip('`')}: {message}"
    return text


def load_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Build the configuration; raise ``ConfigError`` with a one-line reason."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = read_toml(path)
        except TomlFileError as exc:
            raise ConfigError(f"config file {exc}") from None
    # A file's [profiles.x] adds to or replaces the shipped profiles one by one.
    shipped = msgspec.to_builtins(_default_profiles())
    if isinstance(data.get("profiles"), dict):
        data["profiles"] = {**shipped, **data["profiles"]}
    environ = os.environ if environ is None else environ
    if TOKEN_ENV in environ and not environ[TOKEN_ENV].strip():
        # Exported but empty (e.g. from a command that printed nothing): taken for "no
        # token" it would silently turn authentication off.
        raise ConfigError(f"{TOKEN_ENV}: is set but empty; unset it to run without a token")
    _merge(data, _env_overrides(environ))
    if overrides:
        _merge(data, overrides)
    try:
        config = msgspec.convert(data, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc
    validate(config)
    return config


def check_notify(notify: NotifyConfig) -> None:
    if notify.webhook:
        scheme, sep, rest = notify.webhook.partition("://")
        if not sep or scheme not in ("http", "https") or not rest.split("/")[0]:
            raise ConfigError("notify.webhook: must be an http:// or https:// URL")
    if notify.queue_size < 1 or notify.attempts < 1:
        raise ConfigError("notify: queue_size and attempts must be positive")
    if notify.timeout_seconds <= 0 or notify.retry_delay_seconds < 0:
        raise ConfigError(
            "notify: timeout_seconds must be positive, retry_delay_seconds not negative"
        )


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate(config: Config) -> None:
    """Checks msgspec's types cannot express."""
    server, limits, agents = config.server, config.limits, config.agents
    if not 0 <= server.port <= 65535:
        raise ConfigError("server.port: must be between 0 and 65535")
    if server.backlog < 1:
        raise ConfigError("server.backlog: must be positive")
    if server.forwarded_hops < 0:
        raise ConfigError("server.forwarded_hops: must not be negative")
    root = server.root_path
    if root and (not root.startswith("/") or root.endswith("/")):
        raise ConfigError("server.root_path: must start with '/' and not end with '/'")
    for limit_field in msgspec.structs.fields(LimitsConfig):
        if getattr(limits, limit_field.name) < 1:
            raise ConfigError(f"limits.{limit_field.name}: must be positive")
    if limits.max_name_length > MAX_NAME_LENGTH:
        raise ConfigError(f"limits.max_name_length: must be at most {MAX_NAME_LENGTH}")
    if limits.max_header_bytes < MIN_HEADER_BYTES:
        # Below this, browsers' ordinary requests would be refused.
        raise ConfigError(f"limits.max_header_bytes: must be at least {MIN_HEADER_BYTES}")
    for sse_field in msgspec.structs.fields(SseConfig):
        if getattr(config.sse, sse_field.name) <= 0:
            raise ConfigError(f"sse.{sse_field.name}: must be positive")
    if agents.stop_grace_seconds < 0:
        raise ConfigError("agents.stop_grace_seconds: must not be negative")
    if agents.default_format not in FORMATS:
        raise ConfigError(f"agents.default_format: must be one of {', '.join(FORMATS)}")
    for name, profile in config.profiles.items():
        if not profile.command:
            raise ConfigError(f"profiles.{name}.command: must not be empty")
        if profile.format not in FORMATS:
            raise ConfigError(f"profiles.{name}.format: must be one of {', '.join(FORMATS)}")
        if profile.waiting_pattern:
            try:
                compile_pattern(profile.waiting_pattern)
            except Refusal as exc:
                raise ConfigError(f"profiles.{name}.{exc.message}") from None
    if not METRIC_NAMESPACE_RE.fullmatch(config.metrics.namespace):
        raise ConfigError(
            "metrics.namespace: must match [a-zA-Z_][a-zA-Z0-9_]* (a Prometheus name)"
        )
    if config.logging.format not in LOG_FORMATS:
        raise ConfigError(f"logging.format: must be one of {', '.join(LOG_FORMATS)}")
    if config.logging.level.lower() not in LOG_LEVELS:
        raise ConfigError(f"logging.level: must be one of {', '.join(LOG_LEVELS)}")
    if config.logging.limit_interval_seconds < 0:
        raise ConfigError("logging.limit_interval_seconds: must not be negative")
    retention = config.retention
    for key in ("keep_runs", "keep_days", "max_total_bytes"):
        if getattr(retention, key) < 0:
            raise ConfigError(f"retention.{key}: must not be negative (0 = off)")
    if not retention.interval_seconds > 0:
        raise ConfigError("retention.interval_seconds: must be positive")
    interactive = config.interactive
    if interactive.quiet_seconds <= 0 or interactive.enter_delay_seconds < 0:
        raise ConfigError(
            "interactive: quiet_seconds must be positive, enter_delay_seconds not negative"
        )
    check_notify(config.notify)
    if "*" in config.cors.allow_origins and config.cors.allow_credentials:
        raise ConfigError("cors.allow_origins: '*' cannot be used with allow_credentials")
    token = config.token  # reads auth.token_file: an empty or unreadable one is refused
    if not is_loopback(server.host) and not token:
        raise ConfigError(
            f"server.host: refusing to bind non-loopback address {server.host!r} without "
            "auth.token (or auth.token_file / TRIO_WRAPPER_AUTH_TOKEN)"
        )
