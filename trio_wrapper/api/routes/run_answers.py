"""What a run's detail and logs routes answer, for a listed agent and a past run alike."""

from __future__ import annotations

import trio
from quart import Response, send_file

from trio_wrapper.api.requests import parse_query
from trio_wrapper.api.responses import json_response
from trio_wrapper.config import LimitsConfig
from trio_wrapper.core.errors import Refusal, invalid_request
from trio_wrapper.core.models import DetailQuery, LogsQuery
from trio_wrapper.history.logtail import tail_lines
from trio_wrapper.runtime import views
from trio_wrapper.runtime.agent import Agent


async def detail_response(agent: Agent, limits: LimitsConfig) -> Response:
    """An agent's (or a run's) detail; ``include_matches`` reads a past run's records
    from its events file the first time."""
    query = parse_query(DetailQuery)
    if not 1 <= query.limit <= limits.max_records:
        raise invalid_request(f"limit must be between 1 and {limits.max_records}")
    if query.include_matches:
        await agent.load_records()
    return json_response(views.detail(agent, query.limit if query.include_matches else None))


async def log_response(agent: Agent, limits: LimitsConfig) -> Response:
    """A run's raw log as text/plain; ``tail=N`` for the last N lines."""
    query = parse_query(LogsQuery)
    path = agent.files.log(query.stream)
    if not path.exists():
        raise Refusal("log_not_found", f"no {query.stream} log for {agent.name!r}")
    if query.tail is None:
        response = await send_file(path, mimetype="text/plain")
        response.headers["Content-Type"] = "text/plain; charset=utf-8"
        return response
    if not 0 < query.tail <= limits.max_tail_lines:
        raise invalid_request(f"tail must be between 1 and {limits.max_tail_lines}")
    data = await trio.to_thread.run_sync(tail_lines, path, query.tail)
    return Response(data, content_type="text/plain; charset=utf-8")
