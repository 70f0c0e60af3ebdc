"""SSE fan-out: latency, throughput and memory per idle client, with nginx + nchan beside.

Three figures, each measured on a fresh daemon (``trio-wrapper serve --port 0``) per run:

1. latency: an agent prints ``time.time()`` every 1 ms (10,000 lines), 100 SSE clients on
   its stream; p50/p99 from the child's write (the timestamp in the line) to each client's
   receipt. Goal: p99 <= 10 ms (issue 17; beyond: nchan's p99 in the same run).
2. throughput: ``cat`` of a 1,000,000-line file (format none), 10 clients reading as fast as
   they can; log events/s delivered per client, and ``gap`` events. Goal: >= 300,000/s per
   client with no gap.
3. idle: 10,000 clients on one sleeping agent, held through pings; the daemon's own VmRSS
   growth per client. Goal: <= 20 KB.

Beside 1 and 2, in the same run, nginx with the nchan module (when installed) publishes the
same lines to the same number of EventSource subscribers (a publisher POSTs each line to a
``nchan_publisher`` location; subscribers GET a ``nchan_subscriber eventsource`` location).

Clients are raw sockets in separate processes (not the daemon's, not the orchestrator's):
latency clients are 2 processes x 50 sockets on one epoll loop each; throughput clients are
one process each, counting ``\\nevent: log\\n`` in the raw bytes (no SSE parsing).

    .venv/bin/python bench/sse.py [--runs 3] [--only latency,throughput,idle] [--no-nchan]
"""

from __future__ import annotations

import argparse
import array
import contextlib
import datetime
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from common import (
    BenchError,
    Child,
    goal_line,
    kill_leftovers,
    load_average,
    machine,
    median,
    print_table,
    rss_kb,
    run_main,
    running_daemon,
)

# Goals of the issue.
GOAL_P99_MS = 10.0  # issue 17 (it was 20 ms before)
GOAL_EVENTS_PER_S = 300_000.0
GOAL_KB_PER_CLIENT = 20.0

HOST = "127.0.0.1"
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
LOG_PATTERN = b"\nevent: log\n"
GAP_PATTERN = b"\nevent: gap\n"
SILENCE = 10.0  # seconds without data that end a throughput client once events flowed
TAIL = 512  # bytes kept from one read to the next: longer than any pattern or gap event
GAP_RE = re.compile(rb"event: gap\ndata: [^\n]*\"missed\":(\d+)")
# A producer's timestamp: in the daemon's JSON ("line":"…") or nchan's raw data line.
STAMP_RE = re.compile(rb'(?:"line":"|\ndata: )(\d{10}\.\d{6})')
DAEMON_END = b"event: complete"
NCHAN_END = b"\ndata: END\n"
WORKER_START_TIMEOUT = 60.0

# The latency agent: waits for "go" on stdin, then one timestamp line per interval, each
# flushed at once (stdout is a pipe).
PRODUCER = """\
import sys, time
lines, interval = int(sys.argv[1]), float(sys.argv[2])
sys.stdin.readline()
out = sys.stdout
start = time.perf_counter()
for i in range(lines):
    delay = start + i * interval - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    out.write(f"{time.time():.6f}\\n")
    out.flush()
"""
# The firehose agent: waits for "go", then cat.
FIREHOSE = ["sh", "-c", 'read go && exec cat "$1"', "firehose"]
IDLE_COMMAND = ["sleep", "600"]

DAEMON_ENV = {
    "TRIO_WRAPPER_AGENTS_STOP_GRACE_SECONDS": "0.5",
    "TRIO_WRAPPER_SSE_MAX_CLIENTS": "30000",
    "TRIO_WRAPPER_SSE_MAX_CLIENTS_PER_AGENT": "30000",
}


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def sse_request(path: str, port: int) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
    ).encode()


