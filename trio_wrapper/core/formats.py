"""Output formats an agent may declare (contract section 3, ``format``)."""

from __future__ import annotations

FORMATS: tuple[str, ...] = (
    "auto",
    "text",
    "codex-json",
    "claude-stream-json",
    "gemini-stream-json",
    "aider",
    "none",
)
