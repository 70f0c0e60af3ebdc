"""Soak: 1,000 agents in waves of 50 under 200 churning SSE clients and a 1 s /metrics scrape.

One daemon (``trio-wrapper serve --port 0``, default config) for the whole run. Each wave
starts ``--agents-per-wave`` agents whose output is deterministic, so that every log can be
checked byte for byte: fast floods (with a 200 KB line, non-UTF-8 bytes and an unfinished
last line), slow writers on stdout and stderr, ``seq`` in ``sh``, echo over stdin,
``cat`` of the real transcripts of tests/fixtures/transcripts/, and agents DELETEd while
still writing (a slow ticker, a fast flood, one with stdin open). Formats ``none``,
``text`` and ``auto`` are mixed. The others are DELETEd once they ended. Meanwhile
``--clients`` SSE clients connect to a live agent's stream or to /api/events, read for
0.2-3 s and disconnect, again and again, and /metrics is scraped every second. Waves are
spread over ``--minutes``.

Twice, after the first wave and at the end, the traffic is stopped (every client closed,
no agent listed, no SSE client reported) and the daemon is measured from /proc: zombie
children, open fds, threads, the RSS of the daemon and of its extraction worker, and the
daemon's trio tasks (``trio_wrapper_tasks`` in /metrics). Verdicts: zero zombies, zero
leaked fds and tasks (end vs after the first wave), RSS at the end within 10 % of
after the first wave, every log byte-identical, zero 5xx. Loopback only; every loop is
bounded in count and time; everything started is stopped. Not part of ``make test``.

    .venv/bin/python bench/soak.py [--minutes 10] [--waves 20] [--agents-per-wave 50]
                                   [--clients 200] [--seed 15]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio
from common import (
    ROOT,
    TERMINAL,
    BenchError,
    goal_line,
    kill_leftovers,
    load_average,
    machine,
    print_table,
    rss_kb,
    run_main,
    running_daemon,
    worker_pids,
)

PY = sys.executable
TRANSCRIPTS = sorted(
    p
    for p in (ROOT / "tests" / "fixtures" / "transcripts").rglob("*")
    if p.is_file() and p.suffix != ".md"
)
RSS_TOLERANCE = 0.10
POST_CONCURRENCY = 10
AGENT_TIMEOUT = 120.0  # seconds an agent may take to end before the wave fails
CHECKPOINT_TIMEOUT = 60.0
# A quiet daemon, before /proc is read: longer than hypercorn's keep-alive timeout (5 s;
# a connection the client closed right after a stream's answer is noticed only then) and
# than two quiet periods of the daemon's heap trim (runtime.heap.QuietTrim, 5 s each).
SETTLE_SECONDS = 12.0
SAFETY_TIMEOUT = 300.0  # the daemon's own timeout_seconds on every agent, a backstop

# ---- the agents: each child's output is a function of its arguments --------------------

FLOOD = """\
import sys
n, seed, big = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
out, err = sys.stdout.buffer, sys.stderr.buffer
for i in range(n):
    out.write(b"flood %d %d %s\\n" % (seed, i, b"x" * (i % 97)))
    if i % 50 == 0:
        err.write(b"warn %d %d\\n" % (seed, i))
    if big and i == n // 2:
        out.write(b"B" * 200000 + b"\\n")
out.write(b"\\xff\\xfe tail %d without newline" % seed)
"""


def flood_expected(n: int, seed: int, big: bool) -> tuple[bytes, bytes]:
    out, err = [], []
    for i in range(n):
        out.append(b"flood %d %d %s\n" % (seed, i, b"x" * (i % 97)))
        if i % 50 == 0:
            err.append(b"warn %d %d\n" % (seed, i))
        if big and i == n // 2:
            out.append(b"B" * 200000 + b"\n")
    out.append(b"\xff\xfe tail %d without newline" % seed)
    return b"".join(out), b"".join(err)


SLOW = """\
import sys, time
n, delay, code = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    print(f"step {i} of {n} \\u2713", flush=True)
    print(f"progress {i}/{n}", file=sys.stderr, flush=True)
    time.sleep(delay)
