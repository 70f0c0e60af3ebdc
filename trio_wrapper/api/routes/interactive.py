"""/api/agents/<name>/message and /screen: talking to an agent while it runs, and what
its terminal shows (``runtime.interactive``)."""

from __future__ import annotations

from quart import Response
from quart_schema import document_request, document_response
from quart_trio import QuartTrio

from trio_wrapper.api.requests import read_json
from trio_wrapper.api.responses import json_response
from trio_wrapper.api.state import AppState
from trio_wrapper.api.stdin_refusals import stdin_refusals
from trio_wrapper.core.errors import Refusal
from trio_wrapper.core.models import AgentMessage, ErrorResponse, MessageDelivered, Screen
from trio_wrapper.runtime.interactive import refuse_screen


def install(app: QuartTrio, state: AppState) -> None:
    config, supervisor = state.config, state.supervisor
    limits = config.limits

    @app.route("/api/agents/<name>/message", methods=["POST"])
    @document_request(AgentMessage)
    @document_response(MessageDelivered)
    @document_response(ErrorResponse, 404)
    @document_response(ErrorResponse, 409)
    async def agent_message(name: str) -> Response:
        """One user turn: typed into a PTY agent (``pty`` and ``stdin``) followed by the
        Enter its CLI expects, or written as a stream-json user message to claude started
        with ``--input-format stream-json`` (while a permission prompt waits: its
        answer, "yes" allowing the tool). 409 where it cannot be delivered."""
        agent = supervisor.get(name)
        body = await read_json(AgentMessage, limits.max_body_bytes, limits.max_json_depth)
        if not agent.is_live or agent.status.is_terminal:
            raise Refusal(
                "agent_not_running", f"agent {name!r} is {agent.status.value}: no one to tell"
            )
        with stdin_refusals(name, "input"):
            done = await agent.send_message(
                body.text, write_timeout=config.agents.stdin_write_timeout_seconds
            )
        return json_response(
            MessageDelivered(
                delivered=done.delivery,
                written=done.written,
                answered=done.answered.tool if done.answered is not None else None,
                allowed=done.allowed,
                status=agent.status,
            )
        )

    @app.route("/api/agents/<name>/screen", methods=["GET"])
    @document_response(Screen)
    @document_response(ErrorResponse, 404)
    @document_response(ErrorResponse, 409)
    async def agent_screen(name: str) -> Response:
        """A PTY agent's screen as text, as a terminal emulator renders its output (its
        last screen once it has ended). 409 for an agent without a terminal."""
        agent = supervisor.get(name)
        interaction = agent.interaction
        shown = await interaction.screen_text() if interaction is not None else None
        if shown is None:
            raise refuse_screen(name)
        lines = shown.lines
        end = len(lines)
        while end and not lines[end - 1]:
            end -= 1
        return json_response(
            Screen(
                name=agent.name,
                status=agent.status,
                rows=shown.rows,
                cols=shown.cols,
                cursor=[shown.cursor_row, shown.cursor_col],
                lines=lines,
                text="\n".join(lines[:end]),
            )
        )
