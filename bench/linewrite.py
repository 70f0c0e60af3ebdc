"""A child writing one line per ``write(2)``: POST → ``completed`` against supervisord.

The child is ``python3 bench/corpus.py write FILE`` (one ``write`` per line of a corpus
file, by default 200,000 lines of the dense corpus); ``--writer cat`` runs ``cat FILE``
(64 KiB writes) instead. Each run, alternately:

- trio_wrapper: from just before the POST until ``GET /api/agents/<name>`` says
  ``completed`` with every line counted (``streams.stdout.lines``, and
  ``extraction.total_lines`` when extracting), for each ``--format`` (``auto`` and ``none``
  by default); with ``--sse`` one client reads ``/api/events`` as fast as it can meanwhile,
  and must receive every line of the run (as ``log`` events) and every record (as
  ``extraction`` events) with no ``gap``;
- supervisord: from ``startProcess`` until its log holds every byte of the same child;
- the child alone: its wall clock writing to a pipe that ``cat > /dev/null`` drains.

Then, per format, a slow child (a line every 2 ms, 200 lines, a fifth of them error reports)
prints the time just before it exits as its last line: the figure is how long after that
the run's ``completed_at`` is (goal: 50 ms).

Every log is compared with the source (size and sha256). Medians of ``--runs``.

    .venv/bin/python bench/linewrite.py [--runs 3] [--kind dense] [--lines 200000]
        [--writer line|cat] [--format auto --format none] [--sse]
"""

from __future__ import annotations

import argparse
import datetime
import re
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from capture import Source, Supervisord, file_size, sha256, verify
from common import (
    TERMINAL,
    BenchError,
    add_daemon_env,
    daemon_env,
    goal_line,
    load_average,
    machine,
    median,
    print_table,
    run_main,
    running_daemon,
)
from corpus import KINDS, corpus_file, writer_command

POLL_SECONDS = 0.002
AUTO_FACTOR = 1.5  # goal: format auto within this many times supervisord's capture
NONE_FACTOR = 1.1


def child_command(writer: str, path: Path) -> list[str]:
    return writer_command(path) if writer == "line" else ["/bin/cat", str(path)]


def child_alone(command: list[str]) -> float:
    """Seconds the child takes writing into a pipe that is drained at once."""
    start = time.perf_counter()
    with subprocess.Popen(command, stdout=subprocess.PIPE) as child:
        sink = subprocess.run(
            ["/bin/cat"], stdin=child.stdout, stdout=subprocess.DEVNULL, check=False
        )
        child.wait()
    elapsed = time.perf_counter() - start
    if child.returncode or sink.returncode:
        raise BenchError(f"the child alone exited {child.returncode}")
    return elapsed


@dataclass
class SseTally:
    lines: int = 0
    records: int = 0
    gaps: int = 0
    missed: int = 0
    complete: bool = False
    error: str = ""


LOG = b"\nevent: log\n"
RECORD = b"\nevent: extraction\n"
COMPLETE = b"\nevent: complete\n"
GAP_RE = re.compile(rb"\nevent: gap\ndata: [^\n]*\"missed\":(\d+)")
TAIL = 512  # bytes of the previous read kept for a pattern cut by a read's start


