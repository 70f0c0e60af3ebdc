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