def percentile(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---- client workers (each runs in its own process: `sse.py _worker KIND JSON`) ---------


def worker_latency(p: dict[str, Any]) -> None:
    """``clients`` sockets on one epoll loop; every timestamp received becomes a sample."""
    raise_nofile()
    request = sse_request(p["path"], p["port"])
    end = p["end"].encode()
    n = p["clients"]
    sel = selectors.DefaultSelector()
    for i in range(n):
        sock = socket.create_connection((HOST, p["port"]), timeout=10)
        sock.sendall(request)
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ, i)
    buffers = [b""] * n
    started = [False] * n
    counts = [0] * n
    samples = array.array("d")
    open_count, ready = n, 0
    deadline = time.monotonic() + p["deadline"]
    while open_count and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            conn, i = key.fileobj, key.data
            assert isinstance(conn, socket.socket)
            data = conn.recv(262144)
            now = time.time()
            if not data:
                sel.unregister(conn)
                conn.close()
                open_count -= 1
                continue
            buf = buffers[i] + data
            if not started[i]:
                head_end = buf.find(b"\r\n\r\n")
                if head_end < 0:
                    buffers[i] = buf
                    continue
                if not buf.startswith(b"HTTP/1.1 200"):
                    raise SystemExit(f"client {i}: {buf[:200]!r}")
                started[i] = True
                buf = buf[head_end + 4 :]
                ready += 1
                if ready == n:
                    Path(p["ready"]).touch()
            cut = buf.rfind(b"\n\n")
            if cut < 0:
                buffers[i] = buf
                continue
            whole, buffers[i] = buf[: cut + 2], buf[cut + 2 :]
            for match in STAMP_RE.finditer(whole):
                samples.append((now - float(match.group(1))) * 1000.0)
                counts[i] += 1
            if end in whole:
                sel.unregister(conn)
                conn.close()
                open_count -= 1
    with open(p["out"] + ".bin", "wb") as out:
        samples.tofile(out)
    Path(p["out"] + ".json").write_text(json.dumps({"counts": counts, "unfinished": open_count}))


def worker_throughput(p: dict[str, Any]) -> None:
    """One client reading as fast as it can; counts events in the raw bytes."""
    sock = socket.create_connection((HOST, p["port"]), timeout=10)
    sock.sendall(sse_request(p["path"], p["port"]))
    sock.settimeout(p["deadline"])
    end = p["end"].encode()
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("closed before the headers")
        answer += chunk
    status, _, rest = answer.partition(b"\r\n\r\n")
    if not status.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"bad answer: {status[:200]!r}")
    Path(p["ready"]).touch()
    # Received into one buffer, counted in place: a client that copied and allocated a
    # megabyte per recv took more CPU than the server (2 cores), and measured itself.
    # ``tail``: the last bytes before this read, for a pattern cut by the read's start.
    tail = (b"\n" + rest)[-TAIL:]
    logs = tail.count(LOG_PATTERN)
    gaps = missed = received = 0
    first = last = 0.0
    finished = False
    deadline = time.monotonic() + p["deadline"]
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    while (left := deadline - time.monotonic()) > 0:
        # Once events flow, 10 s of silence ends the client: a server that lost the end
        # marker (nchan has lost lines) must not hold it until the deadline, past which
        # the orchestrator gives up on the whole run.
        sock.settimeout(min(left, SILENCE) if first else left)
        try:
            n = sock.recv_into(buf)
        except TimeoutError:
            break
        if not n:
            break
        now = time.time()
        if not first:
            first = now
        received += n
        head = bytes(view[: min(n, TAIL)])
        seam = tail + head
        new_logs = (
            buf.count(LOG_PATTERN, 0, n)
            + seam.count(LOG_PATTERN)
            - tail.count(LOG_PATTERN)
            - head.count(LOG_PATTERN)
        )
        logs += new_logs
        if GAP_PATTERN in seam or buf.find(GAP_PATTERN, 0, n) >= 0:
            window = tail + bytes(view[:n])  # rare: parse the gap's data line
            for match in GAP_RE.finditer(window):
                if match.end() > len(tail):
                    gaps += 1
                    missed += int(match.group(1))
        if new_logs:
            last = now
        if end in seam or buf.find(end, 0, n) >= 0:
            finished = True
            last = now
            break
        tail = bytes(view[n - TAIL : n]) if n >= TAIL else (tail + head)[-TAIL:]
    sock.close()
    result = {
        "logs": logs,
        "gaps": gaps,
        "missed": missed,
        "bytes": received,
        "first": first,
        "last": last,
        "finished": finished,
    }
    Path(p["out"]).write_text(json.dumps(result))


