"""End-to-end extraction throughput: capture, line work, extraction, counts and events file.

(a) text: a generated 2,000,000-line transcript mixing every category the text extractor
knows (codex header, user/codex/thinking/exec markers, code fences, tokens used, errors,
warnings, file created/modified/deleted lines; ~90% ordinary lines, some ANSI colour) is
run through a REAL agent (``cat FILE``, format ``text``) of a real daemon. Timed: from the
POST until GET /api/agents/<name> says ``completed`` with ``extraction.total_lines`` equal
to the file's line count. Beside it, in the same run, Google's mtail (``--one_shot``)
counts the same categories with equivalent regexes over the same file; timed: the mtail
process, wall clock. The runs alternate between the two.
(b) codex-json and claude-stream-json: files built by repeating the real transcripts in
tests/fixtures/transcripts, run the same way (no mtail).

Every run is verified: the stdout log has the source's size, the events file holds one
record line per ``extraction.total_matches`` (and the same count per type as
``matches_by_type``), and the run's meta file agrees.

    .venv/bin/python bench/extract.py [--runs 3] [--lines 2000000] [--json-lines 200000]

Needs ``mtail`` on PATH (Debian: ``apt-get install mtail``).
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
from extract_micro import json_lines, text_lines

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


def write_source(path: Path, fmt: str, lines: list[bytes]) -> Source:
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(data)
    return Source(fmt, path, len(lines), len(data))


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
    parser.add_argument("--lines", type=int, default=2_000_000, help="text transcript lines")
    parser.add_argument("--json-lines", type=int, default=200_000, help="lines of each JSON file")
    parser.add_argument("--timeout", type=float, default=180.0, help="per run, seconds")
    args = parser.parse_args()
    mtail = shutil.which("mtail")
    if mtail is None:
        raise BenchError("mtail is not on PATH (Debian: apt-get install mtail)")
    version = subprocess.run(
        [mtail, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.strip()

    print(f"machine: {machine()}")
    print(f"mtail: {version.splitlines()[0] if version else '?'}")
    print(f"load average before: {load_average()}")
    text_runs: list[TrioRun] = []
    mtail_runs: list[MtailRun] = []
    json_runs: dict[str, list[TrioRun]] = {"codex-json": [], "claude-stream-json": []}
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
        workdir = Path(tmp)
        progs = workdir / "progs"
        progs.mkdir()
        (progs / "extract.mtail").write_text(MTAIL_PROGRAM, encoding="utf-8")
        text = write_source(workdir / "transcript.txt", "text", text_lines(args.lines))
        sources = [
            write_source(workdir / f"{name}.jsonl", fmt, json_lines(f"{name}/*.jsonl", n))
            for name, fmt, n in [
                ("codex", "codex-json", args.json_lines),
                ("claude", "claude-stream-json", args.json_lines),
            ]
        ]
        for src in [text, *sources]:
            print(
                f"source {src.fmt}: {src.lines:,} lines, {src.size:,} bytes "
                f"({src.size / src.lines:.1f} bytes/line)"
            )
        with (
            running_daemon(workdir / "daemon") as daemon,
            httpx.Client(base_url=daemon.url, timeout=60.0) as client,
        ):
            print(f"daemon pid {daemon.pid} at {daemon.url}", flush=True)
            for run in range(args.runs):
                tw = run_trio_wrapper(client, daemon.pid, text, f"text-{run}", args.timeout)
                text_runs.append(tw)
                mt = run_mtail(mtail, progs, text, workdir, args.timeout)
                mtail_runs.append(mt)
                print(
                    f"text run {run + 1}: trio_wrapper {tw.seconds:.3f} s "
                    f"({rate(text.lines, tw.seconds)} lines/s, {tw.total_matches:,} records); "
                    f"mtail {mt.seconds:.3f} s ({rate(text.lines, mt.seconds)} lines/s)",
                    flush=True,
                )
            for src in sources:
                for run in range(args.runs):
                    tw = run_trio_wrapper(client, daemon.pid, src, f"{src.fmt}-{run}", args.timeout)
                    json_runs[src.fmt].append(tw)
                    print(
                        f"{src.fmt} run {run + 1}: trio_wrapper {tw.seconds:.3f} s "
                        f"({rate(src.lines, tw.seconds)} lines/s, {tw.total_matches:,} records)",
                        flush=True,
                    )

    rows: list[list[object]] = []

    def row(label: str, tool: str, lines: int, seconds: float, cpu: float) -> None:
        rows.append([label, tool, f"{seconds:.3f}", rate(lines, seconds), f"{cpu:.2f}"])

    for i, (tw, mt) in enumerate(zip(text_runs, mtail_runs, strict=True)):
        row(f"text run {i + 1}", "trio_wrapper", text.lines, tw.seconds, tw.cpu)
        row(f"text run {i + 1}", "mtail", text.lines, mt.seconds, mt.cpu)
    tw_text = median([r.seconds for r in text_runs])
    mt_text = median([r.seconds for r in mtail_runs])
    row("text median", "trio_wrapper", text.lines, tw_text, median([r.cpu for r in text_runs]))
    row("text median", "mtail", text.lines, mt_text, median([r.cpu for r in mtail_runs]))
    json_medians: dict[str, float] = {}
    for src in sources:
        runs = json_runs[src.fmt]
        for i, tw in enumerate(runs):
            row(f"{src.fmt} run {i + 1}", "trio_wrapper", src.lines, tw.seconds, tw.cpu)
        secs = json_medians[src.fmt] = median([r.seconds for r in runs])
        cpu = median([r.cpu for r in runs])
        row(f"{src.fmt} median", "trio_wrapper", src.lines, secs, cpu)
    print()
    print_table(["run", "tool", "wall s", "lines/s", "CPU s"], rows)
    print(
        "(CPU s: user + system seconds during the run of the daemon and its extraction"
        " worker, or of mtail)"
    )

    print()
    types = sorted(set(text_runs[-1].by_type) | set(mtail_runs[-1].by_type))
    print_table(
        ["text category", "trio_wrapper records", "mtail count"],
        [[t, text_runs[-1].by_type.get(t, 0), mtail_runs[-1].by_type.get(t, 0)] for t in types]
        + [["total", text_runs[-1].total_matches, sum(mtail_runs[-1].by_type.values())]],
    )
    print()
    for src in sources:
        last = json_runs[src.fmt][-1]
        counts = ", ".join(f"{k} {v:,}" for k, v in sorted(last.by_type.items()))
        print(f"{src.fmt} records: {last.total_matches:,} ({counts})")
    print(f"load average after: {load_average()}")
    print(
        "verified every run: log size = source size, total_lines = source lines, events-file "
        "records = total_matches (per type too), final meta file agrees; mtail lines = source"
    )
    print()
    tw_rate, mt_rate = text.lines / tw_text, text.lines / mt_text
    print(goal_line(tw_rate >= TEXT_GOAL, f"text {tw_rate:,.0f} lines/s (goal {TEXT_GOAL:,})"))
    print(
        goal_line(
            tw_rate >= MTAIL_FACTOR * mt_rate,
            f"text {tw_rate / mt_rate:.1f}x mtail's {mt_rate:,.0f} lines/s "
            f"(goal {MTAIL_FACTOR:.0f}x)",
        )
    )
    for src in sources:
        r = src.lines / json_medians[src.fmt]
        print(goal_line(r >= JSON_GOAL, f"{src.fmt} {r:,.0f} lines/s (goal {JSON_GOAL:,})"))
    return 0


if __name__ == "__main__":
    run_main(main)
