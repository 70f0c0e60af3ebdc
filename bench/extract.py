"""End-to-end extraction throughput: capture, line work, extraction, counts and events file.

Every file of the benchmark corpus (bench/corpus.py: ``sparse`` about 5 % of lines a record,
``mixed`` 25 %, ``dense`` 59 % with every category at least one line in 20, ``real-text``
codex's plain output from tests/fixtures/transcripts repeated, and the real
``codex-json`` / ``claude-stream-json`` transcripts repeated) is run through a REAL agent
(``cat FILE``, 64 KiB writes, its own format) of a real daemon. Timed: from the POST until
GET /api/agents/<name> says ``completed`` with ``extraction.total_lines`` equal to the
file's line count. Beside each text file, in the same run, Google's mtail (``--one_shot``)
counts the same categories with equivalent regexes over the same file; timed: the mtail
process, wall clock. The runs alternate between the two. Per category, both counts are
printed (docs/benchmarks-extract.md says where and why they differ).

Every run is verified: the stdout log has the source's size, the events file holds one
record line per ``extraction.total_matches`` (and the same count per type as
``matches_by_type``), and the run's meta file agrees.

    .venv/bin/python bench/extract.py [--runs 3] [--lines 2000000] [--json-lines 200000]
        [--kinds sparse,mixed,dense,real-text,real-codex-json,real-claude-json]

Needs ``mtail`` on PATH (Debian: ``apt-get install mtail``). A line-per-write child is
bench/linewrite.py's.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
from common import (
    TERMINAL,
    BenchError,
    goal_line,
    load_average,
    machine,
    median,
    print_table,
    run_main,
    running_daemon,
    worker_pids,
)
from corpus import KINDS, corpus_file, fmt_of, iter_kinds

POLL_SECONDS = 0.01  # GET polling is kept light: each request takes the daemon's one core
FILE_POLL_SECONDS = 0.002  # watching the log file's size costs the daemon nothing
TEXT_GOAL = 1_000_000  # lines/s, end to end
MTAIL_FACTOR = 10.0  # trio_wrapper at least this many times mtail's lines/s
JSON_GOAL = 250_000  # lines/s, end to end, each JSON format

# The text extractor's categories as mtail regexes; the type names are those of
# ``matches_by_type``. See docs/benchmarks-extract.md for the correspondence.
# Long regexes of the program, spliced in at @NAME@.
_MTAIL_SESSION = (
    r"^(?:OpenAI Codex v[0-9]"
    r"|(?i:model|provider|workdir|session[ _]id|approval|sandbox"
    r"|reasoning effort|reasoning summaries): \S)"
)
_MTAIL_ERROR = (
    r"(?:(?:error|ERROR|Error|fatal|FATAL|Fatal|panic|warning|WARNING|Warning|WARN)"
    r"(?:\[[^\]]*\])?"
    r"|(?:\w+\.)*[A-Z][A-Za-z]*(?:Error|Exception))"
)
_MTAIL_FILE_OP = (
    r"^(?:(?:[\x{2022}*-] )?"
    r"(?:(?i:created?|creating|wrote|writing|added|modified|modifying|updated|updating"
    r"|edited|deleted|deleting|removed|read)(?: file)?:?"
    r"|(?i:file) (?i:created|modified|updated|deleted)(?: successfully)?(?: at)?:?)"
    r" [`'\"]?[^\s`'\"]*(?:\/[^\s`'\"]*|\.[A-Za-z][\w-]{0,9})[`'\"]?(?: \(\+\d+ -\d+\))?"
    r"|[AMDR] [^\s`'\"]*[\/.]\S*)[ \t]*$"
)
_MTAIL_TEMPLATE = r"""# trio_wrapper's text categories (matches_by_type), one regex each
counter lines_total
counter records by type
hidden gauge in_fence

