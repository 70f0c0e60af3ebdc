"""Metrics: one model fed by the agents, three views of it (Prometheus, JSON, line protocol).

model.py      the AgentObserver that counts as things happen and takes snapshots
snapshot.py   the figures at one moment, which every formatter reads
prometheus.py the Prometheus families and text; json_view.py and influx_view.py (over
              influx.py, the line protocol's rules) the other views
template.py   text written once per layout with a slot per value, filled at each scrape
routes.py     GET /metrics, /api/metrics, /api/metrics/influxdb
"""

from trio_wrapper.metrics.model import MetricsModel
from trio_wrapper.metrics.snapshot import AgentFigures, MetricsSnapshot, SseFigures, SseSource

__all__ = ["AgentFigures", "MetricsModel", "MetricsSnapshot", "SseFigures", "SseSource"]
