"""The HTTP API: a thin Quart-Trio app over the supervisor. Wiring only; the routes are
in ``api.routes``, the guards in ``api.guards``, the error handlers in ``api.handlers``.

``create_app(config, supervisor, hub)`` is what the daemon serves. ``create_app()`` with
no arguments is for ``hypercorn 'trio_wrapper.api.app:create_app()' -k trio``: it reads
the config named by ``TRIO_WRAPPER_CONFIG`` (or defaults + env) and starts and stops its
own hub and supervisor in the app's nursery, in the daemon's order
(``runtime.lifecycle``).
"""

from __future__ import annotations

import logging
import os
import sys

from quart_cors import cors
from quart_schema import QuartSchema
from quart_trio import QuartTrio

from trio_wrapper import __version__
from trio_wrapper.api.docs_ui import install_docs_ui
from trio_wrapper.api.guards import install_guards
from trio_wrapper.api.handlers import install_error_handlers
from trio_wrapper.api.logredact import install_log_redaction
from trio_wrapper.api.openapi import DocumentedModelsProvider
from trio_wrapper.api.protocol_errors import install_json_protocol_errors
from trio_wrapper.api.routes import agents, dashboard, health, metrics, runs
from trio_wrapper.api.sse import SSEApp, install_sse_routes
from trio_wrapper.api.state import AppState
from trio_wrapper.config import Config, load_config
from trio_wrapper.core.logformat import configure, log_format
from trio_wrapper.metrics import MetricsModel
from trio_wrapper.runtime.descriptors import Descriptors
from trio_wrapper.runtime.eventlog import LIMIT_LOG, AgentEventLog
from trio_wrapper.runtime.hub import Hub
from trio_wrapper.runtime.lifecycle import Lifecycle, hub_limits
from trio_wrapper.runtime.runindex import IndexService
from trio_wrapper.runtime.supervisor import Supervisor
from trio_wrapper.runtime.tasks import TaskCount

DAEMON_LOGGER = "trio_wrapper"
# How long quart-trio gives the app's nursery on shutdown beyond the agents' stop grace.
SHUTDOWN_MARGIN_SECONDS = 5


def create_app(
    config: Config | None = None,
    supervisor: Supervisor | None = None,
    hub: Hub | None = None,
    index: IndexService | None = None,
) -> QuartTrio:
    """The app over a supervisor, hub and run index owned by the caller (the daemon), or
    over its own: a part not given is created here and started and stopped with the app."""
    if config is None:
        config = load_config(os.environ.get("TRIO_WRAPPER_CONFIG") or None)
        _own_logging(config)
    owns_supervisor, owns_hub, owns_index = supervisor is None, hub is None, index is None
    # The daemon's parts share the daemon's budget; parts made here share one of their own.
    descriptors = Descriptors(config.limits.fd_reserve) if owns_supervisor and owns_hub else None
    if supervisor is None:
        supervisor = Supervisor(config, rules=config.rules(), descriptors=descriptors)
    if hub is None:
        hub = Hub(hub_limits(config), descriptors)
        supervisor.observers.append(hub)
    if index is None:
        index = IndexService(config, supervisor.agents)
        supervisor.observers.append(index)
    app = build_app(AppState(config, supervisor, index), hub)
    if owns_hub or owns_supervisor or owns_index:
        owned = Lifecycle(
            hub if owns_hub else None,
            supervisor if owns_supervisor else None,
            index if owns_index else None,
            descriptors,
        )
        _serve_within(app, owned)
    return app


def build_app(state: AppState, hub: Hub) -> QuartTrio:
    """The routes over ``state.supervisor`` and ``hub``, neither started nor stopped here."""
    config, supervisor = state.config, state.supervisor
    app = SSEApp("trio_wrapper")
    app.config["MAX_CONTENT_LENGTH"] = config.limits.max_body_bytes
    app.max_header_bytes = config.limits.max_header_bytes
    # hypercorn's own HTTP/1.1 errors (bad request line, head too large) as JSON too.
    install_json_protocol_errors()
    install_log_redaction()
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
        openapi_provider_class=DocumentedModelsProvider,
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
    install_guards(app, config)
    install_error_handlers(app)
    health.install(app, state)
    agents.install(app, state)
    # The daemon's log of agents' starts, stops and ends; of clients refused by a limit.
    supervisor.observers.append(AgentEventLog())
    LIMIT_LOG.interval = config.logging.limit_interval_seconds
    model = MetricsModel(supervisor, version=__version__, started_mono=state.started_mono)
    supervisor.observers.append(model)
    model.register_sse(hub)
    _count_tasks(app, model)
    metrics.install(app, state, model)
    runs.install(app, state)
    install_sse_routes(app, hub, supervisor)
    dashboard.install(app)
    return app


def _count_tasks(app: QuartTrio, model: MetricsModel) -> None:
    """``trio_wrapper_tasks`` in /metrics: the tasks of the trio run that serves the app,
    counted from its start (``runtime.tasks``), under the daemon or a plain hypercorn."""
    tasks = TaskCount()

    @app.before_serving
    async def count_tasks() -> None:
        tasks.install()
        model.register_tasks(tasks.count)

    @app.after_serving
    async def stop_counting() -> None:
        model.register_tasks(None)
        tasks.uninstall()


def _own_logging(config: Config) -> None:
    """Under a plain hypercorn, the daemon's events in the ``[logging]`` format, unless
    logging was set up already (hypercorn's own lines keep hypercorn's format)."""
    ours = logging.getLogger(DAEMON_LOGGER)
    if logging.getLogger().handlers or ours.handlers:
        return
    fmt = log_format(config.logging.format)
    configure(config.logging.level, fmt, [config.token], sys.stderr, logger=DAEMON_LOGGER)


def _serve_within(app: QuartTrio, lifecycle: Lifecycle) -> None:
    """The parts the app owns live in its nursery: started before it serves, stopped
    after (hub first, so streams end before the agents stop)."""
    if lifecycle.supervisor is not None:
        # quart-trio then gives the app's nursery a deadline on shutdown instead of
        # cancelling it at once, so after_serving can stop the agents in order.
        grace = lifecycle.supervisor.config.agents.stop_grace_seconds
        app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = grace + SHUTDOWN_MARGIN_SECONDS

    @app.before_serving
    async def _start_owned() -> None:
        await lifecycle.start(app.nursery)

    @app.after_serving
    async def _stop_owned() -> None:
        await lifecycle.stop()


__all__ = ["AppState", "build_app", "create_app", "hub_limits"]