print("done", flush=True)
sys.exit(code)
"""


def slow_expected(n: int) -> tuple[bytes, bytes]:
    out = "".join(f"step {i} of {n} \u2713\n" for i in range(n)) + "done\n"
    err = "".join(f"progress {i}/{n}\n" for i in range(n))
    return out.encode(), err.encode()


SEQ = 'seq 1 "$1"; seq 1 "$2" >&2; echo "sh done $0"'

ECHO = """\
import sys
count = 0
for line in sys.stdin.buffer:
    count += 1
    sys.stdout.buffer.write(b"echo " + line)
    sys.stdout.flush()
sys.stderr.write(f"read {count} lines\\n")
"""


def echo_lines(seed: int, count: int) -> list[str]:
    return [f"line {i} of {seed} h\u00e9llo \u2713\n" for i in range(count)]


# Killed while running: the logs must be a prefix of these (generated as long as needed).
TICKER = """\
import sys, time
sys.stderr.write("started\\n"); sys.stderr.flush()
i = 0
while True:
    sys.stdout.write(f"tick {i}\\n"); sys.stdout.flush()
    i += 1
    time.sleep(0.01)
"""
FAST = """\
import sys
sys.stderr.write("started\\n"); sys.stderr.flush()
out = sys.stdout.buffer
i = 0
while True:
    out.write(b"fast %d %s\\n" % (i, b"y" * (i % 61)))
    i += 1
"""
STDIN_HOLD = """\
import sys, time
print("holding stdin", flush=True)
for line in sys.stdin.buffer:
    sys.stdout.buffer.write(b"got " + line); sys.stdout.flush()
time.sleep(600)
"""


def ticker_line(i: int) -> bytes:
    return b"tick %d\n" % i


def fast_line(i: int) -> bytes:
    return b"fast %d %s\n" % (i, b"y" * (i % 61))


@dataclass
class Plan:
    """One agent: what to POST, what it must have written, and how it is driven."""

    name: str
    kind: str
    body: dict[str, Any]
    stdout: bytes = b""
    stderr: bytes = b""
    # Killed agents: each stream is checked as a prefix of a generated sequence.
    prefix_stdout: Callable[[int], bytes] | None = None
    prefix_stderr: bytes | None = None
    inputs: list[str] = field(default_factory=list)
    kill_after: float | None = None


def plan_agent(name: str, index: int, rng: random.Random) -> Plan:
    seed = rng.randrange(1_000_000)
    kind = index % 10
    body: dict[str, Any] = {"name": name, "timeout_seconds": SAFETY_TIMEOUT}
    if kind in (0, 1, 2):
        n = rng.randrange(2_000, 8_000)
        big = kind == 2
        out, err = flood_expected(n, seed, big)
        fmt = ("none", "auto", "text")[rng.randrange(3)] if kind != 0 else "none"
        body |= {"command": [PY, "-c", FLOOD, str(n), str(seed), "1" if big else "0"]}
        body["format"] = fmt
        return Plan(name, "flood", body, out, err)
    if kind in (3, 4):
        n = rng.randrange(5, 30)
        code = 3 if kind == 4 else 0
        out, err = slow_expected(n)
        body |= {"command": [PY, "-c", SLOW, str(n), "0.1", str(code)], "format": "text"}
        return Plan(name, "slow", body, out, err)
    if kind == 5:
        a, b = rng.randrange(1, 20_000), rng.randrange(1, 500)
        out = "".join(f"{i}\n" for i in range(1, a + 1)) + f"sh done {name}\n"
        err = "".join(f"{i}\n" for i in range(1, b + 1))
        body |= {"command": ["sh", "-c", SEQ, name, str(a), str(b)], "format": "text"}
        return Plan(name, "sh", body, out.encode(), err.encode())
    if kind == 6:
        lines = echo_lines(seed, rng.randrange(1, 12))
        out = "".join(f"echo {line}" for line in lines).encode()
        err = f"read {len(lines)} lines\n".encode()
        body |= {"command": [PY, "-c", ECHO], "stdin": True, "format": "auto"}
        return Plan(name, "stdin", body, out, err, inputs=lines)
    if kind == 7:
        path = TRANSCRIPTS[rng.randrange(len(TRANSCRIPTS))]
        body |= {"command": ["cat", str(path)], "format": "auto"}
        return Plan(name, "transcript", body, path.read_bytes(), b"")
    kill_after = rng.uniform(0.5, 2.0)
    if kind == 8:
        body |= {"command": [PY, "-c", TICKER], "format": "text"}
        return Plan(name, "killed-ticker", body, prefix_stdout=ticker_line,
                    prefix_stderr=b"started\n", kill_after=kill_after)  # fmt: skip
    if index % 20 == 9:
        body |= {"command": [PY, "-c", FAST], "format": "none"}
        return Plan(name, "killed-flood", body, prefix_stdout=fast_line,
                    prefix_stderr=b"started\n", kill_after=kill_after)  # fmt: skip
    lines = echo_lines(seed, 3)
    body |= {"command": [PY, "-c", STDIN_HOLD], "stdin": True, "format": "auto"}
    out = b"holding stdin\n" + "".join(f"got {line}" for line in lines).encode()
    return Plan(name, "killed-stdin", body, out, b"", inputs=lines, kill_after=kill_after)


def is_sequence_prefix(data: bytes, line: Callable[[int], bytes]) -> bool:
    """``data`` is a byte prefix of line(0) + line(1) + ..."""
    pos, i = 0, 0
    while pos < len(data):
        chunk = line(i)
        if data[pos : pos + len(chunk)] != chunk[: len(data) - pos]:
            return False
        pos += len(chunk)
        i += 1
    return True


def check_log(logs: Path, plan: Plan) -> str | None:
    """None when the agent's logs are what its child wrote; else what differs."""
    problems = []
    for stream in ("stdout", "stderr"):
        files = sorted((logs / "agents" / plan.name).glob(f"*-{stream}.log"))
        if len(files) > 1:
            problems.append(f"{len(files)} {stream} logs")
            continue
        data = files[0].read_bytes() if files else b""
        expected = plan.stdout if stream == "stdout" else plan.stderr
        if stream == "stdout" and plan.prefix_stdout is not None:
            ok = is_sequence_prefix(data, plan.prefix_stdout)
        elif stream == "stderr" and plan.prefix_stderr is not None:
            ok = plan.prefix_stderr.startswith(data)
        elif plan.kind == "killed-stdin":
            ok = expected.startswith(data)  # killed: whatever it had echoed so far
        else:
            ok = data == expected
        if not ok:
            at = next(
                (i for i, (a, b) in enumerate(zip(data, expected, strict=False)) if a != b),
                min(len(data), len(expected)),
            )
            problems.append(
                f"{stream}: {len(data)} bytes, expected {len(expected)}"
                f"{' (prefix)' if plan.kill_after else ''}, first difference at byte {at}"
            )
    return "; ".join(problems) or None


