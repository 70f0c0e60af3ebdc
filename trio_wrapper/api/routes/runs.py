"""/api/runs and /api/usage: the run index (``runtime.runindex``), newest first."""

from __future__ import annotations

from quart import Response
from quart_schema import document_querystring, document_response
from quart_trio import QuartTrio

from trio_wrapper.api.requests import parse_query
from trio_wrapper.api.responses import json_response
from trio_wrapper.api.state import AppState
from trio_wrapper.core.errors import Refusal, invalid_request
from trio_wrapper.core.models import (
    ErrorResponse,
    RunEntry,
    RunList,
    RunsQuery,
    UsageGroup,
    UsageQuery,
    UsageReport,
)
from trio_wrapper.core.status import Status
from trio_wrapper.history.index import GROUP_BY, RunIndex, parse_moment
from trio_wrapper.runtime.runindex import IndexService

MAX_RUNS = 1000
_STATUSES = tuple(s.value for s in Status)


def _moment(field: str, value: str | None) -> float | None:
    if value is None:
        return None
    moment = parse_moment(value)
    if moment is None:
        raise invalid_request(
            f"bad query string: {field} {value!r} is not a time "
            "(RFC 3339, e.g. 2026-12-06T08:00:00+00:00, or a date, e.g. 2026-12-06)"
        )
    return moment


def _service(state: AppState) -> IndexService:
    if state.index is None:
        raise Refusal("index_unavailable", "the run index is not running")
    return state.index


def install(app: QuartTrio, state: AppState) -> None:
    @app.route("/api/runs", methods=["GET"])
    @document_querystring(RunsQuery)
    @document_response(RunList)
    @document_response(ErrorResponse, 400)
    @document_response(ErrorResponse, 503)
    async def list_runs() -> Response:
        """Runs found in the logs dir (live, past, DELETEd), newest first, with their
        usage and the files they touched. Filters: ``name``, ``status``, ``since`` /
        ``until`` (on ``started_at``), ``limit`` (1..1000, default 100)."""
        query = parse_query(RunsQuery)
        if query.status is not None and query.status not in _STATUSES:
            raise invalid_request(
                f"unknown status {query.status!r} (one of: {', '.join(_STATUSES)})"
            )
        if not 1 <= query.limit <= MAX_RUNS:
            raise invalid_request(f"limit must be between 1 and {MAX_RUNS}")
        since, until = _moment("since", query.since), _moment("until", query.until)
        service = _service(state)

        def runs(index: RunIndex) -> list[RunEntry]:
            return index.runs(
                name=query.name, status=query.status, since=since, until=until, limit=query.limit
            )

        found = await service.query(runs)
        return json_response(RunList(runs=found, count=len(found)))

    @app.route("/api/usage", methods=["GET"])
    @document_querystring(UsageQuery)
    @document_response(UsageReport)
    @document_response(ErrorResponse, 400)
    @document_response(ErrorResponse, 503)
    async def usage() -> Response:
        """Tokens and cost of the runs started in [``since``, ``until``), grouped by
        ``group_by`` (``day``, ``name``, ``model`` or ``profile``; default ``day``)."""
        query = parse_query(UsageQuery)
        if query.group_by not in GROUP_BY:
            raise invalid_request(
                f"unknown group_by {query.group_by!r} (one of: {', '.join(GROUP_BY)})"
            )
        since, until = _moment("since", query.since), _moment("until", query.until)
        service = _service(state)

        def totals(index: RunIndex) -> tuple[list[UsageGroup], UsageGroup]:
            return index.usage(group_by=query.group_by, since=since, until=until)

        groups, total = await service.query(totals)
        report = UsageReport(
            group_by=query.group_by,
            since=query.since,
            until=query.until,
            groups=groups,
            total=total,
        )
        return json_response(report)
