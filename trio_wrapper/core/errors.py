"""Refusals: what the daemon declines to do, named by a stable snake_case code.

The domain says *what* went wrong (``agent_not_found``, ``spawn_failed``…); which HTTP
status that becomes is the API's business, decided in one table (``api.errors``). A client
sees ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations


class Refusal(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


def invalid_request(message: str) -> Refusal:
    return Refusal("invalid_request", message)


def agent_not_found(name: str) -> Refusal:
    return Refusal("agent_not_found", f"no agent named {name!r}")
