"""The three metrics routes: thin, each takes one snapshot and formats it."""

from __future__ import annotations

import socket

from quart import Response
from quart_schema import document_response
from quart_trio import QuartTrio

from trio_wrapper.api.state import AppState
from trio_wrapper.metrics.influx_view import InfluxView
from trio_wrapper.metrics.json_view import JsonView, MetricsDocument
from trio_wrapper.metrics.model import MetricsModel
from trio_wrapper.metrics.prometheus import (
    CONTENT_TYPE,
    PrometheusView,
    render_text,
    unknown_events_family,
)

JSON_TYPE = "application/json; charset=utf-8"
LINE_PROTOCOL_TYPE = "text/plain; charset=utf-8"


def install(app: QuartTrio, state: AppState, model: MetricsModel) -> None:
    """Add GET /metrics, /api/metrics and /api/metrics/influxdb for ``model``.

    ``state`` is the app's ``AppState`` (its config names the namespace).
    """
    namespace = state.config.metrics.namespace
    # The views keep what does not change between scrapes (format strings, time stamps).
    prometheus = PrometheusView(model, namespace)
    json_view = JsonView(model)
    # Looked up once: the host tag must not cost a system call per scrape.
    influx = InfluxView(model, namespace, socket.gethostname())
    usage = state.index.counters if state.index is not None else None

    @app.route("/metrics", methods=["GET"])
    async def prometheus_metrics() -> Response:
        """Prometheus text format 0.0.4.

        Every metric of the seed's list under the configured namespace; see docs/metrics.md.
        """
        text = prometheus.render()
        text += render_text([unknown_events_family(namespace, model.unknown_events())]).encode()
        if usage is not None:  # tokens, cost, retention (metrics.usage)
            text += usage.render(namespace)
        return Response(text, content_type=CONTENT_TYPE)

    @app.route("/api/metrics", methods=["GET"])
    @document_response(MetricsDocument)
    async def json_metrics() -> Response:
        """All metrics as JSON (the seed's shape)."""
        return Response(json_view.render(), content_type=JSON_TYPE)

    @app.route("/api/metrics/influxdb", methods=["GET"])
    async def influx_metrics() -> Response:
        """InfluxDB line protocol, ready to POST to InfluxDB's /write.

        Measurements ``<ns>``, ``<ns>_extractions`` and ``<ns>_agent``, nanosecond time.
        """
        return Response(influx.render(), content_type=LINE_PROTOCOL_TYPE)