def worker_idle(p: dict[str, Any]) -> None:
    """Many idle clients: connect in waves, then hold and read pings until told to stop."""
    raise_nofile()
    request = sse_request(p["path"], p["port"])
    n, wave = p["clients"], p["wave"]
    sel = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    pings = 0
    connected = 0
    pending: set[int] = set()
    deadline = time.monotonic() + p["deadline"]
    stop = Path(p["stop"])

    def drain(timeout: float) -> None:
        nonlocal pings, connected
        for key, _ in sel.select(timeout):
            sock, i = key.fileobj, key.data
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                raise SystemExit(f"client {i} closed by the server")
            if i in pending and b"event: connected" in data:
                pending.discard(i)
                connected += 1
            pings += data.count(b"event: ping")

    while len(socks) < n and time.monotonic() < deadline:
        while len(pending) < wave and len(socks) < n:
            sock = socket.create_connection((HOST, p["port"]), timeout=10)
            sock.sendall(request)
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ, len(socks))
            pending.add(len(socks))
            socks.append(sock)
        drain(0.05)
    while pending and time.monotonic() < deadline:
        drain(0.1)
    Path(p["ready"]).write_text(str(connected))
    while not stop.exists() and time.monotonic() < deadline:
        drain(0.2)
    Path(p["out"]).write_text(json.dumps({"connected": connected, "pings": pings}))
    for sock in socks:
        sock.close()


def publisher_latency(p: dict[str, Any]) -> None:
    """nchan: one POST per line, paced like the agent; responses drained on a thread."""
    sock = socket.create_connection((HOST, p["port"]), timeout=10)
    total = p["lines"] + 1
    drained = Drainer(sock, total)
    interval = p["interval"]
    start = time.perf_counter()
    for i in range(p["lines"]):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sock.sendall(publish_request(f"{time.time():.6f}".encode(), p["port"]))
    sock.sendall(publish_request(b"END", p["port"]))
    drained.finish(30.0)


def publisher_bulk(p: dict[str, Any]) -> None:
    """nchan: every line of the file as its own POST, pipelined in batches."""
    sock = socket.create_connection((HOST, p["port"]), timeout=10)
    lines = Path(p["file"]).read_bytes().splitlines()
    port = p["port"]
    # Requests are built before the clock starts: the agent's `cat` builds nothing either.
    batches = [
        b"".join(publish_request(line, port) for line in lines[start : start + 2000])
        for start in range(0, len(lines), 2000)
    ]
    drained = Drainer(sock, len(lines) + 1)
    Path(p["started"]).write_text(repr(time.time()))
    for batch in batches:
        sock.sendall(batch)
    sock.sendall(publish_request(b"END", port))
    drained.finish(p["deadline"])


def publish_request(body: bytes, port: int) -> bytes:
    return b"POST /pub HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n\r\n%s" % (
        port,
        len(body),
        body,
    )


class Drainer:
    """Reads (and counts) the publisher's responses so nginx never waits on them."""

    def __init__(self, sock: socket.socket, expected: int) -> None:
        self.sock = sock
        self.expected = expected
        self.seen = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        carry = b""
        while self.seen < self.expected:
            try:
                data = self.sock.recv(1 << 20)
            except OSError:
                return
            if not data:
                return
            window = carry + data
            self.seen += window.count(b"HTTP/1.1 2") - carry.count(b"HTTP/1.1 2")
            carry = window[-16:]

    def finish(self, timeout: float) -> None:
        self.thread.join(timeout)
        if self.seen < self.expected:
            raise SystemExit(f"publisher: {self.seen} of {self.expected} publishes answered")
        self.sock.close()


WORKERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "latency": worker_latency,
    "throughput": worker_throughput,
    "idle": worker_idle,
    "publish-latency": publisher_latency,
    "publish-bulk": publisher_bulk,
}


# ---- orchestration ---------------------------------------------------------------------


