"""A daemon with a long history: 10,000 past runs on disk.

Generates the runs once per invocation in a temporary logs dir (several agent names and
CLIs, over 30 days; for each run a meta file, an events file with the records its CLI's
extractor writes — model, responses, files touched, token and cost figures — and a few
KB of stdout), then measures:

- **no history**: the daemon started on an empty logs dir, for comparison;
- **cold start**: the daemon started with no run index (it builds one from the files):
  process start → ``/api/health`` answering, and → the first ``/api/runs`` answering
  (queries wait for the index to be built);
- **warm start** (the usual one, the index is fresh), the same two times, ``--starts``
  times;
- ``GET /api/runs?limit=100`` and ``GET /api/usage?group_by=day`` latency (medians of
  ``--requests``, over one kept-alive connection), and the daemon's RSS afterwards.

    .venv/bin/python bench/history.py [--runs 10000] [--starts 5] [--requests 50]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import msgspec
from common import (
    BenchError,
    daemon_rss_kb,
    goal_line,
    load_average,
    machine,
    median,
    print_table,
    run_main,
)

from tests.daemon import Daemon
from trio_wrapper.core.models import MetaExtraction, RunMeta

START_GOAL_SECONDS = 2.0
QUERY_GOAL_MS = 50.0
DAEMON_ENV = {"TRIO_WRAPPER_AGENTS_STOP_GRACE_SECONDS": "0.5"}
CLIS = {
    # name prefix: (profile, format, models, command)
    "claude": ("claude", "claude-stream-json", ["claude-opus-4-5", "claude-haiku-4-5"]),
    "codex": ("codex", "codex-json", ["gpt-5-codex", "o3"]),
    "gemini": ("gemini", "gemini-stream-json", ["gemini-2.5-pro", "gemini-2.5-flash"]),
    "aider": ("aider", "aider", ["gpt-4o", "sonnet"]),
}
_encode = msgspec.json.Encoder().encode


def _record(when: str, body: dict[str, object]) -> bytes:
    return _encode({"timestamp": when, **body}) + b"\n"


def _events(cli: str, model: str, started: datetime, rng: random.Random) -> bytes:
    stamp = started.isoformat(timespec="milliseconds")
    out = [_encode({"type": "state", "state": "running", "detail": "", "timestamp": stamp}) + b"\n"]
    out.append(_record(stamp, {"type": "session", "line_num": 1, "key": "model", "value": model}))
    line = 2
    for turn in range(rng.randint(1, 4)):
        text = f"Turn {turn}: " + "some explanation of the change. " * rng.randint(5, 40)
        out.append(_record(stamp, {"type": "response", "line_num": line, "text": text}))
        line += 1
        path = f"src/module_{rng.randint(1, 50)}.py"
        op = rng.choice(["create", "update", "read"])
        out.append(_record(stamp, {"type": "file_op", "line_num": line, "op": op, "path": path}))
        line += 1
    tokens_in, tokens_out = rng.randint(1_000, 200_000), rng.randint(100, 20_000)

    def metric(key: str, value: float, unit: str) -> bytes:
        return _record(
            stamp, {"type": "metric", "line_num": line, "key": key, "value": value, "unit": unit}
        )

    if cli == "claude":
        out += [
            metric("input_tokens", tokens_in, "tokens"),
            metric("output_tokens", tokens_out, "tokens"),
        ]
        out.append(metric("cache_read_input_tokens", tokens_in * 3, "tokens"))
        out.append(metric("total_cost_usd", round(tokens_in * 3e-6 + tokens_out * 15e-6, 6), "usd"))
    elif cli == "codex":
        out += [
            metric("input_tokens", tokens_in, "tokens"),
            metric("output_tokens", tokens_out, "tokens"),
        ]
        out.append(metric("cached_input_tokens", tokens_in // 2, "tokens"))
        out.append(metric("reasoning_output_tokens", tokens_out // 3, "tokens"))
    elif cli == "gemini":
        out += [
            metric("input_tokens", tokens_in, "tokens"),
            metric("output_tokens", tokens_out, "tokens"),
        ]
    else:
        out += [
            metric("tokens_sent", tokens_in, "tokens"),
            metric("tokens_received", tokens_out, "tokens"),
        ]
        out.append(metric("session_cost_usd", round(tokens_in * 2.5e-6, 2), "usd"))
    done = (started + timedelta(seconds=60)).isoformat(timespec="milliseconds")
    out.append(
        _encode({"type": "state", "state": "completed", "detail": "exit code 0", "timestamp": done})
        + b"\n"
    )
    return b"".join(out)


def generate(logs: Path, runs: int, seed: int = 16) -> int:
    """``runs`` past runs under ``logs/agents``, 5 names per CLI; their total bytes."""
    rng = random.Random(seed)
    names = [f"{cli}-{i}" for cli in CLIS for i in range(5)]
    end = datetime.now().astimezone().replace(microsecond=0)
    total = 0
    for n in range(runs):
        name = names[n % len(names)]
        cli = name.split("-")[0]
        profile, fmt, models = CLIS[cli]
        model = rng.choice(models)
        # Spread over 30 days, one second apart at least, so stamps are distinct.
        started = end - timedelta(seconds=(runs - n) * (30 * 86_400 // runs))
        stamp = started.strftime("%Y-%m-%d-%H-%M-%S")
        directory = logs / "agents" / name
        directory.mkdir(parents=True, exist_ok=True)
        stdout = b"".join(
            f"line {i} of the agent's output\n".encode() for i in range(rng.randint(20, 200))
        )
        events = _events(cli, model, started, rng)
        base = directory / stamp
        meta = RunMeta(
            name=name,
            status="completed",
            command=[cli, "--model", model, "-p", f"task {n}"],
            format=fmt,
            profile=profile,
            pid=10_000 + n,
            started_at=started.isoformat(timespec="milliseconds"),
            completed_at=(started + timedelta(seconds=60)).isoformat(timespec="milliseconds"),
            duration_seconds=60.0,
            exit_code=0,
            bytes={"stdout": len(stdout), "stderr": 0},
            lines={"stdout": stdout.count(b"\n"), "stderr": 0},
            lost_bytes={"stdout": 0, "stderr": 0},
            unprocessed_bytes={"stdout": 0, "stderr": 0},
            total_lines=stdout.count(b"\n"),
            extraction=MetaExtraction(format=fmt, total_lines=stdout.count(b"\n")),
            logs={s: f"{base}-{s}.log" for s in ("stdout", "stderr")}
            | {"events": f"{base}-events.jsonl"},
        )
        meta_bytes = _encode(meta) + b"\n"
        for suffix, data in (
            ("stdout.log", stdout),
            ("stderr.log", b""),
            ("events.jsonl", events),
            ("meta.json", meta_bytes),
        ):
            Path(f"{base}-{suffix}").write_bytes(data)
            total += len(data)
    return total


def timed_start(daemon: Daemon, http: httpx.Client) -> tuple[float, float]:
    """Start the daemon: seconds until /api/health answered, until /api/runs answered."""
    began = time.perf_counter()
    daemon.start()
    healthy = time.perf_counter() - began
    http.base_url = httpx.URL(daemon.url)
    response = http.get("/api/runs", params={"limit": 1})
    if response.status_code != 200:
        raise BenchError(f"/api/runs answered {response.status_code}: {response.text}")
    return healthy, time.perf_counter() - began


def latency_ms(
    http: httpx.Client, path: str, params: dict[str, str], requests: int
) -> tuple[float, int]:
    times = []
    size = 0
    for _ in range(requests):
        began = time.perf_counter()
        response = http.get(path, params=params)
        times.append((time.perf_counter() - began) * 1000)
        if response.status_code != 200:
            raise BenchError(f"{path} answered {response.status_code}: {response.text}")
        size = len(response.content)
    return median(times), size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000, help="past runs (default 10000)")
    parser.add_argument("--starts", type=int, default=5, help="warm starts (default 5)")
    parser.add_argument("--requests", type=int, default=50, help="requests per query (default 50)")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    print(f"load average before: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="bench-history-") as name:
        tmp = Path(name)
        began = time.perf_counter()
        size = generate(tmp / "logs", args.runs)
        took = time.perf_counter() - began
        print(f"generated {args.runs} runs ({size / 1e6:.1f} MB) in {took:.1f} s", flush=True)

        rows: list[list[object]] = []
        # For comparison: the same daemon with no history at all.
        empty = tmp / "empty"
        empty.mkdir()
        daemon = Daemon(empty, env=DAEMON_ENV)
        try:
            with httpx.Client(timeout=120.0) as http:
                bare_health, bare_ready = timed_start(daemon, http)
        finally:
            daemon.stop()
        rows.append(["no history", f"{bare_health:.3f}", f"{bare_ready:.3f}", "", "", ""])
        daemon = Daemon(tmp, env=DAEMON_ENV)
        try:
            with httpx.Client(timeout=120.0) as http:
                cold_health, cold_ready = timed_start(daemon, http)
        finally:
            daemon.stop()
        rows.append(["cold (index built)", f"{cold_health:.3f}", f"{cold_ready:.3f}", "", "", ""])
        print(
            f"cold start: healthy {cold_health:.3f} s, runs answered {cold_ready:.3f} s", flush=True
        )

        healths, readies, run_ms, usage_ms, rss = [], [], [], [], []
        runs_size = usage_size = 0
        for start in range(args.starts):
            daemon = Daemon(tmp, env=DAEMON_ENV)
            try:
                http = httpx.Client(timeout=120.0)
                health, ready = timed_start(daemon, http)
                ms, runs_size = latency_ms(http, "/api/runs", {"limit": "100"}, args.requests)
                run_ms.append(ms)
                ms, usage_size = latency_ms(http, "/api/usage", {"group_by": "day"}, args.requests)
                usage_ms.append(ms)
                rss.append(daemon_rss_kb(daemon.pid) / 1024)
                http.close()
            finally:
                daemon.stop()
            healths.append(health)
            readies.append(ready)
            rows.append([f"warm {start + 1}", f"{health:.3f}", f"{ready:.3f}", f"{run_ms[-1]:.1f}",
                         f"{usage_ms[-1]:.1f}", f"{rss[-1]:.0f}"])  # fmt: skip
            print(f"warm start {start + 1}: {rows[-1][1:]}", flush=True)
        medians = [median(healths), median(readies), median(run_ms), median(usage_ms)]
        rows.append(["median (warm)", *(f"{m:.3f}" for m in medians[:2]),
                     *(f"{m:.1f}" for m in medians[2:]), f"{median(rss):.0f}"])  # fmt: skip

    print()
    print_table(
        [
            "start",
            "s to health",
            "s to /api/runs",
            "runs?limit=100 ms",
            "usage?group_by=day ms",
            "RSS MiB",
        ],
        rows,
    )
    print(f"(bodies: /api/runs {runs_size} bytes, /api/usage {usage_size} bytes)")
    print(f"load average after: {load_average()}")
    print()
    ready, runs_ms, sums_ms = median(readies), median(run_ms), median(usage_ms)
    goal = f"goal <= {START_GOAL_SECONDS:.0f} s"
    print(goal_line(ready <= START_GOAL_SECONDS, f"warm start {ready:.3f} s to /api/runs ({goal})"))
    goal = f"goal <= {QUERY_GOAL_MS:.0f} ms"
    met = max(runs_ms, sums_ms) <= QUERY_GOAL_MS
    print(goal_line(met, f"queries {runs_ms:.1f} ms (runs), {sums_ms:.1f} ms (usage) ({goal})"))
    return 0


if __name__ == "__main__":
    run_main(main)
