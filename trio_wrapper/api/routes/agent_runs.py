"""/api/agents/<name>/runs: every run of a name, listed or not, from its files on disk.

A run's id is ``<name>/<stamp>`` (its files' stamp). The detail and logs of any run are
served from its files, also after a DELETE (which unlists, never erases) and after a
daemon restart; its stream is in ``api.sse``.
"""

from __future__ import annotations

from quart import Response
from quart_schema import document_querystring, document_response
from quart_trio import QuartTrio

from trio_wrapper.api.responses import json_response
from trio_wrapper.api.routes.run_answers import detail_response, log_response
from trio_wrapper.api.state import AppState
from trio_wrapper.core.errors import Refusal
from trio_wrapper.core.models import (
    AgentDetail,
    DetailQuery,
    ErrorResponse,
    LogsQuery,
    NameRuns,
    RunEntry,
    RunSummary,
    RunUsage,
)
from trio_wrapper.history.index import RunIndex
from trio_wrapper.runtime import views

# The most runs of one name whose usage is looked up in the index at once.
MAX_USAGE_RUNS = 1000


def install(app: QuartTrio, state: AppState) -> None:
    supervisor, limits = state.supervisor, state.config.limits

    @app.route("/api/agents/<name>/runs", methods=["GET"])
    @document_response(NameRuns)
    @document_response(ErrorResponse, 404)
    async def list_name_runs(name: str) -> Response:
        """Every run of the name on disk, newest first: status, times, exit, counts. The
        listed run (``listed: true``) shows its current figures; DELETEd runs are here too."""
        runs = await supervisor.runs(name)
        listed = supervisor.agents.get(name)
        out = [views.run_summary(run, run is listed) for run in runs]
        await _add_usage(name, out)
        return json_response(NameRuns(name=name, runs=out, count=len(out)))

    async def _add_usage(name: str, summaries: list[RunSummary]) -> None:
        """Each ended run's tokens and cost, as the run index has them."""
        if state.index is None:
            return

        def of_name(index: RunIndex) -> list[RunEntry]:
            return index.runs(name=name, limit=MAX_USAGE_RUNS)

        try:
            entries = {entry.id: entry for entry in await state.index.query(of_name)}
        except Refusal:  # index_unavailable: the runs are listed without their usage
            return
        for summary in summaries:
            entry = entries.get(summary.id)
            if entry is not None and entry.usage:
                summary.usage = RunUsage(
                    tokens=entry.tokens, cost_usd=entry.cost_usd, models=entry.usage
                )

    @app.route("/api/agents/<name>/runs/<stamp>", methods=["GET"])
    @document_querystring(DetailQuery)
    @document_response(AgentDetail)
    @document_response(ErrorResponse, 404)
    async def run_detail(name: str, stamp: str) -> Response:
        """One run's detail, as ``GET /api/agents/<name>`` shows a listed one;
        ``include_matches=true`` reads a past run's records from its events file."""
        return await detail_response(await supervisor.run_of(name, stamp), limits)

    @app.route("/api/agents/<name>/runs/<stamp>/logs", methods=["GET"])
    @document_querystring(LogsQuery)
    async def run_logs(name: str, stamp: str) -> Response:
        """One run's raw log as text/plain; ``tail=N`` for the last N lines."""
        return await log_response(await supervisor.run_of(name, stamp), limits)
