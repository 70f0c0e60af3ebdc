"""Errors that reach an API client as ``{"error": {"code", "message"}}``."""

from __future__ import annotations


class ApiError(Exception):
    """A refusal with an HTTP status and a stable snake_case code (contract section 3)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


def invalid_request(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


def agent_not_found(name: str) -> ApiError:
    return ApiError(404, "agent_not_found", f"no agent named {name!r}")
