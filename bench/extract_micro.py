"""Micro-benchmark of the pure extractors: lines per second on one core.

    .venv/bin/python bench/extract_micro.py [--lines 2000000] [--json-lines 200000]

(a) text: a generated file mixing every text category (codex header, user/codex/
    thinking/exec blocks, code fences, tokens used, errors, warnings, file lines) with
    ordinary output, ANSI colour on some lines; (b) codex-json and claude-stream-json
    files built by repeating the real transcripts in tests/fixtures/transcripts. Lines are
    cut into 64 KiB read-sized batches first (as the agent reader hands them over);
    "extract" times only the extractor, "split+extract" adds LineSplitter. Median of 3.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

from corpus import repeated_transcripts

from trio_wrapper.core.lines import LineSplitter
from trio_wrapper.extract import make_extractor

CHUNK = 64 * 1024

_CYCLE = """\
OpenAI Codex v0.114.0 (research preview)
--------
workdir: /workspace
model: gpt-5.4
provider: openai
approval: never
sandbox: workspace-write [workdir, /tmp]
reasoning effort: high
session id: 019ce2fd-9ff8-70f2-a291-5cce9d837f89
--------
user
Write a fibonacci function in python and run the tests.
mcp startup: no servers
thinking
**Planning the implementation**
codex
I'll write the function first, then run the test suite.
exec
/usr/bin/bash -lc 'pytest -q' in /workspace succeeded in 812ms:
..........                                                               [100%]
10 passed in 0.12s
exec
/usr/bin/bash -lc 'cargo build' in /workspace exited 101 in 2.1s:
   Compiling demo v0.1.0 (/workspace)
error[E0308]: mismatched types
warning: unused variable: `x`
file update
A /workspace/fib.py
+def fib(n):
+    return n if n < 2 else fib(n - 1) + fib(n - 2)
apply_patch(auto_approved=true) exited 0 in 3ms:
Success. Updated the following files:
codex
Here is the function:

```python
def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)
```

It runs in exponential time; memoize it for large n.
tokens used
5,244
Created src/app.py
Modified: src/lib/util.ts
Deleted old/legacy.py
ERROR: stream disconnected before completion
\x1b[1mwarning:\x1b[0m rate limited, retrying in 2s
Error: connection reset by peer
Note: the errors: 0 line below is not an error
errors: 0
Updated the docs.
the model: is not a header here
"""
_FILLER = [
    "drwxr-xr-x  5 user staff   160 Mar 12 16:59 src",
    "    return self._cache.get(key, default)",
    "Running 42 tests across 7 modules with coverage enabled",
    "",
    "\x1b[32m  PASS\x1b[0m tests/test_parser.py::test_roundtrip (0.02s)",
    "The function handles the empty input case by returning early.",
    "2026-02-10 05:44:31,123 INFO worker started pid=4242",
    "  - refactor the loop so each item is visited once",
]


def text_lines(total: int) -> list[bytes]:
    cycle = [line.encode() for line in _CYCLE.splitlines()]
    filler = [line.encode() for line in _FILLER]
    out: list[bytes] = []
    # ~10% of lines are interesting, the rest ordinary output: about what a busy agent prints.
    while len(out) < total:
        out.extend(cycle)
        for i in range(len(cycle) * 9):
            out.append(filler[i % len(filler)])
    return out[:total]


def to_chunks(lines: list[bytes]) -> list[bytes]:
    data = b"\n".join(lines) + b"\n"
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def batches(chunks: list[bytes]) -> list[list[bytes]]:
    splitter = LineSplitter()
    out = [splitter.feed(chunk).lines for chunk in chunks]
    out.append(splitter.flush().lines)
    return [b for b in out if b]


def run_extract(fmt: str, prepared: list[list[bytes]]) -> int:
    ex = make_extractor(fmt)
    n = 1
    found = 0
    for batch in prepared:
        found += len(ex.feed(batch, n, "stdout"))
        n += len(batch)
    return found + len(ex.finish())


def run_split_extract(fmt: str, chunks: list[bytes]) -> int:
    ex = make_extractor(fmt)
    splitter = LineSplitter()
    n = 1
    found = 0
    for chunk in chunks:
        lines = splitter.feed(chunk).lines
        if lines:
            found += len(ex.feed(lines, n, "stdout"))
            n += len(lines)
    return found + len(ex.finish())


def median_rate(nlines: int, fn: Callable[[], int]) -> tuple[float, int]:
    times = []
    found = 0
    for _ in range(3):
        t0 = time.perf_counter()
        found = fn()
        times.append(time.perf_counter() - t0)
    return nlines / statistics.median(times), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--json-lines", type=int, default=200_000)
    args = parser.parse_args()
    cases = [
        ("text", text_lines(args.lines)),
        ("codex-json", repeated_transcripts("codex/*.jsonl", args.json_lines)),
        ("claude-stream-json", repeated_transcripts("claude/*.jsonl", args.json_lines)),
    ]
    print(f"{'format':<20} {'lines':>10} {'records':>9} {'extract':>14} {'split+extract':>16}")
    for fmt, lines in cases:
        chunks = to_chunks(lines)
        prepared = batches(chunks)
        rate, found = median_rate(len(lines), partial(run_extract, fmt, prepared))
        rate2, _ = median_rate(len(lines), partial(run_split_extract, fmt, chunks))
        print(f"{fmt:<20} {len(lines):>10,} {found:>9,} {rate:>10,.0f} l/s {rate2:>12,.0f} l/s")


if __name__ == "__main__":
    main()