class EventsReader(threading.Thread):
    """One ``/api/events`` client on a raw socket, reading as fast as it can and counting
    ``log``, ``extraction`` and ``gap`` events in the raw bytes (no parsing, no copy of a
    read), until the first ``complete``: one agent runs at a time."""

    def __init__(self, port: int, tally: SseTally) -> None:
        super().__init__(daemon=True)
        self.tally = tally
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(
            f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        self.answer = b""
        while b"event: connected" not in self.answer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise BenchError("/api/events closed before its connected event")
            self.answer += chunk
        if not self.answer.startswith(b"HTTP/1.1 200"):
            raise BenchError(f"/api/events answered {self.answer[:100]!r}")

    def run(self) -> None:
        tally = self.tally
        tail = self.answer[-TAIL:]
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        try:
            while True:
                n = self.sock.recv_into(buf)
                if not n:
                    tally.error = "the stream ended before complete"
                    return
                window = tail + bytes(view[:n])
                tally.lines += window.count(LOG) - tail.count(LOG)
                tally.records += window.count(RECORD) - tail.count(RECORD)
                for match in GAP_RE.finditer(window):
                    if match.end() > len(tail):
                        tally.gaps += 1
                        tally.missed += int(match.group(1))
                if window.find(COMPLETE, max(0, len(tail) - len(COMPLETE))) >= 0:
                    tally.complete = True
                    return
                tail = window[-TAIL:]
        except OSError as exc:
            tally.error = repr(exc)
        finally:
            self.sock.close()


def trio_wrapper_run(
    client: httpx.Client,
    port: int,
    src: Source,
    command: list[str],
    name: str,
    fmt: str,
    sse: bool,
    timeout: float,
) -> tuple[float, SseTally | None, int]:
    """Seconds from the POST until ``completed`` with every line counted; the SSE tally;
    the records the run found."""
    body = {"name": name, "command": command, "format": fmt}
    tally = SseTally() if sse else None
    result: dict[str, Any] = {}

    def post_and_wait() -> None:
        deadline = time.monotonic() + timeout
        start = time.perf_counter()
        response = client.post("/api/agents", json=body)
        if response.status_code != 201:
            raise BenchError(f"POST {name}: {response.status_code} {response.text}")
        # The log file first, watched on disk (which costs the daemon nothing), then the
        # status, asked for every 2 ms.
        log = Path(response.json()["logs"]["stdout"])
        while file_size(log) < src.size and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        while True:
            detail: dict[str, Any] = client.get(f"/api/agents/{name}").json()
            lines = detail["streams"]["stdout"]["lines"]
            counted = fmt == "none" or detail["extraction"]["total_lines"] >= src.lines
            if detail["status"] in TERMINAL and lines >= src.lines and counted:
                break
            if detail["status"] in TERMINAL and detail["status"] != "completed":
                raise BenchError(f"{name} ended {detail['status']}: {detail.get('error')}")
            if time.monotonic() > deadline:
                raise BenchError(f"{name}: {detail['status']}, {lines} lines at the deadline")
            time.sleep(POLL_SECONDS)
        result["seconds"] = time.perf_counter() - start
        result["detail"] = detail

    reader = None
    if tally is not None:
        reader = EventsReader(port, tally)
        reader.start()
    post_and_wait()
    if reader is not None:
        reader.join(timeout)
    detail = result["detail"]
    log = Path(detail["logs"]["stdout"])
    verify(log, src, name)
    if detail["status"] != "completed" or detail["streams"]["stdout"]["lines"] != src.lines:
        raise BenchError(f"{name}: {detail['status']}, {detail['streams']['stdout']} lines")
    records = int(detail["extraction"]["total_matches"])
    if tally is not None and (
        tally.gaps or tally.lines != src.lines or tally.records != records or not tally.complete
    ):
        why = f" ({tally.error})" if tally.error else ""
        raise BenchError(
            f"{name}: the SSE client got {tally.lines} lines of {src.lines}, {tally.records} "
            f"records of {records}, {tally.gaps} gaps ({tally.missed} missed){why}"
        )
    client.delete(f"/api/agents/{name}")
    for suffix in ("-stdout.log", "-stderr.log", "-events.jsonl"):
        Path(str(log).removesuffix("-stdout.log") + suffix).unlink(missing_ok=True)
    return result["seconds"], tally, records


# A slow child: a line every 2 ms (a fifth of them an error report, an extraction record),
# then the time just before it exits, as its last line.
SLOW_CHILD = (
    "import time\n"
    "for i in range(200):\n"
    "    print(f'ERROR: step {i} failed' if i % 5 == 0 else f'step {i}', flush=True)\n"
    "    time.sleep(0.002)\n"
    "print(repr(time.time()), flush=True)\n"
)
SLOW_GOAL_MS = 50.0


def slow_completion(client: httpx.Client, name: str, fmt: str, timeout: float) -> float:
    """Milliseconds from the slow child's last line until its run's ``completed_at``."""
    body = {"name": name, "command": ["/usr/bin/python3", "-S", "-c", SLOW_CHILD], "format": fmt}
    response = client.post("/api/agents", json=body)
    if response.status_code != 201:
        raise BenchError(f"POST {name}: {response.status_code} {response.text}")
    deadline = time.monotonic() + timeout
    while (detail := client.get(f"/api/agents/{name}").json())["status"] not in TERMINAL:
        if time.monotonic() > deadline:
            raise BenchError(f"{name} still {detail['status']} at the deadline")
        time.sleep(0.05)
    if detail["status"] != "completed" or detail["extraction"]["total_matches"] < (
        40 if fmt != "none" else 0
    ):
        raise BenchError(f"{name}: {detail['status']}, {detail['extraction']}")
    log = Path(detail["logs"]["stdout"])
    exited = float(log.read_text().splitlines()[-1])
    completed = datetime.datetime.fromisoformat(detail["completed_at"]).timestamp()
    client.delete(f"/api/agents/{name}")
    return (completed - exited) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kind", default="dense", choices=KINDS)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--writer", default="line", choices=("line", "cat"))
    parser.add_argument("--format", action="append", dest="formats", default=[])
    parser.add_argument("--sse", action="store_true", help="one client on /api/events")
    parser.add_argument(
        "--slow-runs",
        type=int,
        default=5,
        help="runs of the slow child (a line every 2 ms): completed after its exit, ms",
    )
    parser.add_argument("--timeout", type=float, default=120.0)
    add_daemon_env(parser)
    args = parser.parse_args()
    env = daemon_env(args, {})
    formats = args.formats or ["auto", "none"]
    path = corpus_file(args.kind, args.lines)
    src = Source(path, path.stat().st_size, args.lines, sha256(path))
    command = child_command(args.writer, path)
    print(f"machine: {machine()}")
    print(f"load average before: {load_average()}")
    print(
        f"child: {' '.join(command)} ({src.lines:,} lines, {src.size:,} bytes, "
        f"writer {args.writer}){', one /api/events client' if args.sse else ''}"
    )
    times: dict[str, list[float]] = {fmt: [] for fmt in formats}
    sv_times: list[float] = []
    alone: list[float] = []
    records: dict[str, int] = {}
    slow: dict[str, list[float]] = {fmt: [] for fmt in formats}
    with tempfile.TemporaryDirectory(prefix="bench-linewrite-") as tmp:
        workdir = Path(tmp)
        (workdir / "supervisord").mkdir()
        supervisord = Supervisord(workdir / "supervisord", src, args.runs, command)
        try:
            supervisord.start()
            with (
                running_daemon(workdir / "daemon", env=env or None) as daemon,
                httpx.Client(base_url=daemon.url, timeout=30.0) as client,
            ):
                for run in range(args.runs):
                    parts = []
                    for fmt in formats:
                        seconds, tally, found = trio_wrapper_run(
                            client,
                            daemon.port,
                            src,
                            command,
                            f"lw-{fmt}-{run}",
                            fmt,
                            args.sse,
                            args.timeout,
                        )
                        times[fmt].append(seconds)
                        records[fmt] = found
                        extra = ""
                        if tally is not None:
                            extra = f", SSE {tally.lines} lines {tally.records} records"
                        parts.append(f"{fmt} {seconds:.3f} s ({found:,} records{extra})")
                    sv_times.append(supervisord.capture(run, src, args.timeout))
                    alone.append(child_alone(command))
                    print(
                        f"run {run + 1}: trio_wrapper {'; '.join(parts)}; supervisord "
                        f"{sv_times[-1]:.3f} s; the child alone {alone[-1]:.3f} s",
                        flush=True,
                    )
                for fmt in formats:
                    for run in range(args.slow_runs):
                        slow[fmt].append(
                            slow_completion(client, f"slow-{fmt}-{run}", fmt, args.timeout)
                        )
        finally:
            supervisord.stop()
    sv = median(sv_times)
    rows: list[list[object]] = []
    for fmt in formats:
        t = median(times[fmt])
        runs = " / ".join(f"{x:.3f}" for x in times[fmt])
        rows.append([f"trio_wrapper {fmt}", runs, f"{t:.3f}", f"{t / sv:.2f}"])
    rows.append(["supervisord", " / ".join(f"{x:.3f}" for x in sv_times), f"{sv:.3f}", "1.00"])
    rows.append(
        ["the child alone", " / ".join(f"{x:.3f}" for x in alone), f"{median(alone):.3f}", ""]
    )
    print()
    print_table(["POST → completed", "runs s", "median s", "x supervisord"], rows)
    if args.slow_runs:
        print()
        print_table(
            ["slow child, exit → completed", "runs ms", "median ms"],
            [
                [
                    f"format {fmt}",
                    " / ".join(f"{x:.1f}" for x in slow[fmt]),
                    f"{median(slow[fmt]):.1f}",
                ]
                for fmt in formats
            ],
        )
    print(f"load average after: {load_average()}")
    print("verified every run: log = source (size, sha256), completed, every line counted")
    if args.sse:
        print("and the /api/events client got every line and record, no gap")
    for fmt in formats:
        factor = NONE_FACTOR if fmt == "none" else AUTO_FACTOR
        ratio = median(times[fmt]) / sv
        print(goal_line(ratio <= factor, f"format {fmt} {ratio:.2f}x supervisord (goal {factor}x)"))
    for fmt in formats:
        if args.slow_runs:
            ms = median(slow[fmt])
            print(
                goal_line(
                    ms <= SLOW_GOAL_MS,
                    f"slow child, format {fmt}: completed {ms:.1f} ms after its exit "
                    f"(goal {SLOW_GOAL_MS:.0f} ms)",
                )
            )
    return 0


if __name__ == "__main__":
    run_main(main)
