"""Memory under steady work: agents that flood and are deleted, one after another, with
no quiet spell for the daemon to give its heap back.

One daemon (default config). Each run starts an agent that writes a corpus file (``cat``,
by default 100,000 lines of the real Claude transcripts, format ``claude-stream-json``),
waits until it is ``completed`` with every line counted, DELETEs it, waits ``--gap``
seconds (shorter than the daemon's quiet spell, ``core.malloc.QUIET_SECONDS``, so what
the heap holds is never trimmed) and reads the RSS of the daemon and of its extraction
worker. A daemon that frees each deleted run keeps a level RSS once its heap has grown to
what one run needs; one that keeps them grows with every run. Verdict: the RSS after the
last run within 5 % of the RSS halfway. Then, once quiet for longer than two quiet
spells, the RSS again (what the heap trim gives back).

    .venv/bin/python bench/churn.py [--runs 16] [--kind real-claude-json] [--lines 100000]
                                    [--gap 1.0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
from common import (
    TERMINAL,
    BenchError,
    add_daemon_env,
    daemon_env,
    goal_line,
    load_average,
    machine,
    print_table,
    rss_kb,
    run_main,
    running_daemon,
    worker_pids,
)
from corpus import KINDS, corpus_file, fmt_of

TOLERANCE = 0.05
POLL_SECONDS = 0.01
RUN_TIMEOUT = 120.0
QUIET_WAIT_SECONDS = 12.0  # longer than two quiet spells of the heap trim (5 s each)


def run_one(client: httpx.Client, name: str, path: Path, fmt: str, lines: int) -> float:
    """Seconds from the POST until the run is done with every line counted; then DELETE."""
    start = time.perf_counter()
    body = {"name": name, "command": ["cat", str(path)], "format": fmt}
    response = client.post("/api/agents", json=body)
    if response.status_code != 201:
        raise BenchError(f"POST {name}: {response.status_code} {response.text}")
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        detail = client.get(f"/api/agents/{name}").json()
        if detail["status"] in TERMINAL:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"{name} still {detail['status']} after {RUN_TIMEOUT} s")
        time.sleep(POLL_SECONDS)
    elapsed = time.perf_counter() - start
    counted = detail["streams"]["stdout"]["lines"]
    if detail["status"] != "completed" or counted != lines:
        raise BenchError(f"{name}: {detail['status']}, {counted} lines of {lines}")
    response = client.delete(f"/api/agents/{name}")
    if response.status_code != 200:
        raise BenchError(f"DELETE {name}: {response.status_code} {response.text}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=16, help="agents, one after another")
    parser.add_argument("--kind", choices=KINDS, default="real-claude-json")
    parser.add_argument("--lines", type=int, default=100_000, help="corpus lines per agent")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds from a DELETE to the next")
    add_daemon_env(parser)
    args = parser.parse_args()
    if args.runs < 4:
        raise BenchError("--runs: at least 4")
    path = corpus_file(args.kind, args.lines)
    fmt = fmt_of(args.kind)
    print(f"machine: {machine()}")
    print(f"load average before: {load_average()}")
    print(f"{args.runs} agents in a row, each `cat` of {args.lines:,} {args.kind} lines ({fmt}),")
    print(f"deleted once completed; {args.gap} s between a DELETE and the next POST")
    rows: list[list[object]] = []
    daemon_rss: list[int] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-churn-") as tmp,
        running_daemon(Path(tmp), env=daemon_env(args, {}) or None) as daemon,
        httpx.Client(base_url=daemon.url, timeout=30.0) as client,
    ):
        for run in range(args.runs):
            seconds = run_one(client, f"churn-{run}", path, fmt, args.lines)
            time.sleep(args.gap)
            own = rss_kb(daemon.pid)
            worker = sum(rss_kb(pid) for pid in worker_pids(daemon.pid))
            daemon_rss.append(own)
            rows.append([run + 1, f"{seconds:.3f}", own, worker])
            print(f"run {run + 1}: {seconds:.3f} s; RSS daemon {own} KiB, worker {worker} KiB")
        time.sleep(QUIET_WAIT_SECONDS)
        quiet = rss_kb(daemon.pid)
    print()
    print_table(["run", "POST → completed s", "daemon RSS KiB", "worker RSS KiB"], rows)
    print(f"load average after: {load_average()}")
    half, last = daemon_rss[len(daemon_rss) // 2 - 1], daemon_rss[-1]
    growth = last / half - 1
    print(f"daemon RSS once quiet ({QUIET_WAIT_SECONDS:.0f} s after the last run): {quiet} KiB")
    print(
        goal_line(
            growth <= TOLERANCE,
            f"daemon RSS after run {len(daemon_rss) // 2} {half} KiB, after run "
            f"{len(daemon_rss)} {last} KiB: {growth:+.1%} (goal <= +{TOLERANCE:.0%})",
        )
    )
    return 0


if __name__ == "__main__":
    run_main(main)
