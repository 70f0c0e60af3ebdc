"""Shared helpers for the benchmarks: the daemon as a subprocess, timing, medians, tables.

The daemon is started exactly as a user would start it (``trio-wrapper serve --port 0``),
by the launcher the end-to-end tests use (tests/daemon.py): no config file, its stderr in
a file in the run's temporary directory, from which the bound port is read. Everything
started here is stopped in ``finally`` blocks by the callers.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import signal
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import httpx
import trio

ROOT = Path(__file__).resolve().parent.parent
# ``python bench/x.py`` puts bench/ on sys.path, not the repository: the launcher is there.
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

# The benches import the launcher (running_daemon, Child) from here.
from tests.daemon import Child, LaunchError, running_daemon  # noqa: E402, F401

TERMINAL = frozenset({"completed", "failed", "stopped", "interrupted"})


class BenchError(Exception):
    """The benchmark itself could not run (not a missed goal)."""


def kill_leftovers(pids: Iterable[int], command: Sequence[str]) -> int:
    """SIGKILL agents that outlived their daemon (normally none); return how many.

    A pid is only signalled while its command line is still ``command``, so a recycled
    pid is never hit.
    """
    expected = b"\0".join(arg.encode() for arg in command) + b"\0"
    killed = 0
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes() != expected:
                continue
            # Agents run in their own session: their pid is their process group id.
            os.killpg(pid, signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        killed += 1
    return killed


def worker_pids(daemon: int) -> list[int]:
    """The daemon's extraction worker process (a child running trio_wrapper.extract.worker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rpartition(")")[2].split()[1])
            if ppid == daemon and b"trio_wrapper.extract.worker" in (
                stat.with_name("cmdline").read_bytes()
            ):
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue  # a process that ended while we looked
    return found


def daemon_rss_kb(daemon: int) -> int:
    """VmRSS of the daemon and of its extraction worker (not of the agents), in KiB."""
    return rss_kb(daemon) + sum(rss_kb(pid) for pid in worker_pids(daemon))


def rss_kb(pid: int) -> int:
    """VmRSS of one process (its children are not counted), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def add_daemon_env(parser: argparse.ArgumentParser) -> None:
    """``--daemon-env KEY=VALUE`` (repeatable): a setting for the daemon under test, e.g.
    ``TRIO_WRAPPER_AGENTS_CGROUPS=false`` to measure without a cgroup per agent."""
    parser.add_argument(
        "--daemon-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for the daemon, e.g. TRIO_WRAPPER_AGENTS_CGROUPS=false (repeatable)",
    )


def daemon_env(args: argparse.Namespace, base: dict[str, str]) -> dict[str, str]:
    extra = dict(item.split("=", 1) for item in args.daemon_env if "=" in item)
    if len(extra) != len(args.daemon_env):
        raise BenchError("--daemon-env takes KEY=VALUE")
    return {**base, **extra}


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def code_fingerprint() -> str:
    """A short hash of the daemon's source, to tell which code a figure was measured on."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "trio_wrapper").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def machine() -> str:
    return (
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; trio_wrapper source {code_fingerprint()}"
    )


def load_average() -> str:
    """The 1/5/15-minute load averages: other work on the machine skews every figure."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain fixed-width table (also valid Markdown)."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def fmt(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |"

    print(fmt(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print(fmt(row))


def goal_line(met: bool, text: str) -> str:
    return f"{'GOAL MET' if met else 'GOAL MISSED'}: {text}"


async def start_agents(
    client: httpx.AsyncClient,
    names: Sequence[str],
    command: Sequence[str],
    concurrency: int,
    pids: list[int],
) -> list[dict[str, Any]]:
    """POST one agent per name, ``concurrency`` requests in flight; each must answer 201.

    Every started agent's pid is appended to ``pids`` at once, for ``kill_leftovers``.
    """
    details: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    pending = iter(names)

    async def worker() -> None:
        for name in pending:
            body = {"name": name, "command": list(command), "format": "none"}
            try:
                response = await client.post("/api/agents", json=body)
            except httpx.HTTPError as exc:
                failures.append(f"POST {name}: {exc!r}")
                return
            if response.status_code != 201:
                failures.append(f"POST {name}: {response.status_code} {response.text}")
                return
            details[name] = response.json()
            pids.append(details[name]["pid"])

    async with trio.open_nursery() as nursery:
        for _ in range(min(concurrency, len(names))):
            nursery.start_soon(worker)
    if failures:
        raise BenchError(f"{len(failures)} POSTs failed, first: {failures[0]}")
    return [details[name] for name in names]


async def count_running(client: httpx.AsyncClient) -> int:
    response = await client.get("/api/agents", params={"status": "running"})
    response.raise_for_status()
    return int(response.json()["count"])


def run_main(main: Callable[[], int]) -> NoReturn:
    """A bench's entry point: its exit code, or 1 with one line when the run itself failed."""
    try:
        sys.exit(main())
    except (BenchError, LaunchError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(1)
