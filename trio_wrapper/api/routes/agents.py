"""/api/agents: list, create, detail, stop, restart, delete (one or many), stdin input,
raw logs. A name's runs are in ``api.routes.agent_runs``."""

from __future__ import annotations

from quart import Response
from quart_schema import document_querystring, document_request, document_response
from quart_trio import QuartTrio

from trio_wrapper.api.requests import parse_query, read_json
from trio_wrapper.api.responses import json_response
from trio_wrapper.api.routes import agent_runs, interactive
from trio_wrapper.api.routes.run_answers import detail_response, log_response
from trio_wrapper.api.state import AppState
from trio_wrapper.api.stdin_refusals import stdin_refusals
from trio_wrapper.core.choices import one_of
from trio_wrapper.core.errors import invalid_request
from trio_wrapper.core.models import (
    AgentCreate,
    AgentDetail,
    AgentInput,
    AgentList,
    AgentListQuery,
    Deleted,
    DeletedMany,
    DeleteManyQuery,
    DetailQuery,
    ErrorResponse,
    ForceQuery,
    InputAccepted,
    LogsQuery,
    Stopped,
)
from trio_wrapper.core.profiles import resolve_spec
from trio_wrapper.core.status import Status
from trio_wrapper.runtime import views

_STATUS_LIST = [s.value for s in Status]
_STATUSES = frozenset(_STATUS_LIST)


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
            raise invalid_request(f"unknown status {query.status!r} {one_of(_STATUS_LIST)}")
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
        return await detail_response(agent, limits)

    @app.route("/api/agents/<name>", methods=["DELETE"])
    @document_querystring(ForceQuery)
    @document_response(Deleted)
    @document_response(ErrorResponse, 404)
    async def delete_agent(name: str) -> Response:
        """Stop the agent if it runs (group SIGTERM, grace, SIGKILL; ``force=true``: no
        grace), wait, unlist it. Its runs stay on disk (``/api/agents/<name>/runs``)."""
        query = parse_query(ForceQuery)
        agent = await supervisor.remove(name, force=query.force)
        return json_response(views.deleted(agent))

    @app.route("/api/agents", methods=["DELETE"])
    @document_querystring(DeleteManyQuery)
    @document_response(DeletedMany)
    @document_response(ErrorResponse, 400)
    async def delete_agents() -> Response:
        """DELETE every listed agent with a status in ``status`` (required; comma-separated,
        e.g. ``completed,failed``), all at once; ``force=true``: no grace."""
        query = parse_query(DeleteManyQuery)
        statuses = _statuses(query.status)
        removed = await supervisor.remove_all(statuses, force=query.force)
        deleted = [views.deleted(agent) for agent in removed]
        return json_response(DeletedMany(deleted=deleted, count=len(deleted)))

    @app.route("/api/agents/<name>/stop", methods=["POST"])
    @document_querystring(ForceQuery)
    @document_response(Stopped)
    @document_response(ErrorResponse, 404)
    async def stop_agent(name: str) -> Response:
        """Stop the agent (group SIGTERM, grace, SIGKILL; ``force=true``: no grace) and wait
        for its end; it stays listed. An agent that is not running is left as it is."""
        query = parse_query(ForceQuery)
        was_live = supervisor.get(name).is_live
        agent = await supervisor.stop(name, force=query.force)
        return json_response(views.stopped(agent, was_live))

    @app.route("/api/agents/<name>/restart", methods=["POST"])
    @document_querystring(ForceQuery)
    @document_response(AgentDetail, 201)
    @document_response(ErrorResponse, 404)
    @document_response(ErrorResponse, 409)
    async def restart_agent(name: str) -> Response:
        """Stop the agent if it runs (as ``stop``), then start a new run of the same
        command under the same name. The previous run stays in ``runs``."""
        query = parse_query(ForceQuery)
        agent = await supervisor.restart(name, force=query.force)
        return json_response(views.detail(agent), 201)

    @app.route("/api/agents/<name>/input", methods=["POST"])
    @document_request(AgentInput)
    @document_response(InputAccepted)
    @document_response(ErrorResponse, 409)
    async def agent_input(name: str) -> Response:
        """Write to the agent's stdin (started with ``stdin: true``), or close it."""
        agent = supervisor.get(name)
        body = await read_json(AgentInput, max_body, max_depth)
        data = body.data.encode()  # msgspec refuses lone surrogates: always UTF-8
        with stdin_refusals(name):
            await agent.write_input(
                data, eof=body.eof, write_timeout=config.agents.stdin_write_timeout_seconds
            )
        return json_response(InputAccepted(written=len(data), eof=body.eof))

    @app.route("/api/agents/<name>/logs", methods=["GET"])
    @document_querystring(LogsQuery)
    async def agent_logs(name: str) -> Response:
        """The run's raw log as text/plain; ``tail=N`` for the last N lines."""
        return await log_response(supervisor.get(name), limits)

    agent_runs.install(app, state)
    interactive.install(app, state)


def _statuses(raw: str | None) -> frozenset[Status]:
    if not raw:
        raise invalid_request(
            "status is required: one status or several, comma-separated (e.g. completed,failed)"
        )
    names = [part.strip() for part in raw.split(",")]
    unknown = [part for part in names if part not in _STATUSES]
    if unknown:
        raise invalid_request(f"unknown status {unknown[0]!r} {one_of(_STATUS_LIST)}")
    return frozenset(Status(part) for part in names)
