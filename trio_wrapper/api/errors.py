"""The one place where a refusal becomes an HTTP status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from trio_wrapper.core.errors import Refusal

HTTP_STATUS: Final[Mapping[str, int]] = {
    "invalid_request": 400,
    "invalid_name": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "host_not_allowed": 403,
    "origin_not_allowed": 403,
    "command_not_allowed": 403,
    "not_found": 404,
    "agent_not_found": 404,
    "unknown_profile": 404,
    "log_not_found": 404,
    "run_not_found": 404,
    "method_not_allowed": 405,
    "agent_exists": 409,
    "agent_busy": 409,
    "stdin_not_open": 409,
    "stdin_blocked": 409,
    "not_interactive": 409,
    "not_a_terminal": 409,
    "agent_not_running": 409,
    "body_too_large": 413,
    "unsupported_media_type": 415,
    "spawn_failed": 422,
    "too_many_agents": 429,
    "headers_too_large": 431,
    "internal_error": 500,
    "logs_unwritable": 503,
    "shutting_down": 503,
    "too_many_clients": 503,
    "too_many_open_files": 503,
    "index_unavailable": 503,
}

# werkzeug's HTTP errors (routing, methods, body size) get the code of their status.
CODE_OF_STATUS: Final[Mapping[int, str]] = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    431: "headers_too_large",
}


class HttpRefusal(Refusal):
    """A refusal that arrives with its status already set (werkzeug's, or hypercorn's)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code, message)
        self.status = status


def http_status(err: Refusal) -> int:
    if isinstance(err, HttpRefusal):
        return err.status
    # An unmapped code is our bug, not the client's: say so rather than guess a 4xx.
    return HTTP_STATUS.get(err.code, 500)
