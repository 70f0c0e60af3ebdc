"""Checks before every request: the Host header (DNS rebinding) and the bearer token."""

from __future__ import annotations

import hmac

from quart import Response, request
from quart_trio import QuartTrio

from trio_wrapper.api.responses import error_response
from trio_wrapper.config import LOOPBACK_NAMES, Config
from trio_wrapper.core.errors import Refusal

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def allowed_hosts(config: Config) -> frozenset[str]:
    return frozenset({*LOOPBACK_NAMES, config.server.host, *config.server.allowed_hosts})


def host_name(host_header: str) -> str:
    """The host of a Host header, without its port (``[::1]:8151`` → ``[::1]``)."""
    if host_header.startswith("["):
        return host_header[: host_header.find("]") + 1]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def supplied_token() -> str:
    """The request's token: ``Authorization: Bearer …``, else ``?access_token=`` (for
    EventSource, which cannot set headers)."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    return request.args.get("access_token", "")


def install_guards(app: QuartTrio, config: Config) -> None:
    hosts = allowed_hosts(config)
    any_host = "*" in hosts
    token = config.token

    @app.before_request
    async def _guard() -> Response | None:
        if not any_host and host_name(request.host) not in hosts:
            # DNS-rebinding guard: a page on evil.example resolving to 127.0.0.1 sends
            # its own host name, which is not ours.
            return error_response(
                Refusal("host_not_allowed", f"host {request.host!r} is not allowed")
            )
        if request.method == "OPTIONS" or not token:
            return None
        needs_token = request.method in MUTATING or config.auth.protect_reads
        if needs_token and not hmac.compare_digest(supplied_token().encode(), token.encode()):
            return error_response(
                Refusal("unauthorized", "a valid 'Authorization: Bearer' token is required")
            )
        return None
