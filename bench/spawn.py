"""Spawn latency: 100 agents started at once through the API.

Each run starts a fresh daemon, starts and deletes one warm-up agent, then sends 100
concurrent ``POST /api/agents`` (``sleep 30``) from one httpx client over 100 connections.
The figure is the time from the first request sent until every POST has answered 201 (a 201
means the agent is ``running``); the daemon is then stopped, which stops the agents.

    .venv/bin/python bench/spawn.py [--runs 5] [--agents 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
import trio
from common import (
    BenchError,
    add_daemon_env,
    count_running,
    daemon_env,
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

GOAL_SECONDS = 1.0
COMMAND = ["sleep", "30"]
DAEMON_ENV = {"TRIO_WRAPPER_AGENTS_STOP_GRACE_SECONDS": "0.5"}


async def measure(url: str, agents: int, pids: list[int]) -> float:
    limits = httpx.Limits(max_connections=agents, max_keepalive_connections=agents)
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as client:
        await start_agents(client, ["warm-up"], COMMAND, 1, pids)
        (await client.delete("/api/agents/warm-up")).raise_for_status()

        names = [f"spawn-{i:03d}" for i in range(agents)]
        start = time.perf_counter()
        details = await start_agents(client, names, COMMAND, agents, pids)
        elapsed = time.perf_counter() - start

        not_running = [d["name"] for d in details if d["status"] != "running"]
        if not_running:
            raise BenchError(f"answered but not running: {not_running[:5]}")
        running = await count_running(client)
        if running != agents:
            raise BenchError(f"{running} agents running afterwards, expected {agents}")
        return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs (default 5)")
    parser.add_argument("--agents", type=int, default=100, help="agents per run (default 100)")
    add_daemon_env(parser)
    args = parser.parse_args()
    env = daemon_env(args, DAEMON_ENV)

    print(f"machine: {machine()}")
    print(f"load average before: {load_average()}")
    times: list[float] = []
    for run in range(args.runs):
        pids: list[int] = []
        with tempfile.TemporaryDirectory(prefix="bench-spawn-") as tmp:
            try:
                with running_daemon(Path(tmp), env=env) as daemon:
                    times.append(trio.run(measure, daemon.url, args.agents, pids))
            finally:
                kill_leftovers(pids, COMMAND)
        print(f"run {run + 1}: {args.agents} agents running after {times[-1]:.3f} s", flush=True)

    rows: list[list[object]] = [[f"run {i + 1}", f"{t:.3f}"] for i, t in enumerate(times)]
    best = median(times)
    rows.append(["median", f"{best:.3f}"])
    print()
    print_table([f"{args.agents} concurrent POSTs", "seconds until all running"], rows)
    print(f"load average after: {load_average()}")
    print()
    print(goal_line(best <= GOAL_SECONDS, f"median {best:.3f} s (goal <= {GOAL_SECONDS:.0f} s)"))
    return 0


if __name__ == "__main__":
    run_main(main)
