"""The daemon keeps freed heap: a flood's buffers do not fault their pages in again."""

from __future__ import annotations

import subprocess
import sys

import pytest

from trio_wrapper.runtime.heap import keep_freed_heap

# In a fresh process: 50 batches of 8 MiB of 1 KiB lines (as a flood splits into), each
# batch freed before the next; prints the minor page faults that cost.
CHURN = """
import resource, sys
from trio_wrapper.runtime.heap import keep_freed_heap
if sys.argv[1] == "tuned":
    assert keep_freed_heap()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
chunk = b"\\n".join([b"x" * 1000] * 8192)
chunk.split(b"\\n")
before = faults()
for i in range(50):
    lines = chunk.split(b"\\n")
    del lines
print(faults() - before)
"""


def churn_faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def test_freed_buffers_are_reused_without_page_faults() -> None:
    if not keep_freed_heap():
        pytest.skip("not glibc: mallopt is not available, the heap is left as it is")
    default, tuned = churn_faults("default"), churn_faults("tuned")
    # 400 MiB through a heap trimmed after each batch is ~100,000 faults of 4 KiB;
    # a heap that keeps its freed top needs next to none.
    assert default > 20_000
    assert tuned < 2_000
