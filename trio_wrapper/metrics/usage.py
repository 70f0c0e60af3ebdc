"""Counters of agents' token usage and cost, and of what retention removed, as
Prometheus families (``/metrics``). Pure: the runtime adds to them.

- ``<ns>_tokens_total{agent,model,type}``: tokens the agents' CLIs reported since the
  daemon started (``type``: input, output, cache_read, cache_write, reasoning, other);
- ``<ns>_cost_usd_total{agent,model}``: their cost in USD, where the CLI reports one;
- ``<ns>_retention_removed_runs_total`` and ``<ns>_retention_removed_bytes_total``.

A CLI's cumulative figure (a session total printed again and again) is added once: the
runtime adds only what a run's usage grew by.
"""

from __future__ import annotations

from trio_wrapper.metrics.prometheus import Family, render_text


class UsageCounters:
    def __init__(self) -> None:
        self.tokens: dict[tuple[str, str, str], int] = {}
        self.cost_usd: dict[tuple[str, str], float] = {}
        self.retention_removed_runs = 0
        self.retention_removed_bytes = 0

    def add_tokens(self, agent: str, model: str, kind: str, count: int) -> None:
        if count > 0:
            key = (agent, model, kind)
            self.tokens[key] = self.tokens.get(key, 0) + count

    def add_cost(self, agent: str, model: str, usd: float) -> None:
        if usd > 0:
            key = (agent, model)
            self.cost_usd[key] = self.cost_usd.get(key, 0.0) + usd

    def forget_agent(self, agent: str) -> None:
        """Drop a removed agent's series, as every per-agent series goes with its agent:
        unique names would otherwise grow these maps for as long as the daemon runs. What
        the agent used stays queryable in ``/api/usage`` (the run index)."""
        for key in [key for key in self.tokens if key[0] == agent]:
            del self.tokens[key]
        for cost_key in [key for key in self.cost_usd if key[0] == agent]:
            del self.cost_usd[cost_key]

    def add_removed(self, runs: int, size: int) -> None:
        self.retention_removed_runs += runs
        self.retention_removed_bytes += size

    def families(self, ns: str) -> list[Family]:
        tokens = sorted(self.tokens.items())
        costs = sorted(self.cost_usd.items())
        return [
            Family(f"{ns}_tokens_total", "counter",
                   "Tokens reported by the agents' CLIs since start, by agent, model and type",
                   ("agent", "model", "type"), [key for key, _ in tokens],
                   [value for _, value in tokens]),
            Family(f"{ns}_cost_usd_total", "counter",
                   "Cost in USD reported by the agents' CLIs since start, by agent and model",
                   ("agent", "model"), [key for key, _ in costs], [value for _, value in costs]),
            Family(f"{ns}_retention_removed_runs_total", "counter",
                   "Past runs removed by retention since start", (), [()],
                   [self.retention_removed_runs]),
            Family(f"{ns}_retention_removed_bytes_total", "counter",
                   "Bytes of run files removed by retention since start", (), [()],
                   [self.retention_removed_bytes]),
        ]  # fmt: skip

    def render(self, ns: str) -> bytes:
        return render_text(self.families(ns)).encode()
