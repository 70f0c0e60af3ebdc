"""Where the time goes: py-spy on the daemon and on its extraction worker while agents
write a corpus file, and each process's busiest code printed.

One daemon (``trio-wrapper serve --port 0``, fresh logs dir, loopback only); its worker is
started first by a one-line agent, then py-spy records both processes (``--format raw``,
threads that wait are left out) while ``--runs`` agents write the file one after
another, each waited for until ``completed``. Only samples of a thread holding the GIL
count (``--gil``): the time each process spends running Python, which is what bounds
them. The raw profiles are kept with ``--keep``, for flame graphs.

    .venv/bin/python bench/hotspots.py --kind dense                  # cat: 64 KiB writes
    .venv/bin/python bench/hotspots.py --kind dense --writer line    # a write per line
    .venv/bin/python bench/hotspots.py --kind real-claude-json --lines 50000
    .venv/bin/python bench/hotspots.py --writer line --format none   # capture alone

Sampling slows both processes (by half and more at the default rate): the seconds printed
are not the benchmark's, only the shares are worth reading. A share is the fraction of
a process's samples whose stack holds the frame (``total``) or ends in it (``self``).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from common import (
    TERMINAL,
    BenchError,
    load_average,
    machine,
    print_table,
    run_main,
    running_daemon,
    worker_pids,
)
from corpus import KINDS, corpus_file, fmt_of, writer_command

POLL_SECONDS = 0.01  # each GET takes the daemon's core for a moment: kept light
SPY_START_SECONDS = 1.0  # py-spy attaches and starts sampling within this


@dataclass
class Profile:
    """One process's samples: how many, and per frame (``function (file)``)."""

    samples: int = 0
    total: collections.Counter[str] = field(default_factory=collections.Counter)
    own: collections.Counter[str] = field(default_factory=collections.Counter)


def read_raw(path: Path, package: str = "trio_wrapper") -> Profile:
    """py-spy's raw output (``frame;frame;… count`` a line, outermost first). Frames are
    kept by function and file, not line, so a function's lines add up."""
    profile = Profile()
    if not path.is_file():
        return profile
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        parts = stack.split(";")
        if parts[0].startswith("process "):
            parts.pop(0)  # py-spy names the process first when it follows subprocesses
        frames = [_function(frame) for frame in parts]
        profile.samples += n
        profile.own[frames[-1]] += n
        for frame in set(frames):
            if package in frame:
                profile.total[frame] += n
    return profile


def _function(frame: str) -> str:
    """``f (path/to/mod.py:123)`` → ``f (mod.py)``, with the package path kept."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rpartition(":")[0]
    marker = path.find("trio_wrapper/")
    short = path[marker:] if marker >= 0 else Path(path).name
    return f"{name} ({short})"


def run_agents(client: httpx.Client, command: list[str], fmt: str, runs: int) -> list[float]:
    seconds = []
    for run in range(runs):
        name = f"hotspots-{run}"
        start = time.perf_counter()
        response = client.post(
            "/api/agents", json={"name": name, "command": command, "format": fmt}
        )
        if response.status_code != 201:
            raise BenchError(f"POST {name}: {response.status_code} {response.text}")
        deadline = time.monotonic() + 300
        while True:
            detail: dict[str, Any] = client.get(f"/api/agents/{name}").json()
            if detail["status"] in TERMINAL:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"{name} still {detail['status']} after 300 s")
            time.sleep(POLL_SECONDS)
        seconds.append(time.perf_counter() - start)
        if detail["status"] != "completed":
            raise BenchError(f"{name} ended {detail['status']}: {detail.get('status_detail')}")
        client.delete(f"/api/agents/{name}")
    return seconds


def spy(py_spy: str, pid: int, out: Path, rate: int) -> subprocess.Popen[bytes]:
    argv = [py_spy, "record", "--gil", "--rate", str(rate), "--format", "raw"]
    return subprocess.Popen(
        [*argv, "-o", str(out), "-p", str(pid)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def report(name: str, profile: Profile, top: int, possible: float) -> None:
    """``possible``: the samples one always-busy thread would have given in the runs."""
    share = profile.samples / possible if possible else 0.0
    print(f"\n{name}: {profile.samples:,} samples holding the GIL, {share:.0%} of the runs' time")
    if not profile.samples:
        return
    own = [[f"{n / profile.samples:.1%}", frame] for frame, n in profile.own.most_common(top)]
    print_table(["self", "frame"], own)
    print()
    total = [[f"{n / profile.samples:.1%}", frame] for frame, n in profile.total.most_common(top)]
    print_table(["total", "frame (trio_wrapper's only)"], total)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", default="dense", choices=KINDS, help="corpus file")
    parser.add_argument("--lines", type=int, default=200_000, help="lines of the file")
    parser.add_argument(
        "--writer", choices=("cat", "line"), default="cat", help="64 KiB writes, or one per line"
    )
    parser.add_argument(
        "--format", default=None, help="the agents' format (default: the corpus file's own)"
    )
    parser.add_argument("--runs", type=int, default=3, help="agents, one after another")
    parser.add_argument("--rate", type=int, default=250, help="samples a second")
    parser.add_argument("--top", type=int, default=20, help="frames shown per table")
    parser.add_argument("--keep", action="store_true", help="keep the raw profiles")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        raise BenchError("py-spy is not installed (it is in the bench extra)")
    path = corpus_file(args.kind, args.lines)
    command = writer_command(path) if args.writer == "line" else ["/bin/cat", str(path)]
    print(f"machine: {machine()}")
    print(f"load average before: {load_average()}")
    fmt = args.format or fmt_of(args.kind)
    print(f"{args.kind}, {args.lines:,} lines, written by {args.writer}, format {fmt}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-hotspots-"))
    spies: list[subprocess.Popen[bytes]] = []
    try:
        with (
            running_daemon(tmp / "daemon") as daemon,
            httpx.Client(base_url=daemon.url, timeout=60.0) as client,
        ):
            run_agents(client, ["/bin/echo", "hello"], "text", 1)  # the worker starts
            workers = worker_pids(daemon.pid)
            if len(workers) != 1:
                raise BenchError(f"expected one extraction worker, found {workers}")
            targets = {"daemon": daemon.pid, "worker": workers[0]}
            for name, pid in targets.items():
                spies.append(spy(py_spy, pid, tmp / f"{name}.raw", args.rate))
            time.sleep(SPY_START_SECONDS)
            seconds = run_agents(client, command, fmt, args.runs)
            for process in spies:
                process.send_signal(signal.SIGINT)
            for process in spies:
                process.wait(60)
            # The daemon logs it when it gives its worker up (runs then extract in it).
            gave_up = "extraction_worker_died" in daemon.stderr_path.read_text(errors="replace")
        print(f"runs (slowed by sampling): {', '.join(f'{s:.3f} s' for s in seconds)}")
        print(f"load average after: {load_average()}")
        if gave_up:
            print("THE DAEMON GAVE ITS EXTRACTION WORKER UP during the runs (its log says why)")
        for name in targets:
            report(name, read_raw(tmp / f"{name}.raw"), args.top, args.rate * sum(seconds))
    finally:
        for process in spies:
            if process.poll() is None:
                process.kill()
                process.wait()
        if args.keep:
            print(f"\nraw profiles: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    run_main(main)
