"""Checks before every request: the Host header (DNS rebinding), the Origin of a
mutating request, and the bearer token.

Every route needs the token when one is configured, for every method but GET, HEAD and
OPTIONS (and for those too with ``auth.protect_reads``), unless it is on ``PUBLIC``. A
test walks the app's URL map to hold every route to this.
"""

from __future__ import annotations

import hmac
from typing import Final
from urllib.parse import urlsplit

from quart import Response, request
from quart_trio import QuartTrio

from trio_wrapper.api.responses import error_response
from trio_wrapper.config import LOOPBACK_NAMES, Config
from trio_wrapper.core.errors import Refusal

# Methods that change nothing. Every other method needs the token, also one no route
# has (it then gets 401 before 405): a guard that lists what it protects misses the
# method nobody thought of.
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})

# Routes (URL rules) served without a token even with ``auth.protect_reads``, for their
# safe methods only: a liveness probe cannot hold a secret, and the API's description and
# the page that shows it hold none (the same document is in the repository); nor does the
# dashboard's page and its files (its data comes from the guarded API, with the token).
PUBLIC: Final = frozenset(
    {"/api/health", "/openapi.json", "/docs", "/docs/assets/<name>", "/", "/ui/<name>"}
)

# The routes that also take ``?access_token=``: EventSource cannot set a header. Nowhere
# else, so a token does not end up in the URL (history, logs, Referer) of other requests.
TOKEN_IN_QUERY: Final = frozenset({"/api/agents/<name>/stream", "/api/events"})


def allowed_hosts(config: Config) -> frozenset[str]:
    return frozenset({*LOOPBACK_NAMES, config.server.host, *config.server.allowed_hosts})


def host_name(host_header: str) -> str:
    """The host of a Host header, without its port (``[::1]:8151`` → ``[::1]``)."""
    if host_header.startswith("["):
        return host_header[: host_header.find("]") + 1]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def route_rule() -> str | None:
    """The URL rule the request matched (``/api/agents/<name>``), None if none did."""
    rule = request.url_rule
    return rule.rule if rule is not None else None


def supplied_token(query_allowed: bool) -> str:
    """The request's token: ``Authorization: Bearer …``, else ``?access_token=`` where
    ``query_allowed``."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    return request.args.get("access_token", "") if query_allowed else ""


def origin_allowed(origin: str, allowed: frozenset[str]) -> bool:
    """A browser's ``Origin`` may send a mutating request: one of ``cors.allow_origins``,
    or the daemon's own (the ``/docs`` page trying a request)."""
    if "*" in allowed or origin in allowed:
        return True
    return urlsplit(origin).netloc == request.host if origin != "null" else False


def install_guards(app: QuartTrio, config: Config) -> None:
    hosts = allowed_hosts(config)
    any_host = "*" in hosts
    origins = frozenset(config.cors.allow_origins)
    token = config.token
    protect_reads = config.auth.protect_reads

    @app.before_request
    async def _guard() -> Response | None:
        if not any_host and host_name(request.host) not in hosts:
            # DNS-rebinding guard: a page on evil.example resolving to 127.0.0.1 sends
            # its own host name, which is not ours.
            return error_response(
                Refusal(
                    "host_not_allowed",
                    f"host {request.host[:200]!r} is not allowed: add "
                    f"{host_name(request.host)[:200]!r} "
                    "to server.allowed_hosts in the daemon's config "
                    "(or TRIO_WRAPPER_SERVER_ALLOWED_HOSTS)",
                )
            )
        safe = request.method in SAFE_METHODS
        origin = request.headers.get("Origin")
        if not safe and origin is not None and not origin_allowed(origin, origins):
            # A page elsewhere cannot change anything here, even one whose request the
            # browser sends without a preflight (CORS only hides the answer from it).
            return error_response(
                Refusal("origin_not_allowed", f"origin {origin[:200]!r} is not allowed")
            )
        if request.method == "OPTIONS" or not token:
            return None
        rule = route_rule()
        if safe and (not protect_reads or rule in PUBLIC):
            return None
        query_allowed = rule in TOKEN_IN_QUERY
        if hmac.compare_digest(supplied_token(query_allowed).encode(), token.encode()):
            return None
        message = "a valid 'Authorization: Bearer' token is required"
        if not query_allowed and "access_token" in request.args:
            message += " (?access_token= is taken only by the SSE routes)"
        return error_response(Refusal("unauthorized", message))