class Workers:
    """Worker processes of this script; all killed on exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, kind: str, params: dict[str, Any]) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        with log:
            proc = subprocess.Popen(
                [sys.executable, __file__, "_worker", kind, json.dumps(params)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def wait_files(self, paths: Sequence[Path], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(path.exists() for path in paths):
            failed = [p for p in self.procs if p.poll() not in (None, 0)]
            if failed or time.monotonic() > deadline:
                raise BenchError(f"workers not ready in time: {self.logs()}")
            time.sleep(0.02)

    def wait_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                code = proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise BenchError(f"worker {proc.pid} did not finish: {self.logs()}") from None
            if code != 0:
                raise BenchError(f"worker {proc.pid} failed ({code}): {self.logs()}")

    def logs(self) -> str:
        texts = [p.read_text(errors="replace") for p in sorted(self.workdir.glob("worker-*.log"))]
        return " | ".join(t.strip()[-300:] for t in texts if t.strip())

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@contextlib.contextmanager
def workers(workdir: Path) -> Iterator[Workers]:
    pool = Workers(workdir)
    try:
        yield pool
    finally:
        pool.kill()


NCHAN_CONF = """\
load_module {module};
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
{user}
worker_rlimit_nofile 20000;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 10000000;
    # A subscriber further behind than the buffer loses messages and is closed (nchan's
    # "gap"); the default 10 is far too small for a firehose.
    nchan_message_buffer_length 1000000;
    nchan_max_reserved_memory 1024M;
    server {{
        listen 127.0.0.1:{port};
        location = /pub {{
            nchan_publisher;
            nchan_channel_id bench;
        }}
        location = /sub {{
            nchan_subscriber eventsource;
            nchan_channel_id bench;
            nchan_eventsource_event log;
            nchan_subscriber_first_message newest;
        }}
    }}
}}
"""


class Nchan:
    """nginx + nchan on a free loopback port, one worker process (as the daemon: one core)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: Child | None = None
        self.port = 0

    def start(self) -> None:
        nginx = shutil.which("nginx")
        assert nginx is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            self.port = probe.getsockname()[1]
        conf = self.workdir / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(
            NCHAN_CONF.format(module=NCHAN_MODULE, tmp=self.workdir, port=self.port, user=user)
        )
        error_log = self.workdir / "error.log"
        self.proc = Child(
            [nginx, "-p", str(self.workdir), "-c", str(conf), "-e", str(error_log)],
            self.workdir / "nginx.out",
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.process.poll() is not None or time.monotonic() > deadline:
                    errors = error_log.read_text(errors="replace") if error_log.exists() else ""
                    raise BenchError(f"nginx did not start: {errors}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGQUIT (graceful: workers finish, then exit), 10 s, SIGKILL to the group."""
        if self.proc is not None:
            self.proc.stop(10, signal.SIGQUIT)


@contextlib.contextmanager
def running_nchan(workdir: Path) -> Iterator[Nchan]:
    server = Nchan(workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def nchan_available() -> bool:
    return shutil.which("nginx") is not None and NCHAN_MODULE.exists()


def create_agent(http: httpx.Client, name: str, command: list[str], pids: list[int]) -> None:
    body = {"name": name, "command": command, "format": "none", "stdin": True}
    response = http.post("/api/agents", json=body)
    if response.status_code != 201:
        raise BenchError(f"POST /api/agents: {response.status_code} {response.text}")
    pids.append(response.json()["pid"])


def wait_clients(http: httpx.Client, name: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        stats = http.get("/api/sse/stats").json()
        if stats["agents"].get(name, 0) >= count:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"{count} clients expected on {name}, stats say {stats}")
        time.sleep(0.05)


def go(http: httpx.Client, name: str) -> float:
    started = time.time()
    response = http.post(f"/api/agents/{name}/input", json={"data": "go\n"})
    if response.status_code != 200:
        raise BenchError(f"input: {response.status_code} {response.text}")
    return started


# ---- 1. latency ------------------------------------------------------------------------


@dataclass
class LatencySample:
    server: str
    p50: float
    p99: float
    p999: float
    max: float
    received: int
    expected: int
    dropped: int | None = None

    def row(self, label: str) -> list[object]:
        return [
            label,
            f"{self.p50:.2f}",
            f"{self.p99:.2f}",
            f"{self.p999:.2f}",
            f"{self.max:.1f}",
            f"{self.received}/{self.expected}",
            "" if self.dropped is None else self.dropped,
        ]


def latency_clients(
    pool: Workers, tmp: Path, port: int, path: str, end: bytes, args: argparse.Namespace
) -> list[tuple[Path, Path]]:
    per = split(args.latency_clients, args.latency_procs)
    files = []
    for k, clients in enumerate(per):
        out, ready = tmp / f"lat-{k}", tmp / f"lat-{k}.ready"
        params = {
            "port": port,
            "path": path,
            "clients": clients,
            "end": end.decode(),
            "out": str(out),
            "ready": str(ready),
            "deadline": args.latency_lines * args.interval + 120,
        }
        pool.start("latency", params)
        files.append((out, ready))
    pool.wait_files([ready for _, ready in files], WORKER_START_TIMEOUT)
    return files


def latency_result(
    server: str, files: list[tuple[Path, Path]], expected: int, dropped: int | None
) -> LatencySample:
    samples = array.array("d")
    for out, _ in files:
        with open(str(out) + ".bin", "rb") as f:
            samples.frombytes(f.read())
    ordered = sorted(samples)
    return LatencySample(
        server,
        percentile(ordered, 0.50),
        percentile(ordered, 0.99),
        percentile(ordered, 0.999),
        ordered[-1] if ordered else float("nan"),
        len(ordered),
        expected,
        dropped,
    )


def latency_daemon(tmp: Path, args: argparse.Namespace) -> LatencySample:
    pids: list[int] = []
    command = [sys.executable, "-c", PRODUCER, str(args.latency_lines), str(args.interval)]
    try:
        with (
            running_daemon(tmp / "daemon", env=DAEMON_ENV) as daemon,
            httpx.Client(base_url=daemon.url, timeout=30) as http,
            workers(tmp) as pool,
        ):
            create_agent(http, "lat", command, pids)
            files = latency_clients(
                pool, tmp, daemon.port, "/api/agents/lat/stream", DAEMON_END, args
            )
            wait_clients(http, "lat", args.latency_clients, 30)
            go(http, "lat")
            pool.wait_all(args.latency_lines * args.interval + 120)
            dropped = int(http.get("/api/sse/stats").json()["dropped_events_total"])
    finally:
        kill_leftovers(pids, command)
    return latency_result("trio_wrapper", files, args.latency_clients * args.latency_lines, dropped)


def latency_nchan(tmp: Path, args: argparse.Namespace) -> LatencySample:
    with running_nchan(tmp / "nginx") as nchan, workers(tmp) as pool:
        files = latency_clients(pool, tmp, nchan.port, "/sub", NCHAN_END, args)
        publisher = pool.start(
            "publish-latency",
            {"port": nchan.port, "lines": args.latency_lines, "interval": args.interval},
        )
        pool.wait_all(args.latency_lines * args.interval + 120)
        assert publisher.returncode == 0
    return latency_result("nchan", files, args.latency_clients * args.latency_lines, None)


# ---- 2. throughput ---------------------------------------------------------------------


@dataclass
class ThroughputSample:
    server: str
    per_client: list[float]  # log events/s, from "go" to the end marker
    events: list[int]
    gaps: int
    missed: int
    seconds: float
    expected: int
    cut_off: int  # clients whose stream ended before the end marker

    @property
    def median_rate(self) -> float:
        return median(self.per_client)

    @property
    def not_received(self) -> int:
        """Lines some client never got, over all clients (gap-reported or silently lost)."""
        return sum(self.expected - n for n in self.events)

    def row(self, label: str) -> list[object]:
        return [
            label,
            f"{self.median_rate:,.0f}",
            f"{min(self.per_client):,.0f}",
            f"{self.seconds:.2f}",
            f"{min(self.events)}/{self.expected}",
            self.gaps,
            self.missed,
            self.not_received,
            self.cut_off,
        ]


def firehose_file(lines: int) -> Path:
    """A deterministic file of ``lines`` lines (52 bytes each with the newline), cached."""
    cache = Path(tempfile.gettempdir()) / "trio_wrapper_bench"
    cache.mkdir(exist_ok=True)
    path = cache / f"sse-firehose-{lines}.txt"
    if not path.exists():
        body = b"".join(
            b"%07d the quick brown fox jumps over the lazy dog\n" % i for i in range(lines)
        )
        partial = path.with_suffix(".partial")
        partial.write_bytes(body)
        partial.rename(path)
    return path


def throughput_clients(
    pool: Workers, tmp: Path, port: int, path: str, end: bytes, args: argparse.Namespace
) -> list[Path]:
    outs, readies = [], []
    for k in range(args.throughput_clients):
        out, ready = tmp / f"tp-{k}.json", tmp / f"tp-{k}.ready"
        params = {
            "port": port,
            "path": path,
            "end": end.decode(),
            "out": str(out),
            "ready": str(ready),
            "deadline": args.throughput_timeout,
        }
        pool.start("throughput", params)
        outs.append(out)
        readies.append(ready)
    pool.wait_files(readies, WORKER_START_TIMEOUT)
    return outs


def throughput_result(
    server: str, outs: list[Path], started: float, expected: int, extra: int = 0
) -> ThroughputSample:
    """``extra``: events of the counted type per client that are not lines (nchan's END)."""
    results = [json.loads(out.read_text()) for out in outs]
    for r in results:
        r["logs"] -= extra
    if not any(r["logs"] for r in results):
        raise BenchError(f"{server}: no client got any line: {results[0]}")
    # A client that never saw the end marker still reports what it got and when (nchan has
    # lost its END, for every client at once); it is counted as unfinished, its lines lost.
    rates = [r["logs"] / (r["last"] - started) for r in results]
    return ThroughputSample(
        server,
        rates,
        [r["logs"] for r in results],
        sum(r["gaps"] for r in results),
        sum(r["missed"] for r in results),
        max(r["last"] for r in results) - started,
        expected,
        sum(not r["finished"] for r in results),
    )


def throughput_daemon(tmp: Path, args: argparse.Namespace, file: Path) -> ThroughputSample:
    pids: list[int] = []
    command = [*FIREHOSE, str(file)]
    try:
        with (
            running_daemon(tmp / "daemon", env=DAEMON_ENV) as daemon,
            httpx.Client(base_url=daemon.url, timeout=30) as http,
            workers(tmp) as pool,
        ):
            create_agent(http, "fire", command, pids)
            outs = throughput_clients(
                pool, tmp, daemon.port, "/api/agents/fire/stream", DAEMON_END, args
            )
            wait_clients(http, "fire", args.throughput_clients, 30)
            started = go(http, "fire")
            pool.wait_all(args.throughput_timeout + 30)
    finally:
        kill_leftovers(pids, command)
    return throughput_result("trio_wrapper", outs, started, args.throughput_lines)


def throughput_nchan(tmp: Path, args: argparse.Namespace, file: Path) -> ThroughputSample:
    with running_nchan(tmp / "nginx") as nchan, workers(tmp) as pool:
        outs = throughput_clients(pool, tmp, nchan.port, "/sub", NCHAN_END, args)
        stamp = tmp / "publisher.started"
        params = {
            "port": nchan.port,
            "file": str(file),
            "deadline": args.throughput_timeout,
            "started": str(stamp),
        }
        pool.start("publish-bulk", params)
        pool.wait_all(args.throughput_timeout + 30)
        started = float(stamp.read_text())
    # The END marker is an event of the same type, not a line of the file.
    return throughput_result("nchan", outs, started, args.throughput_lines, extra=1)


# ---- 3. idle clients -------------------------------------------------------------------


@dataclass
class IdleSample:
    before_kb: int
    connected_kb: int
    after_pings_kb: int
    clients: int
    pings: int

    @property
    def per_client_kb(self) -> float:
        return (self.after_pings_kb - self.before_kb) / self.clients

    def row(self, label: str) -> list[object]:
        return [
            label,
            self.before_kb,
            self.connected_kb,
            self.after_pings_kb,
            self.clients,
            self.pings,
            f"{(self.connected_kb - self.before_kb) / self.clients:.2f}",
            f"{self.per_client_kb:.2f}",
        ]


def idle_clients(
    pool: Workers, tmp: Path, tag: str, port: int, path: str, clients: int, procs: int
) -> tuple[list[Path], list[Path], Path]:
    stop = tmp / f"{tag}.stop"
    outs, readies = [], []
    for k, count in enumerate(split(clients, procs)):
        out, ready = tmp / f"{tag}-{k}.json", tmp / f"{tag}-{k}.ready"
        params = {
            "port": port,
            "path": path,
            "clients": count,
            "wave": 100,
            "out": str(out),
            "ready": str(ready),
            "stop": str(stop),
            "deadline": 300,
        }
        pool.start("idle", params)
        outs.append(out)
        readies.append(ready)
    pool.wait_files(readies, 300)
    return outs, readies, stop


def idle_daemon(tmp: Path, args: argparse.Namespace) -> IdleSample:
    pids: list[int] = []
    env = {**DAEMON_ENV, "TRIO_WRAPPER_SSE_PING_INTERVAL_SECONDS": str(args.ping_interval)}
    path = "/api/agents/idle/stream"
    try:
        with (
            running_daemon(tmp / "daemon", env=env) as daemon,
            httpx.Client(base_url=daemon.url, timeout=30) as http,
        ):
            create_agent(http, "idle", IDLE_COMMAND, pids)
            port = daemon.port
            # Warm-up: a few hundred clients come and go, so first-use allocations
            # (imports, caches, pools) are not counted per client.
            with workers(tmp) as warm:
                _, _, stop = idle_clients(warm, tmp, "warm", port, path, 200, 1)
                wait_clients(http, "idle", 200, 30)
                stop.touch()
                warm.wait_all(30)
            deadline = time.monotonic() + 30
            while http.get("/api/sse/stats").json()["total_clients"]:
                if time.monotonic() > deadline:
                    raise BenchError("warm-up clients were not removed")
                time.sleep(0.1)
            time.sleep(1.0)
            before = rss_kb(daemon.pid)
            with workers(tmp) as pool:
                outs, readies, stop = idle_clients(
                    pool, tmp, "idle", port, path, args.idle_clients, args.idle_procs
                )
                connected = sum(int(r.read_text()) for r in readies)
                if connected != args.idle_clients:
                    raise BenchError(f"{connected} of {args.idle_clients} clients connected")
                wait_clients(http, "idle", args.idle_clients, 30)
                time.sleep(1.0)
                connected_kb = rss_kb(daemon.pid)
                # Two ping rounds for every client.
                time.sleep(args.ping_interval * 2 + 1)
                after = rss_kb(daemon.pid)
                stats = http.get("/api/sse/stats").json()
                if stats["total_clients"] != args.idle_clients:
                    raise BenchError(f"clients lost while idle: {stats}")
                stop.touch()
                pool.wait_all(60)
            pings = sum(json.loads(out.read_text())["pings"] for out in outs)
    finally:
        kill_leftovers(pids, IDLE_COMMAND)
    return IdleSample(before, connected_kb, after, args.idle_clients, pings)


# ---- driver ----------------------------------------------------------------------------


def split(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="latency,throughput,idle")
    parser.add_argument("--no-nchan", action="store_true", help="skip the nginx+nchan peer")
    parser.add_argument("--latency-clients", type=int, default=100)
    parser.add_argument("--latency-procs", type=int, default=2)
    parser.add_argument("--latency-lines", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=0.001, help="seconds between lines")
    parser.add_argument("--throughput-clients", type=int, default=10)
    parser.add_argument("--throughput-lines", type=int, default=1_000_000)
    parser.add_argument("--throughput-timeout", type=float, default=180.0)
    parser.add_argument("--idle-clients", type=int, default=10_000)
    parser.add_argument("--idle-procs", type=int, default=2)
    parser.add_argument("--ping-interval", type=float, default=10.0)
    args = parser.parse_args()
    only = set(args.only.split(","))
    with_nchan = not args.no_nchan and nchan_available()
    raise_nofile()

    print(f"date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M:%S UTC')}")
    print(f"machine: {machine()}")
    print(f"load average before: {load_average()}")
    if not args.no_nchan and not with_nchan:
        print("nchan: not installed (Debian nginx + libnginx-mod-nchan): peer skipped")
    goals: list[str] = []

    if "latency" in only:
        print(
            f"\n== 1. latency: {args.latency_clients} clients, {args.latency_lines} lines, "
            f"one every {args.interval * 1000:g} ms ==",
            flush=True,
        )
        rows: list[list[object]] = []
        ours: list[LatencySample] = []
        theirs: list[LatencySample] = []
        for run in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="bench-sse-latency-") as tmp:
                sample = latency_daemon(Path(tmp), args)
            ours.append(sample)
            rows.append(sample.row(f"trio_wrapper run {run + 1}"))
            print(f"  trio_wrapper run {run + 1}: p50 {sample.p50:.2f} ms, p99 {sample.p99:.2f} ms")
            if with_nchan:
                with tempfile.TemporaryDirectory(prefix="bench-sse-latency-nchan-") as tmp:
                    peer = latency_nchan(Path(tmp), args)
                theirs.append(peer)
                rows.append(peer.row(f"nchan run {run + 1}"))
                print(f"  nchan run {run + 1}: p50 {peer.p50:.2f} ms, p99 {peer.p99:.2f} ms")
        p99 = median([s.p99 for s in ours])
        rows.append(
            ["trio_wrapper median", f"{median([s.p50 for s in ours]):.2f}", f"{p99:.2f}",
             f"{median([s.p999 for s in ours]):.2f}", "", "", ""]
        )  # fmt: skip
        if theirs:
            rows.append(
                ["nchan median", f"{median([s.p50 for s in theirs]):.2f}",
                 f"{median([s.p99 for s in theirs]):.2f}",
                 f"{median([s.p999 for s in theirs]):.2f}", "", "", ""]
            )  # fmt: skip
        print()
        print_table(
            ["latency (ms)", "p50", "p99", "p99.9", "max", "samples/expected", "dropped"], rows
        )
        complete = all(s.received == s.expected for s in ours)
        goals.append(
            goal_line(
                p99 <= GOAL_P99_MS and complete,
                f"latency p99 median {p99:.2f} ms (goal <= {GOAL_P99_MS:g} ms)"
                + ("" if complete else ", some events were not received"),
            )
        )

    if "throughput" in only:
        print(
            f"\n== 2. throughput: {args.throughput_lines:,} lines, "
            f"{args.throughput_clients} clients ==",
            flush=True,
        )
        file = firehose_file(args.throughput_lines)
        rows = []
        tp_ours: list[ThroughputSample] = []
        tp_theirs: list[ThroughputSample] = []
        for run in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="bench-sse-throughput-") as tmp:
                tsample = throughput_daemon(Path(tmp), args, file)
            tp_ours.append(tsample)
            rows.append(tsample.row(f"trio_wrapper run {run + 1}"))
            print(
                f"  trio_wrapper run {run + 1}: {tsample.median_rate:,.0f} events/s per client, "
                f"{tsample.gaps} gaps",
                flush=True,
            )
            if with_nchan:
                with tempfile.TemporaryDirectory(prefix="bench-sse-throughput-nchan-") as tmp:
                    tpeer = throughput_nchan(Path(tmp), args, file)
                tp_theirs.append(tpeer)
                rows.append(tpeer.row(f"nchan run {run + 1}"))
                print(
                    f"  nchan run {run + 1}: {tpeer.median_rate:,.0f} events/s per client",
                    flush=True,
                )
        rate = median([s.median_rate for s in tp_ours])
        rows.append(["trio_wrapper median", f"{rate:,.0f}", "", "", "", "", "", "", ""])
        if tp_theirs:
            peer_rate = median([s.median_rate for s in tp_theirs])
            rows.append(["nchan median", f"{peer_rate:,.0f}", "", "", "", "", "", "", ""])
        print()
        print_table(
            ["throughput", "events/s per client (median)", "slowest client", "seconds",
             "events (min)/lines", "gaps", "missed (gap events)", "not received", "cut off"],
            rows,
        )  # fmt: skip
        no_gap = all(s.gaps == 0 and s.cut_off == 0 and s.not_received == 0 for s in tp_ours)
        goals.append(
            goal_line(
                rate >= GOAL_EVENTS_PER_S and no_gap,
                f"throughput median {rate:,.0f} events/s per client (goal >= 300,000), "
                + ("no gap" if no_gap else "with gaps or missing events"),
            )
        )

    if "idle" in only:
        print(f"\n== 3. idle: {args.idle_clients:,} clients on one sleeping agent ==", flush=True)
        rows = []
        idle_samples: list[IdleSample] = []
        for run in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="bench-sse-idle-") as tmp:
                isample = idle_daemon(Path(tmp), args)
            idle_samples.append(isample)
            rows.append(isample.row(f"run {run + 1}"))
            print(f"  run {run + 1}: {isample.per_client_kb:.2f} KiB per client", flush=True)
        per_client = median([s.per_client_kb for s in idle_samples])
        rows.append(["median", "", "", "", "", "", "", f"{per_client:.2f}"])
        print()
        print_table(
            ["idle", "RSS before (KiB)", "connected (KiB)", "after pings (KiB)", "clients",
             "pings received", "KiB/client connected", "KiB/client after pings"],
            rows,
        )  # fmt: skip
        goals.append(
            goal_line(
                per_client <= GOAL_KB_PER_CLIENT,
                f"idle median {per_client:.2f} KiB per client (goal <= {GOAL_KB_PER_CLIENT:g})",
            )
        )

    print(f"\nload average after: {load_average()}")
    print()
    for line in goals:
        print(line)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_worker":
        WORKERS[sys.argv[2]](json.loads(sys.argv[3]))
        sys.exit(0)
    run_main(main)
