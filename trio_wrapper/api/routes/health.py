"""GET /api/health."""

from __future__ import annotations

import os
import time

from quart import Response
from quart_schema import document_response
from quart_trio import QuartTrio

from trio_wrapper import __version__
from trio_wrapper.api.responses import json_response
from trio_wrapper.api.state import AppState
from trio_wrapper.core.models import Health
from trio_wrapper.core.timefmt import go_duration, rfc3339


def install(app: QuartTrio, state: AppState) -> None:
    supervisor = state.supervisor

    @app.route("/api/health", methods=["GET"])
    @document_response(Health, 200)
    @document_response(Health, 503)
    async def health() -> Response:
        """Daemon health and uptime; 503 ``degraded`` with ``problems`` when unwell."""
        uptime = time.monotonic() - state.started_mono
        problems: list[str] = []
        if not os.access(supervisor.logs_dir, os.W_OK):
            problems.append(f"logs dir {str(supervisor.logs_dir)!r} is not writable")
        problems.extend(
            f"agent {a.name}: {a.problem}"
            for a in supervisor.agents.values()
            if a.problem and a.is_live
        )
        body = Health(
            status="degraded" if problems else "healthy",
            uptime=go_duration(uptime),
            uptime_seconds=round(uptime, 3),
            agents=len(supervisor.agents),
            started_at=rfc3339(state.started_at),
            version=__version__,
        )
        if problems:
            body.problems = problems
        return json_response(body, 503 if problems else 200)
