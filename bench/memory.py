"""Memory per idle running agent: the daemon's RSS growth for 500 ``sleep 600`` agents.

Each run starts a fresh daemon and warms it up (the client's connection pool opened, one
agent started and deleted), reads the VmRSS of the daemon and of its extraction worker
(which holds each agent's extractor; the agents themselves are not counted), starts 500
agents with 50 requests in flight over the same connections, waits, reads VmRSS again and
reports the growth divided by the number of agents.

    .venv/bin/python bench/memory.py [--runs 5] [--agents 500] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio
from common import (
    BenchError,
    add_daemon_env,
    count_running,
    daemon_env,
    daemon_rss_kb,
    goal_line,
    kill_leftovers,
    load_average,
    machine,
    median,
    print_table,
    run_main,
    running_daemon,
    start_agents,
)

GOAL_KB = 32.0
COMMAND = ["sleep", "600"]
DAEMON_ENV = {"TRIO_WRAPPER_AGENTS_STOP_GRACE_SECONDS": "0.5"}
SETTLE_SECONDS = 2.0


@dataclass
class Sample:
    before_kb: int
    after_kb: int
    agents: int

    @property
    def per_agent_kb(self) -> float:
        return (self.after_kb - self.before_kb) / self.agents


async def measure(url: str, pid: int, agents: int, concurrency: int, pids: list[int]) -> Sample:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as client:
        # Open every pooled connection now, so the measured growth is the agents' alone.
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(client.get, "/api/health")
        await start_agents(client, ["warm-up"], COMMAND, 1, pids)
        (await client.delete("/api/agents/warm-up")).raise_for_status()
        await trio.sleep(SETTLE_SECONDS)
        before = daemon_rss_kb(pid)

        names = [f"idle-{i:04d}" for i in range(agents)]
        await start_agents(client, names, COMMAND, concurrency, pids)
        await trio.sleep(SETTLE_SECONDS)
        after = daemon_rss_kb(pid)

        running = await count_running(client)
        if running != agents:
            raise BenchError(f"{running} agents running, expected {agents}")
        return Sample(before, after, agents)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs (default 5)")
    parser.add_argument("--agents", type=int, default=500, help="agents per run (default 500)")
    parser.add_argument("--concurrency", type=int, default=50, help="POSTs in flight")
    add_daemon_env(parser)
    args = parser.parse_args()
    env = daemon_env(args, DAEMON_ENV)

    print(f"machine: {machine()}")
    print(f"load average before: {load_average()}")
    samples: list[Sample] = []
    for run in range(args.runs):
        pids: list[int] = []
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
            try:
                with running_daemon(Path(tmp), env=env) as daemon:
                    sample = trio.run(
                        measure, daemon.url, daemon.pid, args.agents, args.concurrency, pids
                    )
            finally:
                kill_leftovers(pids, COMMAND)
        samples.append(sample)
        print(
            f"run {run + 1}: RSS {sample.before_kb} -> {sample.after_kb} KiB, "
            f"{sample.per_agent_kb:.1f} KiB per agent",
            flush=True,
        )

    rows: list[list[object]] = [
        [f"run {i + 1}", s.before_kb, s.after_kb, s.after_kb - s.before_kb, f"{s.per_agent_kb:.1f}"]
        for i, s in enumerate(samples)
    ]
    per_agent = median([s.per_agent_kb for s in samples])
    rows.append(["median", "", "", "", f"{per_agent:.1f}"])
    print()
    print_table(
        ["run", "RSS before (KiB)", "RSS after (KiB)", "growth (KiB)", "KiB per agent"], rows
    )
    print(f"load average after: {load_average()}")
    print()
    print(
        goal_line(per_agent <= GOAL_KB, f"median {per_agent:.1f} KiB per idle agent (goal <= 32)")
    )
    return 0


if __name__ == "__main__":
    run_main(main)
