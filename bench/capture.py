"""Raw capture throughput: ``cat`` a 2,000,000-line transcript through trio_wrapper and,
in the same run, through supervisord, and compare how fast each gets it into its log file.

trio_wrapper: from the POST (the spawn) until the stdout log holds every byte, and until the
agent's status is terminal with every line counted: the goal (issue 17) is on the second,
when the run is done for its user; line work runs behind capture. supervisord: from
``startProcess`` over XML-RPC until its ``stdout_logfile`` holds every byte. The runs
alternate between the two.

    .venv/bin/python bench/capture.py [--runs 5] [--lines 2000000]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
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
from supervisor.xmlrpc import SupervisorTransport

CACHE_DIR = Path(tempfile.gettempdir()) / "trio_wrapper_bench"
TRANSCRIPT_VERSION = 1
POLL_SECONDS = 0.002
MB = 1_000_000

_WORDS = [
    "agent",
    "config",
    "parser",
    "reader",
    "stream",
    "buffer",
    "status",
    "worker",
    "client",
    "server",
    "request",
    "response",
    "handler",
    "session",
    "token",
    "module",
    "router",
    "daemon",
    "process",
    "output",
    "events",
]
_COMMANDS = (
    "ls -la",
    "git status",
    "git diff --stat",
    "pytest -q",
    "rg -n TODO src",
    "cat setup.cfg",
    "sed -n 1,80p app.py",
    "make lint",
)


def _transcript_line(rng: random.Random) -> str:
    """One plausible line of agent CLI output (mean ~28 bytes without the newline)."""
    w = rng.choice
    roll = rng.random()
    if roll < 0.04:
        return "model: gpt-5"
    if roll < 0.08:
        return "exec"
    if roll < 0.14:
        return f"bash -lc '{w(_COMMANDS)}'"
    if roll < 0.18:
        return f"tokens used: {rng.randint(100, 99_999)}"
    if roll < 0.22:
        return f"ERROR: {w(_WORDS)} failed: exit code {rng.randint(1, 127)}"
    if roll < 0.30:
        return ""
    if roll < 0.38:
        return f"succeeded in {rng.randint(1, 9999)}ms:"
    if roll < 0.55:
        return f"    {w(_WORDS)} = {w(_WORDS)}.{w(_WORDS)}()"
    if roll < 0.65:
        return f"def {w(_WORDS)}_{w(_WORDS)}(self):"
    if roll < 0.75:
        return f"+        return {w(_WORDS)}"
    if roll < 0.77:
        return "thinking"
    if roll < 0.85:
        return f"**Checking the {w(_WORDS)}**"
    return (
        f"src/{w(_WORDS)}/{w(_WORDS)}.py:{rng.randint(1, 999)}:{rng.randint(1, 99)}: "
        f"E501 line too long ({rng.randint(101, 180)} > 100 characters)"
    )


def transcript(lines: int) -> Path:
    """The cached transcript of ``lines`` lines (generated once, deterministically)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"transcript-v{TRANSCRIPT_VERSION}-{lines}.txt"
    if path.is_file():
        return path
    rng = random.Random(20260101 + lines)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="\n") as out:
        batch: list[str] = []
        for _ in range(lines):
            batch.append(_transcript_line(rng))
            if len(batch) == 10_000:
                out.write("\n".join(batch) + "\n")
                batch.clear()
        if batch:
            out.write("\n".join(batch) + "\n")
    os.replace(tmp, path)
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def wait_for_size(path: Path, size: int, deadline: float) -> None:
    while file_size(path) < size:
        if time.monotonic() > deadline:
            raise BenchError(f"{path} has {file_size(path)} of {size} bytes at the deadline")
        time.sleep(POLL_SECONDS)


@dataclass
class Source:
    path: Path
    size: int
    lines: int
    digest: str


# ---- trio_wrapper -------------------------------------------------------------------


