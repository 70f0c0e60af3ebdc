"""What text extraction costs in Python before it decides anything: floors under issue 17.

    .venv/bin/python bench/extract_floor.py [--lines 200000] [--runs 5]

Issue 17 asks text extraction for >= 1,000,000 lines/s end to end and >= 10x mtail on
every density (mtail does about 115,000-180,000 lines/s on these files: ``extract.py``).
This measures, on one core and in this process, what parts of a Python design cost on each
text corpus (``corpus.py``, 1 MiB batches as the extraction worker gets them), from the
least a design must do to the extractor as it is:

1. ``candidates``: RE2's pass over each batch finding the lines worth a look
   (``CandidateLines.starts``), nothing else.
2. ``visit``: the scanner going to each of those lines (line number, slice, decode) and
   calling a dialect that does nothing with them.
3. ``classify``: the other design, with no call of ours per line: one Python ``re``
   pattern holding the text extractor's own line patterns as alternatives, plus one for
   any other line, matched at every line of the decoded batch (``finditer``), reading
   which alternative matched. No state, no record.
4. ``extract``: the text extractor as it is, its records encoded (``Found.of``).

Prints the median of ``--runs`` for each, in microseconds a line and lines a second. A
floor above 1 us a line (or above what 10x mtail allows) means no design built on it can
meet the goal, whatever it then does.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable, Sequence

from common import load_average, machine, median, print_table, run_main
from corpus import TEXT_KINDS, lines_of

from trio_wrapper.core.lines import LineSplitter, after_newline
from trio_wrapper.extract import text as text_dialect
from trio_wrapper.extract.base import ERROR_LINE, WARNING_LINE
from trio_wrapper.extract.found import Found
from trio_wrapper.extract.text import TextExtractor

BATCH = 1024 * 1024


class VisitOnly(TextExtractor):
    """The text scanner with a dialect that looks at nothing: what visiting costs."""

    visited = 0

    def _line(self, *line_and_state: object) -> None:
        self.visited += 1


def _unnamed(pattern: str) -> str:
    """The pattern with its named groups made plain, so that several fit in one."""
    return re.sub(r"\(\?P<\w+>", "(?:", pattern)


# The text extractor's line patterns, in the order it tries them, then any other line.
_ALTERNATIVES = {
    "fence": r"[ \t]{0,3}(?:```|~~~)[^\n]*",
    "marker": r"(?:user|codex|thinking|exec|Plan update|User instructions:)[ \t]*",
    "event": text_dialect._EVENT.pattern,
    "session": text_dialect._SESSION_KEY.pattern,
    "error": ERROR_LINE.pattern + r"[^\n]*",
    "warning": WARNING_LINE.pattern + r"[^\n]*",
    "file": text_dialect._FILE_LINE.pattern,
    "done": text_dialect._EXEC_DONE.pattern,
    "tokens": text_dialect._TOKENS.pattern,
    "other": r"[^\n]*",
}
CLASSIFY = re.compile(
    "(?m)^(?:" + "|".join(f"(?P<{name}>{_unnamed(p)})" for name, p in _ALTERNATIVES.items()) + ")$"
)


def batches(kind: str, total: int) -> list[Sequence[bytes]]:
    data = b"".join(line + b"\n" for line in lines_of(kind, total))
    splitter = LineSplitter(64 * 1024)
    out = [splitter.feed(data[i : i + BATCH]).lines for i in range(0, len(data), BATCH)]
    return [batch for batch in out if batch]


def candidates(prepared: list[Sequence[bytes]]) -> int:
    starts = TextExtractor.CANDIDATE.starts
    return sum(len(starts(after_newline(batch))) for batch in prepared)


def visit(prepared: list[Sequence[bytes]]) -> int:
    extractor = VisitOnly()
    line_num = 1
    for batch in prepared:
        extractor.feed(batch, line_num, "stdout")
        line_num += len(batch)
    return extractor.visited


def classify(prepared: list[Sequence[bytes]]) -> int:
    matched = 0
    for batch in prepared:
        text = after_newline(batch).decode("utf-8", "replace")
        for m in CLASSIFY.finditer(text, 1):
            if m.lastgroup != "other":
                matched += 1
    return matched


def extract(prepared: list[Sequence[bytes]]) -> int:
    extractor = TextExtractor()
    line_num = 1
    found = 0
    for batch in prepared:
        found += len(Found.of(extractor.feed(batch, line_num, "stdout")))
        line_num += len(batch)
    return found + len(Found.of(extractor.finish()))


STEPS: dict[str, Callable[[list[Sequence[bytes]]], int]] = {
    "candidates": candidates,
    "visit": visit,
    "classify": classify,
    "extract": extract,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kinds", default=",".join(TEXT_KINDS))
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"load average before: {load_average()}")
    rows = []
    for kind in args.kinds.split(","):
        prepared = batches(kind, args.lines)
        for name, step in STEPS.items():
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                count = step(prepared)
                times.append(time.perf_counter() - start)
            seconds = median(times)
            rows.append(
                (
                    kind,
                    name,
                    f"{count:,}",
                    f"{seconds / args.lines * 1e6:.2f}",
                    f"{args.lines / seconds:,.0f}",
                )
            )
    print(f"load average after: {load_average()}")
    print(f"{args.lines:,} lines a corpus, in-process, one core; medians of {args.runs} runs")
    print("(count: candidates found, lines visited, lines matching a pattern, records)")
    print_table(("corpus", "step", "count", "us/line", "lines/s"), rows)
    return 0


if __name__ == "__main__":
    run_main(main)
