"""GET /api/health."""

from __future__ import annotations

import os
import time
from pathlib import Path

from quart import Response
from quart_schema import document_response
from quart_trio import QuartTrio

from trio_wrapper import __version__
from trio_wrapper.api.responses import json_response
from trio_wrapper.api.state import AppState
from trio_wrapper.core.models import Health
from trio_wrapper.core.timefmt import go_duration, rfc3339

# Less free space than this in the logs dir (one read's worth of output) and the next
# log write may well fail: health says so before an agent loses bytes to it.
MIN_FREE_BYTES = 64 * 1024


def logs_dir_problems(logs_dir: Path) -> list[str]:
    """What keeps the logs dir from taking output: not writable, or full. One access()
    and one statvfs(): cheap enough for every health request."""
    if not os.access(logs_dir, os.W_OK):
        return [f"logs dir {str(logs_dir)!r} is not writable"]
    try:
        fs = os.statvfs(logs_dir)
    except OSError as exc:
        return [f"logs dir {str(logs_dir)!r}: {exc.strerror or exc}"]
    free = fs.f_bavail * fs.f_frsize
    if free < MIN_FREE_BYTES:
        return [f"logs dir {str(logs_dir)!r} is full ({free} bytes free)"]
    # Some filesystems report no inode counts at all (f_files 0): only a real 0 counts.
    if fs.f_files and not fs.f_favail:
        return [f"logs dir {str(logs_dir)!r} has no free inodes"]
    return []


def install(app: QuartTrio, state: AppState) -> None:
    supervisor = state.supervisor

    @app.route("/api/health", methods=["GET"])
    @document_response(Health, 200)
    @document_response(Health, 503)
    async def health() -> Response:
        """Daemon health and uptime; 503 ``degraded`` with ``problems`` when unwell."""
        uptime = time.monotonic() - state.started_mono
        problems = logs_dir_problems(supervisor.logs_dir)
        problems.extend(
            f"agent {agent.name}: {fault}"
            for agent in supervisor.agents.values()
            for fault in agent.unresolved_faults()
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