# ---- the measurements ------------------------------------------------------------------


@dataclass
class Snapshot:
    zombies: int
    children: int
    fds: int
    threads: int
    daemon_kb: int
    worker_kb: int
    workers: int
    sse_clients: int
    agents: int
    tasks: int  # trio tasks alive in the daemon, as /metrics says (its own request's included)


def proc_children(pid: int) -> list[tuple[int, str]]:
    """(pid, state) of each child of ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append((int(stat.parent.name), fields[0]))
    return found


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise BenchError(f"no Threads for pid {pid}")


def fd_count(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


TCP_STATES = {
    "01": "ESTABLISHED",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "0A": "LISTEN",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "09": "LAST_ACK",
}


def tcp_states() -> dict[str, str]:
    """Socket inode -> TCP state name, from /proc/net/tcp{,6}."""
    states: dict[str, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9:
                states[fields[9]] = TCP_STATES.get(fields[3], fields[3])
    return states


def fd_kinds(pid: int) -> Counter[str]:
    """What the fds point at, by kind (a socket by its TCP state, pipe, file under
    logs/...), for a report: a socket still open in CLOSE_WAIT is one the client closed."""
    kinds: Counter[str] = Counter()
    states = tcp_states()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        kind = target.split(":")[0] if ":" in target else target.rsplit("/", 1)[0]
        if kind == "socket":
            kind = f"socket {states.get(target[8:-1], 'other')}"
        kinds[kind] += 1
    return kinds


# ---- the run ---------------------------------------------------------------------------


@dataclass
class Tally:
    statuses: Counter[str] = field(default_factory=Counter)  # "METHOD route status" -> n
    errors: Counter[str] = field(default_factory=Counter)  # transport errors by kind
    unexpected: list[str] = field(default_factory=list)
    error_details: list[str] = field(default_factory=list)
    slowest: dict[str, float] = field(default_factory=dict)  # "METHOD route" -> seconds
    sse_connections: int = 0
    sse_bytes: int = 0
    scrapes: int = 0
    log_problems: list[str] = field(default_factory=list)
    logs_checked: int = 0
    kinds: Counter[str] = field(default_factory=Counter)

    def record(self, what: str, status: int) -> None:
        self.statuses[f"{what} {status}"] += 1

    @property
    def server_errors(self) -> int:
        return sum(n for k, n in self.statuses.items() if k.rsplit(" ", 1)[1].startswith("5"))


class Soak:
    def __init__(self, args: argparse.Namespace, url: str, pid: int, logs: Path) -> None:
        self.args = args
        self.url = url
        self.pid = pid
        self.logs = logs
        self.rng = random.Random(args.seed)
        self.tally = Tally()
        self.live: list[str] = []  # agents of the current wave, for the SSE clients
        self.pids: list[int] = []
        self.commands: set[tuple[str, ...]] = set()
        self.snapshots: dict[str, Snapshot] = {}
        self.fd_detail: dict[str, Counter[str]] = {}

    def client(self, connections: int = 20) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncClient(base_url=self.url, timeout=30.0, limits=limits)

    async def request(
        self, client: httpx.AsyncClient, method: str, route: str, path: str, **kw: Any
    ) -> httpx.Response | None:
        try:
            started = trio.current_time()
            response = await client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            self.tally.errors[f"{method} {route} {type(exc).__name__}"] += 1
            self.tally.error_details.append(
                f"{method} {path}: {exc!r} after {trio.current_time() - started:.1f} s"
            )
            return None
        took = trio.current_time() - started
        key = f"{method} {route}"
        self.tally.slowest[key] = max(self.tally.slowest.get(key, 0.0), took)
        self.tally.record(f"{method} {route}", response.status_code)
        return response

    # -- background traffic --

    async def scraper(self) -> None:
        async with self.client(2) as client:
            while True:  # cancelled at the end of the phase; one scrape per second
                start = trio.current_time()
                response = await self.request(client, "GET", "/metrics", "/metrics")
                if response is not None:
                    self.tally.scrapes += 1
                await trio.sleep_until(start + 1.0)

    async def sse_client(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        while True:  # cancelled at the end of the phase; each connection bounded below
            if self.live and rng.random() < 0.85:
                name = rng.choice(self.live)
                route, path = "GET /api/agents/<name>/stream", f"/api/agents/{name}/stream"
            else:
                route, path = "GET /api/events", "/api/events"
            started = trio.current_time()
            got = 0
            with trio.move_on_after(rng.uniform(0.2, 3.0)):
                try:
                    async with client.stream("GET", path) as response:
                        self.tally.record(route, response.status_code)
                        self.tally.sse_connections += 1
                        async for chunk in response.aiter_raw():
                            got += len(chunk)
                            self.tally.sse_bytes += len(chunk)
                except httpx.HTTPError as exc:
                    self.tally.errors[f"{route} {type(exc).__name__}"] += 1
                    self.tally.error_details.append(
                        f"GET {path}: {exc!r} after {trio.current_time() - started:.1f} s"
                        f" and {got:,} bytes"
                    )
            await trio.sleep(rng.uniform(0.0, 0.3))

    async def traffic(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        n = self.args.clients
        async with self.client(n + 10) as client, trio.open_nursery() as nursery:
            nursery.start_soon(self.scraper)
            for i in range(n):
                nursery.start_soon(
                    self.sse_client, client, random.Random(self.args.seed * 1000 + i)
                )
            task_status.started()

    # -- the waves --

    async def drive(self, client: httpx.AsyncClient, plan: Plan) -> None:
        name = plan.name
        for line in plan.inputs:
            r = await self.request(
                client, "POST", "/api/agents/<name>/input", f"/api/agents/{name}/input",
                json={"data": line},
            )  # fmt: skip
            if r is not None and r.status_code != 200:
                self.tally.unexpected.append(f"input {name}: {r.status_code} {r.text[:200]}")
            await trio.sleep(0.02)
        if plan.kind == "stdin":
            await self.request(
                client, "POST", "/api/agents/<name>/input", f"/api/agents/{name}/input",
                json={"eof": True},
            )  # fmt: skip
        if plan.kill_after is not None:
            await trio.sleep(plan.kill_after)
            detail = await self.request(client, "GET", "/api/agents/<name>", f"/api/agents/{name}")
            if (
                detail is not None
                and detail.status_code == 200
                and detail.json()["status"] != "running"
            ):
                self.tally.unexpected.append(f"{name} ended before its DELETE")
        else:
            with trio.move_on_after(AGENT_TIMEOUT) as scope:
                while True:
                    r = await self.request(
                        client, "GET", "/api/agents/<name>", f"/api/agents/{name}"
                    )
                    if r is not None and r.status_code == 200 and r.json()["status"] in TERMINAL:
                        break
                    await trio.sleep(0.5)
            if scope.cancelled_caught:
                self.tally.unexpected.append(f"{name} still running after {AGENT_TIMEOUT} s")
        ok = (200,)
        for _ in range(3):  # a DELETE without an answer is sent again (counted)
            r = await self.request(client, "DELETE", "/api/agents/<name>", f"/api/agents/{name}")
            if r is not None:
                break
            ok = (200, 404)  # the unanswered one may have done it
        if r is None or r.status_code not in ok:
            self.tally.unexpected.append(f"DELETE {name}: {r and r.status_code}")

    async def wave(self, client: httpx.AsyncClient, number: int) -> None:
        per_wave = self.args.agents_per_wave
        plans = [
            plan_agent(f"soak-{number:03d}-{i:03d}", number * per_wave + i, self.rng)
            for i in range(per_wave)
        ]
        for plan in plans:
            self.commands.add(tuple(plan.body["command"]))
            self.tally.kinds[f"{plan.kind} ({plan.body['format']})"] += 1
        pending = iter(plans)
        skipped: set[str] = set()

        async def poster(nursery: trio.Nursery) -> None:
            for plan in pending:
                r = await self.request(client, "POST", "/api/agents", "/api/agents", json=plan.body)
                if r is not None and r.status_code != 201:
                    raise BenchError(f"POST {plan.name}: {r.status_code} {r.text[:200]}")
                if r is None:  # no answer: was it started? (counted in the transport errors)
                    path = f"/api/agents/{plan.name}"
                    r = await self.request(client, "GET", "/api/agents/<name>", path)
                    if r is None or r.status_code != 200:
                        self.tally.unexpected.append(f"POST {plan.name}: no answer, not started")
                        skipped.add(plan.name)
                        continue
                self.pids.append(r.json()["pid"])
                self.live.append(plan.name)
                nursery.start_soon(self.drive, client, plan)

        async with trio.open_nursery() as nursery:
            for _ in range(POST_CONCURRENCY):
                nursery.start_soon(poster, nursery)
        self.live.clear()
        problems = await trio.to_thread.run_sync(
            lambda: [(p.name, check_log(self.logs, p)) for p in plans if p.name not in skipped]
        )
        self.tally.logs_checked += len(problems)
        self.tally.log_problems += [f"{name} ({p})" for name, p in problems if p]

    async def task_count(self) -> int:
        """``trio_wrapper_tasks`` from one /metrics scrape, on a connection of its own."""
        async with self.client(1) as client:
            answer = await self.request(client, "GET", "/metrics", "/metrics")
        if answer is None:
            raise BenchError("the daemon stopped answering")
        found = re.search(r"^trio_wrapper_tasks (\d+)", answer.text, re.MULTILINE)
        if found is None:
            raise BenchError("/metrics has no trio_wrapper_tasks")
        return int(found.group(1))

    async def checkpoint(self, label: str) -> Snapshot:
        """Quiet daemon: no agent listed, no SSE client; then /proc (our sockets closed)."""
        async with self.client(2) as client:
            with trio.move_on_after(CHECKPOINT_TIMEOUT):
                while True:
                    agents = await self.request(client, "GET", "/api/agents", "/api/agents")
                    stats = await self.request(client, "GET", "/api/sse/stats", "/api/sse/stats")
                    if agents is None or stats is None:
                        raise BenchError("the daemon stopped answering")
                    n_agents = agents.json()["count"]
                    n_clients = stats.json()["total_clients"]
                    if n_agents == 0 and n_clients == 0:
                        break
                    left = [a["name"] for a in agents.json()["agents"]][:5]
                    await trio.sleep(0.5)
        await trio.sleep(SETTLE_SECONDS)  # our connections closed on the daemon's side too
        children = proc_children(self.pid)
        workers = worker_pids(self.pid)
        self.fd_detail[label] = fd_kinds(self.pid)
        snap = Snapshot(
            zombies=sum(1 for _, state in children if state == "Z"),
            children=len(children),
            fds=fd_count(self.pid),
            threads=threads(self.pid),
            daemon_kb=rss_kb(self.pid),
            worker_kb=sum(rss_kb(p) for p in workers),
            workers=len(workers),
            sse_clients=n_clients,
            agents=n_agents,
            tasks=await self.task_count(),  # after /proc: its connection is not counted there
        )
        self.snapshots[label] = snap
        print(f"{label}: {snap}", flush=True)
        if n_agents:
            self.tally.unexpected.append(f"{label}: still listed {left}")
        return snap

    async def run(self) -> None:
        args = self.args
        slot = args.minutes * 60.0 / args.waves
        start = trio.current_time()
        for number in range(args.waves):
            # A client per wave: its closed connections are not the daemon's to keep.
            async with self.client(POST_CONCURRENCY + 60) as client, trio.open_nursery() as n:
                await n.start(self.traffic)
                await self.wave(client, number)
                if number:  # the first wave is measured at once; the others fill a slot
                    await trio.sleep_until(start + slot * (number + 1))
                n.cancel_scope.cancel()
            print(
                f"wave {number + 1}/{args.waves} done at {trio.current_time() - start:.0f} s,"
                f" {self.tally.logs_checked} logs checked, {len(self.tally.log_problems)} bad,"
                f" {self.tally.server_errors} 5xx, RSS daemon {rss_kb(self.pid)} KiB,"
                f" load {load_average()}",
                flush=True,
            )
            if number == 0:
                await self.checkpoint("after wave 1")
        await self.checkpoint("end")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="duration (default 10)")
    parser.add_argument("--waves", type=int, default=20, help="waves (default 20)")
    parser.add_argument(
        "--agents-per-wave", type=int, default=50, help="agents per wave (default 50)"
    )
    parser.add_argument("--clients", type=int, default=200, help="SSE clients (default 200)")
    parser.add_argument("--seed", type=int, default=15, help="random seed (default 15)")
    parser.add_argument(
        "--daemon-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for the daemon, e.g. TRIO_WRAPPER_SSE_CLIENT_BUFFER=64 (repeatable)",
    )
    args = parser.parse_args()
    if any("=" not in item for item in args.daemon_env):
        parser.error("--daemon-env takes KEY=VALUE")
    if args.waves < 2 or args.agents_per_wave < 10 or args.clients < 0 or args.minutes <= 0:
        parser.error("need --waves >= 2, --agents-per-wave >= 10, --clients >= 0, --minutes > 0")
    if not TRANSCRIPTS:
        raise BenchError("no transcripts under tests/fixtures/transcripts")

    print(f"machine: {machine()}")
    print(f"load average before: {load_average()}")
    total = args.waves * args.agents_per_wave
    print(
        f"soak: {total} agents in {args.waves} waves of {args.agents_per_wave}, "
        f"{args.clients} SSE clients, /metrics every 1 s, ~{args.minutes:g} min",
        flush=True,
    )
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        soak: Soak | None = None
        try:
            env = dict(item.split("=", 1) for item in args.daemon_env)
            with running_daemon(Path(tmp), env=env) as daemon:
                soak = Soak(args, daemon.url, daemon.pid, daemon.logs_dir)
                try:
                    trio.run(soak.run)
                except BaseExceptionGroup as group:  # the first BenchError, if any, alone
                    bench = group.subgroup(lambda e: isinstance(e, BenchError))
                    while isinstance(bench, BaseExceptionGroup):
                        bench = bench.exceptions[0]
                    if bench is None:
                        raise
                    raise bench from group
                daemon_log = daemon.log
                status = daemon.stop()
                if status != 0:
                    raise BenchError(
                        f"the daemon exited {status} on SIGTERM:\n{daemon.log[-2000:]}"
                    )
        finally:
            if soak is not None:
                for command in soak.commands:
                    kill_leftovers(soak.pids, command)
    elapsed = time.monotonic() - began
    report(soak, args, elapsed, daemon_log)
    return 0


def report(soak: Soak, args: argparse.Namespace, elapsed: float, daemon_log: str) -> None:
    first, end = soak.snapshots["after wave 1"], soak.snapshots["end"]
    tally = soak.tally
    print()
    print(f"ran {elapsed / 60:.1f} min; agents by kind (format): " + ", ".join(
        f"{k} {n}" for k, n in sorted(tally.kinds.items())))  # fmt: skip
    print(
        f"SSE connections {tally.sse_connections}, {tally.sse_bytes / 1e6:.0f} MB read; "
        f"/metrics scrapes {tally.scrapes}"
    )
    print("answers: " + ", ".join(f"{k}: {n}" for k, n in sorted(tally.statuses.items())))
    if tally.errors:
        print("transport errors: " + ", ".join(f"{k}: {n}" for k, n in tally.errors.items()))
    for line in tally.error_details[:10]:
        print(f"transport error: {line}")
    for line in tally.unexpected[:10]:
        print(f"unexpected: {line}")
    print("slowest answer: " + ", ".join(
        f"{k} {v:.2f} s" for k, v in sorted(tally.slowest.items())))  # fmt: skip
    tracebacks = daemon_log.count("Traceback")
    print(f"daemon stderr: {len(daemon_log.splitlines())} lines, {tracebacks} tracebacks")
    if tracebacks:
        at = daemon_log.index("Traceback")
        print("first: " + daemon_log[max(0, at - 300) : at + 3000])
    for line in tally.log_problems[:10]:
        print(f"log differs: {line}")
    print()
    rows = [
        ["zombie children", first.zombies, end.zombies],
        ["children (the worker)", first.children, end.children],
        ["open fds", first.fds, end.fds],
        ["threads", first.threads, end.threads],
        ["trio tasks", first.tasks, end.tasks],
        ["daemon RSS (KiB)", first.daemon_kb, end.daemon_kb],
        ["worker RSS (KiB)", first.worker_kb, end.worker_kb],
        ["daemon + worker RSS (KiB)", first.daemon_kb + first.worker_kb,
         end.daemon_kb + end.worker_kb],
        ["SSE clients reported", first.sse_clients, end.sse_clients],
        ["agents reported", first.agents, end.agents],
    ]  # fmt: skip
    print_table(["measure", "after wave 1", "end"], rows)
    if first.fds != end.fds:
        print(f"fds after wave 1: {dict(soak.fd_detail['after wave 1'])}")
        print(f"fds at the end:   {dict(soak.fd_detail['end'])}")
    print(f"load average after: {load_average()}")
    print()
    total = args.waves * args.agents_per_wave

    def growth(before: int, after: int) -> float:
        return (after - before) / before if before else 0.0

    d_growth = growth(first.daemon_kb, end.daemon_kb)
    w_growth = growth(first.worker_kb, end.worker_kb)
    print(
        goal_line(
            first.zombies == 0 and end.zombies == 0,
            f"zombies {first.zombies} after wave 1, {end.zombies} at the end (goal 0)",
        )
    )
    print(
        goal_line(
            end.fds <= first.fds,
            f"open fds {first.fds} -> {end.fds} (goal: no growth, tolerance 0)",
        )
    )
    print(
        goal_line(
            end.tasks <= first.tasks,
            f"trio tasks {first.tasks} -> {end.tasks} (goal: no growth, tolerance 0)",
        )
    )
    print(
        goal_line(
            d_growth <= RSS_TOLERANCE and w_growth <= RSS_TOLERANCE,
            f"RSS daemon {first.daemon_kb} -> {end.daemon_kb} KiB ({d_growth:+.1%}), "
            f"worker {first.worker_kb} -> {end.worker_kb} KiB ({w_growth:+.1%}) "
            f"(goal each <= +10 %)",
        )
    )
    print(
        goal_line(
            not tally.log_problems and tally.logs_checked == total,
            f"{tally.logs_checked - len(tally.log_problems)}/{total} agents' logs "
            f"byte-identical to what the child wrote",
        )
    )
    print(
        goal_line(
            tally.server_errors == 0,
            f"{tally.server_errors} 5xx answers of {sum(tally.statuses.values())} (goal 0)",
        )
    )
    print(goal_line(end.sse_clients == 0 and end.agents == 0 and not tally.unexpected,
                    f"at the end {end.sse_clients} SSE clients and {end.agents} agents reported, "
                    f"{len(tally.unexpected)} unexpected answers (goal 0)"))  # fmt: skip


if __name__ == "__main__":
    run_main(main)
