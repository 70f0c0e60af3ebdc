"""The HTTP API: a thin Quart-Trio app over the supervisor.

``create_app(config, supervisor)`` is what the daemon serves. ``create_app()`` with no
arguments is for ``hypercorn 'trio_wrapper.api.app:create_app()' -k trio``: it reads the
config named by ``TRIO_WRAPPER_CONFIG`` (or defaults + env) and runs its own supervisor
in the app's nursery.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
import trio
from quart import Response, request, send_file
from quart_cors import cors
from quart_schema import (
    OpenAPIProvider,
    QuartSchema,
    document_querystring,
    document_request,
    document_response,
)
from quart_schema.validation import (
    QUART_SCHEMA_QUERYSTRING_ATTRIBUTE,
    QUART_SCHEMA_REQUEST_ATTRIBUTE,
    QUART_SCHEMA_RESPONSE_ATTRIBUTE,
)
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from trio_wrapper import __version__
from trio_wrapper.api.docs_ui import install_docs_ui
from trio_wrapper.api.errors import CODE_OF_STATUS, HttpRefusal
from trio_wrapper.api.metrics_routes import install_metrics_routes
from trio_wrapper.api.responses import error_response, json_response
from trio_wrapper.api.sse import SSEApp, install_sse_routes
from trio_wrapper.config import LOOPBACK_NAMES, Config, load_config
from trio_wrapper.core.errors import Refusal, invalid_request
from trio_wrapper.core.models import (
    AgentCreate,
    AgentDetail,
    AgentInput,
    AgentList,
    AgentListQuery,
    Deleted,
    DetailQuery,
    ErrorResponse,
    Health,
    InputAccepted,
    LogsQuery,
)
from trio_wrapper.core.status import Status
from trio_wrapper.core.timefmt import go_duration, now_local, rfc3339
from trio_wrapper.extract.store import MAX_LIMIT
from trio_wrapper.history.logtail import tail_lines
from trio_wrapper.metrics import MetricsModel
from trio_wrapper.runtime.agent import Agent, AgentSpec, StdinBlocked, StdinClosed
from trio_wrapper.runtime.hub import Hub, HubLimits
from trio_wrapper.runtime.supervisor import Supervisor, check_name

log = logging.getLogger("trio_wrapper.api")

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_TAIL = 100_000
T = TypeVar("T")


class _OpenAPIProvider(OpenAPIProvider):
    """quart-schema (0.25) inlines each msgspec model but drops the components its nested
    models ``$ref``; add the components of every model a route documents."""

    def schema(self) -> dict[str, Any]:
        schema = super().schema()
        models = _documented_models(self._app.view_functions.values())
        _, components = msgspec.json.schema_components(
            models, ref_template="#/components/schemas/{name}"
        )
        schema["components"]["schemas"] = {**components, **schema["components"]["schemas"]}
        return schema


def _documented_models(views: Iterable[Callable[..., Any]]) -> list[type[msgspec.Struct]]:
    found: list[Any] = []
    for view in views:
        found.append(getattr(view, QUART_SCHEMA_REQUEST_ATTRIBUTE, (None,))[0])
        found.append(getattr(view, QUART_SCHEMA_QUERYSTRING_ATTRIBUTE, None))
        for model, _headers in getattr(view, QUART_SCHEMA_RESPONSE_ATTRIBUTE, {}).values():
            found.append(model)
    unique = {m for m in found if isinstance(m, type) and issubclass(m, msgspec.Struct)}
    return sorted(unique, key=lambda m: m.__name__)


@dataclass
class AppState:
    config: Config
    supervisor: Supervisor
    started_at: Any = field(default_factory=now_local)
    started_mono: float = field(default_factory=time.monotonic)


def create_app(
    config: Config | None = None,
    supervisor: Supervisor | None = None,
    hub: Hub | None = None,
) -> QuartTrio:
    """The app over a supervisor and hub owned by the caller (the daemon), or over its own."""
    owns_supervisor = supervisor is None
    owns_hub = hub is None
    if config is None:
        config = load_config(os.environ.get("TRIO_WRAPPER_CONFIG") or None)
    if supervisor is None:
        supervisor = Supervisor(config, rules=config.rules())
    if hub is None:
        hub = Hub(hub_limits(config))
        supervisor.observers.append(hub)
    state = AppState(config, supervisor)

    app = SSEApp("trio_wrapper")
    app.config["MAX_CONTENT_LENGTH"] = config.limits.max_body_bytes
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = True
    app.extensions["trio_wrapper"] = state
    QuartSchema(
        app,
        openapi_path="/openapi.json",
        swagger_ui_path="/docs",
        redoc_ui_path=None,
        scalar_ui_path=None,
        info={"title": "trio_wrapper", "version": __version__},
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},
        openapi_provider_class=_OpenAPIProvider,
    )
    install_docs_ui(app)
    cors(
        app,
        allow_origin=config.cors.allow_origins,
        allow_credentials=config.cors.allow_credentials,
        allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        max_age=600,
    )
    _install_guards(app, state)
    _install_error_handlers(app)
    _install_routes(app, state)
    metrics = MetricsModel(supervisor, version=__version__, started_mono=state.started_mono)
    supervisor.observers.append(metrics)
    metrics.register_sse(hub)
    install_metrics_routes(app, state, metrics)

    install_sse_routes(app, hub, supervisor)

    if owns_hub:

        @app.before_serving
        async def _start_sweeper() -> None:
            await app.nursery.start(hub.run)

        if not owns_supervisor:

            @app.after_serving
            async def _stop_hub() -> None:
                await hub.shutdown()

    if owns_supervisor:
        grace = config.agents.stop_grace_seconds
        # quart-trio then gives the app's nursery a deadline on shutdown instead of
        # cancelling it at once, so after_serving can stop the agents in order.
        app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = grace + 5

        @app.before_serving
        async def _start_supervisor() -> None:
            await app.nursery.start(supervisor.run)

        @app.after_serving
        async def _stop_supervisor() -> None:
            await hub.shutdown()
            await supervisor.shutdown()

    return app


def hub_limits(config: Config) -> HubLimits:
    sse = config.sse
    return HubLimits(
        client_buffer=sse.client_buffer,
        retained_per_agent=sse.retained_events_per_agent,
        retained_global=sse.retained_events_global,
        max_clients=sse.max_clients,
        max_clients_per_agent=sse.max_clients_per_agent,
        ping_interval=sse.ping_interval_seconds,
        stall_timeout=sse.stall_timeout_seconds,
        sweep_interval=sse.sweep_interval_seconds,
    )


def _allowed_hosts(config: Config) -> frozenset[str]:
    return frozenset({*LOOPBACK_NAMES, config.server.host, *config.server.allowed_hosts})


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[: host_header.find("]") + 1]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def _install_guards(app: QuartTrio, state: AppState) -> None:
    hosts = _allowed_hosts(state.config)
    any_host = "*" in hosts
    token = state.config.token

    @app.before_request
    async def _guard() -> Response | None:
        if not any_host and _host_name(request.host) not in hosts:
            # DNS-rebinding guard: a page on evil.example resolving to 127.0.0.1 sends
            # its own host name, which is not ours.
            return error_response(
                Refusal("host_not_allowed", f"host {request.host!r} is not allowed")
            )
        if request.method == "OPTIONS" or not token:
            return None
        if request.method in MUTATING or state.config.auth.protect_reads:
            supplied = ""
            header = request.headers.get("Authorization", "")
            if header.startswith("Bearer "):
                supplied = header[7:].strip()
            elif "access_token" in request.args:
                supplied = request.args["access_token"]
            if not hmac.compare_digest(supplied.encode(), token.encode()):
                return error_response(
                    Refusal("unauthorized", "a valid 'Authorization: Bearer' token is required")
                )
        return None


def _install_error_handlers(app: QuartTrio) -> None:
    @app.errorhandler(Refusal)
    async def _api_error(err: Refusal) -> Response:
        return error_response(err)

    @app.errorhandler(HTTPException)
    async def _http_error(err: HTTPException) -> Response:
        status = err.code or 500
        code = CODE_OF_STATUS.get(status, "http_error")
        message = err.description or err.name
        if status == 413:
            message = f"request body larger than {app.config['MAX_CONTENT_LENGTH']} bytes"
        return error_response(HttpRefusal(status, code, message))

    @app.errorhandler(Exception)
    async def _unexpected(err: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(Refusal("internal_error", "internal error; see the daemon log"))


async def read_json(model: type[T], max_bytes: int) -> T:
    if request.mimetype != "application/json":
        raise Refusal("unsupported_media_type", "send the body as application/json")
    if request.content_length is not None and request.content_length > max_bytes:
        raise Refusal("body_too_large", f"request body larger than {max_bytes} bytes")
    body = await request.get_data(cache=False, as_text=False)
    try:
        return msgspec.json.decode(body, type=model)
    except msgspec.ValidationError as exc:
        raise invalid_request(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise invalid_request(f"malformed JSON: {exc}") from exc


def parse_query(model: type[T]) -> T:
    try:
        return msgspec.convert(dict(request.args), model, strict=False)
    except msgspec.ValidationError as exc:
        raise invalid_request(f"bad query string: {exc}") from exc


def resolve_spec(body: AgentCreate, config: Config) -> AgentSpec:
    """Turn a request into an argv: the three command forms of the contract."""
    check_name(body.name)
    if body.timeout_seconds is not None and body.timeout_seconds <= 0:
        raise invalid_request("timeout_seconds must be positive")
    fmt: str | None = body.format
    if body.profile is not None:
        if body.command is not None or body.args is not None:
            raise invalid_request("give either 'profile' or 'command', not both")
        profile = config.profiles.get(body.profile)
        if profile is None:
            raise Refusal("unknown_profile", f"no profile named {body.profile!r}")
        if any("{prompt}" in arg for arg in profile.command) and body.prompt is None:
            raise invalid_request(f"profile {body.profile!r} needs a 'prompt'")
        argv = [arg.replace("{prompt}", body.prompt or "") for arg in profile.command]
        fmt = fmt or profile.format
    else:
        if body.prompt is not None:
            raise invalid_request("'prompt' goes with 'profile'")
        if body.command is None:
            raise invalid_request("'command' (argv list) or 'profile' is required")
        if isinstance(body.command, str):
            argv = [body.command, *(body.args or [])]
        else:
            if body.args is not None:
                raise invalid_request("'args' goes with a string 'command'")
            argv = list(body.command)
    if not argv or not argv[0]:
        raise invalid_request("'command' must name an executable")
    if any("\x00" in arg for arg in argv):
        raise invalid_request("command arguments must not contain NUL")
    return AgentSpec(
        name=body.name,
        command=argv,
        cwd=body.cwd,
        env=dict(body.env),
        format=fmt or config.agents.default_format,
        stdin=body.stdin,
        pty=body.pty,
        timeout_seconds=body.timeout_seconds,
        profile=body.profile,
    )


def agent_detail(agent: Agent, matches_limit: int | None = None) -> dict[str, Any]:
    out = agent.detail()
    out["extraction"] = agent.extraction_summary()
    if agent.spec.format == "auto" and agent.extraction.format != "auto":
        out["format"] = agent.extraction.format  # what auto detection decided
    if matches_limit is not None:
        out["matches"] = agent.extraction.matches(matches_limit)
    return out


def _install_routes(app: QuartTrio, state: AppState) -> None:
    config, supervisor = state.config, state.supervisor
    max_body = config.limits.max_body_bytes

    def route(path: str, methods: list[str]) -> Callable[[Any], Any]:
        return app.route(path, methods=methods)

    @route("/api/health", ["GET"])
    @document_response(Health, 200)
    @document_response(Health, 503)
    async def health() -> Response:
        """Daemon health and uptime; 503 ``degraded`` with ``problems`` when unwell."""
        uptime = time.monotonic() - state.started_mono
        problems = []
        if not os.access(supervisor.logs_dir, os.W_OK):
            problems.append(f"logs dir {str(supervisor.logs_dir)!r} is not writable")
        problems.extend(
            f"agent {a.name}: {a.problem}"
            for a in supervisor.agents.values()
            if a.problem and a.is_live
        )
        body: dict[str, Any] = {
            "status": "degraded" if problems else "healthy",
            "uptime": go_duration(uptime),
            "uptime_seconds": round(uptime, 3),
            "agents": len(supervisor.agents),
            "started_at": rfc3339(state.started_at),
            "version": __version__,
        }
        if problems:
            body["problems"] = problems
        return json_response(body, 503 if problems else 200)

    @route("/api/agents", ["GET"])
    @document_querystring(AgentListQuery)
    @document_response(AgentList)
    async def list_agents() -> Response:
        """All agents listed (live and past runs); ``?status=running`` filters."""
        query = parse_query(AgentListQuery)
        if query.status is not None and query.status not in {s.value for s in Status}:
            raise invalid_request(f"unknown status {query.status!r}")
        agents = [
            a.summary()
            for a in supervisor.agents.values()
            if query.status is None or a.status.value == query.status
        ]
        return json_response({"agents": agents, "count": len(agents)})

    @route("/api/agents", ["POST"])
    @document_request(AgentCreate)
    @document_response(AgentDetail, 201)
    @document_response(ErrorResponse, 400)
    @document_response(ErrorResponse, 422)
    async def create_agent() -> Response:
        """Create and start an agent. The child never runs through a shell."""
        body = await read_json(AgentCreate, max_body)
        spec = resolve_spec(body, config)
        agent = await supervisor.start(spec)
        return json_response(agent_detail(agent), 201)

    @route("/api/agents/<name>", ["GET"])
    @document_querystring(DetailQuery)
    @document_response(AgentDetail)
    @document_response(ErrorResponse, 404)
    async def get_agent(name: str) -> Response:
        """One agent's detail; ``include_matches=true`` adds the most recent ``limit``
        records of each kind (default 100, at most 10000)."""
        agent = supervisor.get(name)
        query = parse_query(DetailQuery)
        if not 1 <= query.limit <= MAX_LIMIT:
            raise invalid_request(f"limit must be between 1 and {MAX_LIMIT}")
        return json_response(agent_detail(agent, query.limit if query.include_matches else None))

    @route("/api/agents/<name>", ["DELETE"])
    @document_response(Deleted)
    @document_response(ErrorResponse, 404)
    async def delete_agent(name: str) -> Response:
        """Stop the agent if it runs (group SIGTERM, grace, SIGKILL), wait, unlist it."""
        agent = await supervisor.remove(name)
        return json_response(
            {
                "message": "agent stopped",
                "name": agent.name,
                "status": agent.status.value,
                "exit_code": agent.exit_code,
            }
        )

    @route("/api/agents/<name>/input", ["POST"])
    @document_request(AgentInput)
    @document_response(InputAccepted)
    @document_response(ErrorResponse, 409)
    async def agent_input(name: str) -> Response:
        """Write to the agent's stdin (started with ``stdin: true``), or close it."""
        agent = supervisor.get(name)
        body = await read_json(AgentInput, max_body)
        data = body.data.encode()
        try:
            await agent.write_input(
                data, eof=body.eof, write_timeout=config.agents.stdin_write_timeout_seconds
            )
        except StdinClosed:
            raise Refusal("stdin_not_open", f"agent {name!r} has no open stdin") from None
        except StdinBlocked:
            raise Refusal(
                "stdin_blocked", f"agent {name!r} did not read its stdin in time"
            ) from None
        return json_response({"written": len(data), "eof": body.eof})

    @route("/api/agents/<name>/logs", ["GET"])
    @document_querystring(LogsQuery)
    async def agent_logs(name: str) -> Response:
        """The run's raw log as text/plain; ``tail=N`` for the last N lines."""
        agent = supervisor.get(name)
        query = parse_query(LogsQuery)
        path = agent.files.log(query.stream)
        if not path.exists():
            raise Refusal("log_not_found", f"no {query.stream} log for {name!r}")
        if query.tail is None:
            response = await send_file(path, mimetype="text/plain")
            response.headers["Content-Type"] = "text/plain; charset=utf-8"
            return response
        if not 0 < query.tail <= MAX_TAIL:
            raise invalid_request(f"tail must be between 1 and {MAX_TAIL}")
        data = await trio.to_thread.run_sync(tail_lines, path, query.tail)
        return Response(data, content_type="text/plain; charset=utf-8")