const ANSI /(?:\x1b\[[0-9;]*m)*/

# every line, blank ones included (extraction.total_lines)
/$/ {
  lines_total++
}

# code_block: a ``` or ~~~ fence opens a block, the next one closes it
/^ {0,3}(?:```|~~~)/ {
  in_fence == 0 {
    records["code_block"]++
    in_fence = 1
  } else {
    in_fence = 0
  }
}

# nothing inside a code block counts
in_fence == 0 {
  # session: the banner's version and the header's key: value lines
  /@SESSION@/ {
    records["session"]++
  }
  # block markers: user -> prompt, codex -> response, thinking -> state, exec -> tool_call
  /^user[ \t]*$/ {
    records["prompt"]++
  }
  /^codex[ \t]*$/ {
    records["response"]++
  }
  /^thinking[ \t]*$/ {
    records["state"]++
  }
  /^(?:exec[ \t]*|apply_patch\([^)]*\) exited -?\d+.*)$/ {
    records["tool_call"]++
  }
  # metric: tokens used (the number on the same or the next line)
  /^tokens used/ {
    records["metric"]++
  }
  # error: error and warning reports, ANSI colour allowed around the keyword
  /^/ + ANSI + /@ERROR@/ + ANSI + /:[ \t]*\S/ {
    records["error"]++
  }
  # file_op: "Created src/app.py", "- Modified: a/b.ts (+3 -1)", "File deleted: x.md",
  # and the "A path" entries of a file update block
  /@FILE_OP@/ {
    records["file_op"]++
  }
}
"""
MTAIL_PROGRAM = (
    _MTAIL_TEMPLATE.replace("@SESSION@", _MTAIL_SESSION)
    .replace("@ERROR@", _MTAIL_ERROR)
    .replace("@FILE_OP@", _MTAIL_FILE_OP)
)


@dataclass
class Source:
    fmt: str
    path: Path
    lines: int
    size: int
    kind: str = ""


@dataclass
class TrioRun:
    seconds: float
    cpu: float  # user + system CPU seconds of the daemon and its extraction worker
    total_matches: int
    by_type: dict[str, int]
    event_records: int


@dataclass
class MtailRun:
    seconds: float
    cpu: float  # mtail's user + system CPU seconds (it is multi-threaded)
    lines: int
    by_type: dict[str, int] = field(default_factory=dict)


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (its children not included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def trio_cpu_seconds(daemon: int) -> float:
    """CPU time of the daemon and of its extraction worker: the whole cost of extraction."""
    return cpu_seconds(daemon) + sum(cpu_seconds(pid) for pid in worker_pids(daemon))


def count_event_records(path: Path) -> Counter[str]:
    """Record lines of an events file by type (state changes of the run have no line_num)."""
    decoder = msgspec.json.Decoder()
    counts: Counter[str] = Counter()
    with open(path, "rb") as handle:
        for line in handle:
            event = decoder.decode(line)
            if "line_num" in event:
                counts[str(event["type"])] += 1
    return counts


# ---- trio_wrapper -------------------------------------------------------------------


def run_trio_wrapper(
    client: httpx.Client, pid: int, src: Source, name: str, timeout: float
) -> TrioRun:
    """Seconds from the POST until the agent is completed with every line counted."""
    body = {"name": name, "command": ["cat", str(src.path)], "format": src.fmt}
    deadline = time.monotonic() + timeout
    cpu_before = trio_cpu_seconds(pid)
    start = time.perf_counter()
    response = client.post("/api/agents", json=body)
    if response.status_code != 201:
        raise BenchError(f"POST {name}: {response.status_code} {response.text}")
    log = Path(response.json()["logs"]["stdout"])
    # Capture first (watched on disk, without disturbing the daemon), then the counts.
    while file_size(log) < src.size:
        if time.monotonic() > deadline:
            raise BenchError(f"{name}: log has {file_size(log)} of {src.size} bytes")
        time.sleep(FILE_POLL_SECONDS)
    while True:
        detail: dict[str, Any] = client.get(f"/api/agents/{name}").json()
        if detail["status"] in TERMINAL and detail["extraction"]["total_lines"] >= src.lines:
            break
        if detail["status"] in TERMINAL and detail["status"] != "completed":
            raise BenchError(f"{name} ended {detail['status']}: {detail.get('error')}")
        if time.monotonic() > deadline:
            raise BenchError(
                f"{name}: {detail['status']}, {detail['extraction']['total_lines']} lines "
                "counted at the deadline"
            )
        time.sleep(POLL_SECONDS)
    elapsed = time.perf_counter() - start
    cpu = trio_cpu_seconds(pid) - cpu_before
    verify_trio(client, src, name, detail, log)
    extraction = detail["extraction"]
    events = Path(str(log).removesuffix("-stdout.log") + "-events.jsonl")
    records = count_event_records(events)
    run = TrioRun(
        elapsed,
        cpu,
        int(extraction["total_matches"]),
        {str(k): int(v) for k, v in extraction["matches_by_type"].items()},
        sum(records.values()),
    )
    if run.event_records != run.total_matches or dict(records) != run.by_type:
        raise BenchError(
            f"{name}: events file has {run.event_records} records {dict(records)}, "
            f"extraction says {run.total_matches} {run.by_type}"
        )
    for suffix in ("-stdout.log", "-stderr.log", "-events.jsonl"):
        Path(str(log).removesuffix("-stdout.log") + suffix).unlink(missing_ok=True)
    return run


def verify_trio(
    client: httpx.Client, src: Source, name: str, detail: dict[str, Any], log: Path
) -> None:
    extraction = detail["extraction"]
    got = (detail["status"], extraction["total_lines"], file_size(log))
    if got != ("completed", src.lines, src.size):
        raise BenchError(
            f"{name}: status, lines, log bytes {got}; expected completed, {src.lines}, {src.size}"
        )
    # DELETE waits until the run is over and its files are closed; the meta file then
    # holds the final counts, which must be those the detail showed.
    response = client.delete(f"/api/agents/{name}")
    if response.status_code != 200:
        raise BenchError(f"DELETE {name}: {response.status_code} {response.text}")
    meta_path = Path(str(log).removesuffix("-stdout.log") + "-meta.json")
    final = msgspec.json.decode(meta_path.read_bytes())["extraction"]
    if final["total_matches"] != extraction["total_matches"]:
        raise BenchError(
            f"{name}: total_matches {extraction['total_matches']} when completed, "
            f"{final['total_matches']} in the final meta file"
        )


# ---- mtail --------------------------------------------------------------------------


def run_mtail(mtail: str, progs: Path, src: Source, workdir: Path, timeout: float) -> MtailRun:
    """Wall clock of ``mtail --one_shot`` over the file, and the counts it printed."""
    cmd = [mtail, "--one_shot", "--one_shot_format", "json", "--progs", str(progs)]
    # It listens while it runs: loopback, any free port.
    cmd += ["--logs", str(src.path), "--address", "127.0.0.1", "--port", "0"]
    cmd += ["--logtostderr"]
    with open(workdir / "mtail.stderr", "wb") as stderr:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_before = usage.ru_utime + usage.ru_stime
        start = time.perf_counter()
        try:
            done = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:  # run() has killed it
            raise BenchError(f"mtail did not finish in {timeout} s") from exc
        elapsed = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = usage.ru_utime + usage.ru_stime - cpu_before
    if done.returncode != 0:
        text = (workdir / "mtail.stderr").read_text(errors="replace")[-2000:]
        raise BenchError(f"mtail exited {done.returncode}:\n{text}")
    metrics: dict[str, Any] = msgspec.json.decode(done.stdout)
    lines = int(metrics["lines_total"][0]["LabelValues"][0]["Value"]["Value"])
    by_type = {
        str(lv["Labels"][0]): int(lv["Value"]["Value"])
        for lv in metrics.get("records", [{}])[0].get("LabelValues", [])
    }
    if lines != src.lines:
        raise BenchError(f"mtail counted {lines} lines of {src.lines}")
    return MtailRun(elapsed, cpu, lines, by_type)


# ---- main ---------------------------------------------------------------------------


def rate(lines: int, seconds: float) -> str:
    return f"{lines / seconds:,.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("--lines", type=int, default=2_000_000, help="lines of each text file")
    parser.add_argument("--json-lines", type=int, default=200_000, help="lines of each JSON file")
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help=f"corpus files, comma-separated (default: all of {', '.join(KINDS)})",
    )
    parser.add_argument("--timeout", type=float, default=180.0, help="per run, seconds")
    args = parser.parse_args()
    kinds = list(iter_kinds(args.kinds))
    mtail = shutil.which("mtail")
    if mtail is None:
        raise BenchError("mtail is not on PATH (Debian: apt-get install mtail)")
    version = subprocess.run(
        [mtail, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.strip()

    print(f"machine: {machine()}")
    print(f"mtail: {version.splitlines()[0] if version else '?'}")
    print(f"load average before: {load_average()}")
    sources: list[Source] = []
    for kind in kinds:
        lines = args.lines if fmt_of(kind) == "text" else args.json_lines
        path = corpus_file(kind, lines)
        sources.append(Source(fmt_of(kind), path, lines, path.stat().st_size, kind))
        print(
            f"source {kind} ({fmt_of(kind)}): {lines:,} lines, {sources[-1].size:,} bytes "
            f"({sources[-1].size / lines:.1f} bytes/line)"
        )
    trio_runs: dict[str, list[TrioRun]] = {src.kind: [] for src in sources}
    mtail_runs: dict[str, list[MtailRun]] = {src.kind: [] for src in sources}
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
        workdir = Path(tmp)
        progs = workdir / "progs"
        progs.mkdir()
        (progs / "extract.mtail").write_text(MTAIL_PROGRAM, encoding="utf-8")
        with (
            running_daemon(workdir / "daemon") as daemon,
            httpx.Client(base_url=daemon.url, timeout=60.0) as client,
        ):
            print(f"daemon pid {daemon.pid} at {daemon.url}", flush=True)
            for src in sources:
                for run in range(args.runs):
                    name = f"{src.kind}-{run}"
                    tw = run_trio_wrapper(client, daemon.pid, src, name, args.timeout)
                    trio_runs[src.kind].append(tw)
                    text = (
                        f"{src.kind} run {run + 1}: trio_wrapper {tw.seconds:.3f} s "
                        f"({rate(src.lines, tw.seconds)} lines/s, {tw.total_matches:,} records)"
                    )
                    if src.fmt == "text":
                        mt = run_mtail(mtail, progs, src, workdir, args.timeout)
                        mtail_runs[src.kind].append(mt)
                        text += (
                            f"; mtail {mt.seconds:.3f} s ({rate(src.lines, mt.seconds)} lines/s)"
                        )
                    print(text, flush=True)

    rows: list[list[object]] = []
    medians: dict[str, tuple[float, float | None]] = {}

    def row(
        kind: str,
        tool: str,
        runs: list[TrioRun] | list[MtailRun],
        lines: int,
        seconds: float,
        ratio: str,
    ) -> None:
        walls = " / ".join(f"{r.seconds:.3f}" for r in runs)
        cpu = f"{median([r.cpu for r in runs]):.2f}"
        rows.append([kind, tool, walls, rate(lines, seconds), cpu, ratio])

    for src in sources:
        runs, peers = trio_runs[src.kind], mtail_runs[src.kind]
        tw_s = median([r.seconds for r in runs])
        mt_s = median([r.seconds for r in peers]) if peers else None
        medians[src.kind] = (tw_s, mt_s)
        row(src.kind, "trio_wrapper", runs, src.lines, tw_s, f"{mt_s / tw_s:.1f}x" if mt_s else "")
        if mt_s is not None:
            row(src.kind, "mtail", peers, src.lines, mt_s, "")
    print()
    print_table(["file", "tool", "wall s (runs)", "lines/s (median)", "CPU s", "vs mtail"], rows)
    print(
        "(CPU s: user + system seconds during the run of the daemon and its extraction"
        " worker, or of mtail; medians)"
    )
    for src in sources:
        last = trio_runs[src.kind][-1]
        print()
        if src.fmt == "text":
            peer = mtail_runs[src.kind][-1].by_type
            types = sorted(set(last.by_type) | set(peer))
            print(f"{src.kind}: records by category")
            print_table(
                ["category", "trio_wrapper records", "mtail count"],
                [[t, last.by_type.get(t, 0), peer.get(t, 0)] for t in types]
                + [["total", last.total_matches, sum(peer.values())]],
            )
        else:
            counts = ", ".join(f"{k} {v:,}" for k, v in sorted(last.by_type.items()))
            print(f"{src.kind} records: {last.total_matches:,} ({counts})")
    print(f"load average after: {load_average()}")
    print(
        "verified every run: log size = source size, total_lines = source lines, events-file "
        "records = total_matches (per type too), final meta file agrees; mtail lines = source"
    )
    print()
    for src in sources:
        tw_s, mt_s = medians[src.kind]
        tw_rate = src.lines / tw_s
        if mt_s is None:
            print(
                goal_line(
                    tw_rate >= JSON_GOAL, f"{src.kind} {tw_rate:,.0f} lines/s (goal {JSON_GOAL:,})"
                )
            )
            continue
        mt_rate = src.lines / mt_s
        print(
            goal_line(
                tw_rate >= TEXT_GOAL, f"{src.kind} {tw_rate:,.0f} lines/s (goal {TEXT_GOAL:,})"
            )
        )
        print(
            goal_line(
                tw_rate >= MTAIL_FACTOR * mt_rate,
                f"{src.kind} {tw_rate / mt_rate:.1f}x mtail's {mt_rate:,.0f} lines/s "
                f"(goal {MTAIL_FACTOR:.0f}x)",
            )
        )
    return 0


if __name__ == "__main__":
    run_main(main)