def capture_trio_wrapper(
    client: httpx.Client, src: Source, name: str, timeout: float
) -> tuple[float, float]:
    """Seconds from the POST until the whole log is written, and until the agent is
    terminal with every line counted."""
    body = {"name": name, "command": ["cat", str(src.path)], "format": "none"}
    start = time.perf_counter()
    deadline = time.monotonic() + timeout
    response = client.post("/api/agents", json=body)
    if response.status_code != 201:
        raise BenchError(f"POST {name}: {response.status_code} {response.text}")
    log = Path(response.json()["logs"]["stdout"])
    # Watch the file without disturbing the daemon; ask it for the status only at the end.
    wait_for_size(log, src.size, deadline)
    logged = time.perf_counter() - start
    detail: dict[str, Any] = client.get(f"/api/agents/{name}").json()
    while detail["status"] not in TERMINAL:
        if time.monotonic() > deadline:
            raise BenchError(f"{name} still {detail['status']} at the deadline")
        time.sleep(POLL_SECONDS)
        detail = client.get(f"/api/agents/{name}").json()
    elapsed = time.perf_counter() - start
    verify(log, src, name)
    stdout = detail["streams"]["stdout"]
    if (detail["status"], stdout["bytes"], stdout["lines"]) != ("completed", src.size, src.lines):
        raise BenchError(
            f"{name}: status {detail['status']}, {stdout['bytes']} bytes, {stdout['lines']} "
            f"lines reported; expected completed, {src.size} bytes, {src.lines} lines"
        )
    client.delete(f"/api/agents/{name}")
    log.unlink()
    return logged, elapsed


# ---- supervisord --------------------------------------------------------------------

SUPERVISORD_CONF = """\
[unix_http_server]
file={dir}/supervisor.sock

[supervisord]
nodaemon=true
logfile={dir}/supervisord.log
pidfile={dir}/supervisord.pid
childlogdir={dir}
loglevel=warn

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{dir}/supervisor.sock
"""

PROGRAM_CONF = """
[program:{name}]
command={command}
autostart=false
autorestart=false
startsecs=0
stdout_logfile={dir}/{name}-stdout.log
stdout_logfile_maxbytes=0
stderr_logfile={dir}/{name}-stderr.log
stderr_logfile_maxbytes=0
"""


class Supervisord:
    """supervisord in the foreground with one program per run: ``cat SRC`` by default,
    or ``command`` (an argv, joined with spaces: no argument may hold one)."""

    def __init__(
        self, workdir: Path, src: Source, runs: int, command: list[str] | None = None
    ) -> None:
        self.dir = workdir
        self.programs = [f"cat{i}" for i in range(runs)]
        conf = SUPERVISORD_CONF.format(dir=workdir)
        argv = command or [shutil.which("cat") or "/bin/cat", str(src.path)]
        for name in self.programs:
            conf += PROGRAM_CONF.format(name=name, command=" ".join(argv), dir=workdir)
        self.conf = workdir / "supervisord.conf"
        self.conf.write_text(conf)
        self.process: subprocess.Popen[bytes] | None = None
        self.rpc: Any = self._proxy()

    def _proxy(self) -> Any:
        transport = SupervisorTransport(None, None, f"unix://{self.dir}/supervisor.sock")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def start(self) -> None:
        supervisord = Path(sys.executable).parent / "supervisord"
        self.process = subprocess.Popen(
            [str(supervisord), "-c", str(self.conf)],
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError("supervisord exited early; see supervisord.log")
            try:
                if self.rpc.supervisor.getState()["statename"] == "RUNNING":
                    return
            except (OSError, http.client.HTTPException, xmlrpc.client.Error):
                self.rpc = self._proxy()  # a failed request leaves the connection unusable
            time.sleep(0.05)
        raise BenchError("supervisord did not come up in time")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)

    def capture(self, run: int, src: Source, timeout: float) -> float:
        """Seconds from ``startProcess`` until the program's stdout log holds every byte."""
        name = self.programs[run]
        log = self.dir / f"{name}-stdout.log"
        start = time.perf_counter()
        self.rpc.supervisor.startProcess(name, False)
        wait_for_size(log, src.size, time.monotonic() + timeout)
        elapsed = time.perf_counter() - start
        verify(log, src, f"supervisord {name}")
        log.unlink()
        return elapsed


