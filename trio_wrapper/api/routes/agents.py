"""/api/agents: list, create, detail, delete, stdin input, raw logs."""

from __future__ import annotations

import trio
from quart import Response, send_file
from quart_schema import document_querystring, document_request, document_response
from quart_trio import QuartTrio

from trio_wrapper.api.requests import parse_query, read_json
from trio_wrapper.api.responses import json_response
from trio_wrapper.api.state import AppState
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
    InputAccepted,
    LogsQuery,
)
from trio_wrapper.core.profiles import resolve_spec
from trio_wrapper.core.status import Status
from trio_wrapper.history.logtail import tail_lines
from trio_wrapper.runtime import views
from trio_wrapper.runtime.process import StdinBlocked, StdinClosed

_STATUSES = frozenset(s.value for s in Status)


def install(app: QuartTrio, state: AppState) -> None:
    config, supervisor = state.config, state.supervisor
    limits = config.limits
    max_body, max_depth = limits.max_body_bytes, limits.max_json_depth

    @app.route("/api/agents", methods=["GET"])
    @document_querystring(AgentListQuery)
    @document_response(AgentList)
    async def list_agents() -> Response:
        """All agents listed (live and past runs); ``?status=running`` filters."""
        query = parse_query(AgentListQuery)
        if query.status is not None and query.status not in _STATUSES:
            raise invalid_request(f"unknown status {query.status!r}")
        agents = [
            views.summary(a)
            for a in supervisor.agents.values()
            if query.status is None or a.status.value == query.status
        ]
        return json_response(AgentList(agents=agents, count=len(agents)))

    @app.route("/api/agents", methods=["POST"])
    @document_request(AgentCreate)
    @document_response(AgentDetail, 201)
    @document_response(ErrorResponse, 400)
    @document_response(ErrorResponse, 422)
    async def create_agent() -> Response:
        """Create and start an agent. The child never runs through a shell."""
        body = await read_json(AgentCreate, max_body, max_depth)
        spec = resolve_spec(
            body,
            config.profiles,
            config.agents.default_format,
            max_name_length=limits.max_name_length,
        )
        agent = await supervisor.start(spec)
        return json_response(views.detail(agent), 201)

    @app.route("/api/agents/<name>", methods=["GET"])
    @document_querystring(DetailQuery)
    @document_response(AgentDetail)
    @document_response(ErrorResponse, 404)
    async def get_agent(name: str) -> Response:
        """One agent's detail; ``include_matches=true`` adds the most recent ``limit``
        records of each kind (default 100, at most ``limits.max_records``, 10000)."""
        agent = supervisor.get(name)
        query = parse_query(DetailQuery)
        if not 1 <= query.limit <= limits.max_records:
            raise invalid_request(f"limit must be between 1 and {limits.max_records}")
        return json_response(views.detail(agent, query.limit if query.include_matches else None))

    @app.route("/api/agents/<name>", methods=["DELETE"])
    @document_response(Deleted)
    @document_response(ErrorResponse, 404)
    async def delete_agent(name: str) -> Response:
        """Stop the agent if it runs (group SIGTERM, grace, SIGKILL), wait, unlist it."""
        agent = await supervisor.remove(name)
        return json_response(views.deleted(agent))

    @app.route("/api/agents/<name>/input", methods=["POST"])
    @document_request(AgentInput)
    @document_response(InputAccepted)
    @document_response(ErrorResponse, 409)
    async def agent_input(name: str) -> Response:
        """Write to the agent's stdin (started with ``stdin: true``), or close it."""
        agent = supervisor.get(name)
        body = await read_json(AgentInput, max_body, max_depth)
        data = body.data.encode()  # msgspec refuses lone surrogates: always UTF-8
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
        return json_response(InputAccepted(written=len(data), eof=body.eof))

    @app.route("/api/agents/<name>/logs", methods=["GET"])
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
        if not 0 < query.tail <= limits.max_tail_lines:
            raise invalid_request(f"tail must be between 1 and {limits.max_tail_lines}")
        data = await trio.to_thread.run_sync(tail_lines, path, query.tail)
        return Response(data, content_type="text/plain; charset=utf-8")
