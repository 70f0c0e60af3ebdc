"""Metrics: one model fed by the agents, three views of it (Prometheus, JSON, line protocol).

model.py      the AgentObserver that counts as things happen and takes snapshots
snapshot.py   the figures at one moment, which every formatter reads
prometheus.py a prometheus_client Collector; influx.py and json_view.py the other views
routes.py     GET /metrics, /api/metrics, /api/metrics/influxdb
"""

from trio_wrapper.metrics.model import MetricsModel
from trio_wrapper.metrics.snapshot import AgentFigures, MetricsSnapshot, SseFigures, SseSource

__all__ = ["AgentFigures", "MetricsModel", "MetricsSnapshot", "SseFigures", "SseSource"]
