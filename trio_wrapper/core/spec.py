"""What to run: an agent's name, argv and options, as a request resolved them. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AgentSpec:
    name: str
    command: list[str]
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    format: str = "auto"
    stdin: bool = False
    pty: bool = False
    timeout_seconds: float | None = None
    profile: str | None = None
    # A PTY agent's terminal, [rows, cols]; its prompt (a regex, core.interactive) and
    # the Enter its CLI expects after a message.
    pty_size: tuple[int, int] | None = None
    waiting_pattern: str | None = None
    enter: str = "\r"