def verify(log: Path, src: Source, what: str) -> None:
    size = file_size(log)
    if size != src.size or sha256(log) != src.digest:
        raise BenchError(f"{what}: captured log differs from the source ({size} bytes)")


# ---- main ---------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each (default 5)")
    parser.add_argument("--lines", type=int, default=2_000_000, help="transcript lines")
    parser.add_argument("--timeout", type=float, default=120.0, help="per capture, seconds")
    add_daemon_env(parser)
    args = parser.parse_args()
    env = daemon_env(args, {})

    path = transcript(args.lines)
    src = Source(path, path.stat().st_size, args.lines, sha256(path))
    print(f"machine: {machine()}")
    print(f"load average before: {load_average()}")
    print(
        f"transcript: {src.path} ({src.lines:,} lines, {src.size:,} bytes, "
        f"{src.size / src.lines:.1f} bytes/line)"
    )
    tw_times: list[float] = []
    tw_counted: list[float] = []
    sv_times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-capture-") as tmp:
        workdir = Path(tmp)
        (workdir / "supervisord").mkdir()
        supervisord = Supervisord(workdir / "supervisord", src, args.runs)
        try:
            supervisord.start()
            with (
                running_daemon(workdir / "daemon", env=env or None) as daemon,
                httpx.Client(base_url=daemon.url, timeout=30.0) as client,
            ):
                for run in range(args.runs):
                    logged, counted = capture_trio_wrapper(client, src, f"cap-{run}", args.timeout)
                    tw_times.append(logged)
                    tw_counted.append(counted)
                    sv_times.append(supervisord.capture(run, src, args.timeout))
                    print(
                        f"run {run + 1}: trio_wrapper log complete {logged:.3f} s, "
                        f"all lines counted {counted:.3f} s; supervisord {sv_times[-1]:.3f} s",
                        flush=True,
                    )
        finally:
            supervisord.stop()

    def row(label: str, seconds: float) -> list[object]:
        return [
            label,
            f"{seconds:.3f}",
            f"{src.lines / seconds / 1e6:.2f}",
            f"{src.size / seconds / MB:.1f}",
        ]

    rows = [row(f"trio_wrapper log run {i + 1}", t) for i, t in enumerate(tw_times)]
    rows += [row(f"trio_wrapper counted run {i + 1}", t) for i, t in enumerate(tw_counted)]
    rows += [row(f"supervisord run {i + 1}", t) for i, t in enumerate(sv_times)]
    tw, sv = median(tw_times), median(sv_times)
    rows += [
        row("trio_wrapper log median", tw),
        row("trio_wrapper counted median", median(tw_counted)),
        row("supervisord median", sv),
    ]
    print()
    print_table(["capture", "seconds", "M lines/s", "MB/s"], rows)
    print()
    print(f"load average after: {load_average()}")
    print("every captured log: same size and sha256 as the source; daemon reported")
    print(f"{src.lines:,} stdout lines and {src.size:,} bytes for each run")
    tw_mbs, sv_mbs = src.size / tw / MB, src.size / sv / MB
    done_mbs = src.size / median(tw_counted) / MB
    print(f"log complete: trio_wrapper {tw_mbs:.1f} MB/s vs supervisord {sv_mbs:.1f} MB/s (median)")
    # Issue 17: a run is done for a user when its status says so, not when its log is full.
    print(
        goal_line(
            done_mbs >= sv_mbs,
            f"POST -> completed, every line counted: trio_wrapper {done_mbs:.1f} MB/s vs "
            f"supervisord {sv_mbs:.1f} MB/s (median; goal >= 1.0x)",
        )
    )
    return 0


if __name__ == "__main__":
    run_main(main)
