"""The daemon keeps freed heap: a flood's buffers do not fault their pages in again."""

from __future__ import annotations

import subprocess
import sys

import pytest
import trio

from tests.daemon import clean_environ
from trio_wrapper.runtime.heap import (
    ALLOCATOR_VARIABLE,
    REEXEC_OPTION,
    QuietTrim,
    keep_freed_heap,
    system_allocator_command,
    worker_environ,
)

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


# In a fresh process, with the daemon's tuning: 64 MiB of small buffers freed; the RSS
# (KiB) after the free, then after give_back_freed_heap().
GIVE_BACK = """
import resource, sys
from trio_wrapper.core.malloc import give_back_freed_heap
from trio_wrapper.runtime.heap import keep_freed_heap
assert keep_freed_heap()
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
held = [bytearray(b"x" * 4000) for _ in range(16384)]
keep = held[::64]  # fragmentation: a few survivors here and there
del held
before = rss()
print(before, give_back_freed_heap(), rss())
"""


def test_quiet_trim_gives_the_kept_heap_back() -> None:
    out = subprocess.run(
        [sys.executable, "-c", GIVE_BACK], capture_output=True, text=True, check=True
    ).stdout.split()
    before, trimmed, after = int(out[0]), out[1], int(out[2])
    assert trimmed == "True"
    assert before - after > 32 * 1024, (before, after)  # most of the 64 MiB went back


async def test_quiet_trim_waits_for_a_quiet_spell(autojump_clock: object) -> None:
    activity = [0]
    trims: list[int] = []

    async def trim() -> None:
        trims.append(activity[0])

    trimmer = QuietTrim(lambda: activity[0], quiet_seconds=5.0, trim=trim)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trimmer.run)
        for _ in range(10):  # busy: something happens every 2 s
            await trio.sleep(2)
            activity[0] += 1
        assert trims == []
        await trio.sleep(11)  # quiet: one trim, not one per period
        assert trims == [10]
        await trio.sleep(30)
        assert trims == [10]
        activity[0] += 1  # a new spell of work, then quiet again: one more
        await trio.sleep(11)
        assert trims == [10, 11]
        trimmer.close()


async def test_quiet_trim_lets_go_of_names_the_type_cache_kept(autojump_clock: object) -> None:
    class Holder:
        utcoffset = 1

    name = "".join(["utc", "offset"])  # made at run time, as C code makes it
    before = sys.getrefcount(name)
    getattr(Holder(), name)
    assert sys.getrefcount(name) == before + 1  # CPython's type cache keeps it
    refs_at_trim: list[int] = []

    async def trim() -> None:
        refs_at_trim.append(sys.getrefcount(name))

    trimmer = QuietTrim(lambda: 0, quiet_seconds=5.0, trim=trim)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trimmer.run)
        await trio.sleep(6)  # the first quiet look (start-up is dirty): collect, trim
        trimmer.close()
    assert refs_at_trim == [before]  # let go of before the heap was trimmed


def test_system_allocator_command_reruns_the_same_command_on_malloc() -> None:
    environ = {"PATH": "/bin", "TRIO_WRAPPER_X": "1"}
    argv = ["python3", "-X", "dev", "/venv/bin/trio-wrapper", "serve", "--port", "0"]
    found = system_allocator_command(environ, "/venv/bin/python3", argv)
    rerun = ["/venv/bin/python3", "-X", REEXEC_OPTION, "-X", "dev", "/venv/bin/trio-wrapper"]
    assert found == (
        [*rerun, "serve", "--port", "0"],
        {"PATH": "/bin", "TRIO_WRAPPER_X": "1", "PYTHONMALLOC": "malloc"},
    )
    assert environ == {"PATH": "/bin", "TRIO_WRAPPER_X": "1"}  # not changed in place


def test_the_worker_runs_on_pymalloc_unless_the_allocator_was_chosen_outside() -> None:
    ours = {"PATH": "/bin", "PYTHONMALLOC": "malloc"}
    assert worker_environ(ours, {REEXEC_OPTION: True}) == {"PATH": "/bin"}
    assert ours == {"PATH": "/bin", "PYTHONMALLOC": "malloc"}  # not changed in place
    # Chosen outside (no re-exec), or changed since: the worker keeps the daemon's.
    assert worker_environ(ours, {}) is None
    assert worker_environ({"PYTHONMALLOC": "debug"}, {REEXEC_OPTION: True}) is None
    assert worker_environ({"PATH": "/bin"}, {}) is None


@pytest.mark.parametrize("value", ["malloc", "pymalloc", "debug", ""])
def test_a_chosen_allocator_is_kept(value: str) -> None:
    # Set outside (or by the re-exec itself): nothing to do, so no exec loop either.
    assert system_allocator_command({ALLOCATOR_VARIABLE: value}, "/bin/python3", ["x"]) is None


def test_no_interpreter_no_reexec() -> None:
    assert system_allocator_command({}, "", ["python3", "-c", "pass"]) is None
    assert system_allocator_command({}, "/bin/python3", []) is None


# In a fresh process, as ``serve`` starts: onto the C library's malloc (the same pid),
# then 500,000 small objects of which every 1,000th survives (what a flood leaves: a
# ring's events, a timer's scope, scattered over the memory its garbage filled). Prints
# the pid, the allocator, and the RSS (KiB) the junk took and what stays after
# gc.collect() + give_back_freed_heap(), QuietTrim's steps.
SCATTERED = """
import gc, os
from trio_wrapper.core.malloc import give_back_freed_heap
from trio_wrapper.runtime.heap import keep_freed_heap, use_system_allocator
use_system_allocator()
keep_freed_heap()
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
base = rss()
junk = [(i, i + 1) for i in range(500_000)]
peak = rss()
keep = junk[::1000]
del junk
gc.collect()
give_back_freed_heap()
print(os.getpid(), os.environ.get("PYTHONMALLOC"), peak - base, rss() - base)
"""


def scattered(environ: dict[str, str]) -> tuple[int, int, str, int, int]:
    process = subprocess.Popen(
        [sys.executable, "-c", SCATTERED], stdout=subprocess.PIPE, text=True, env=environ
    )
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    pid, allocator, took, stays = out.split()
    return process.pid, int(pid), allocator, int(took), int(stays)


def test_scattered_survivors_do_not_pin_the_memory_of_a_flood() -> None:
    if not keep_freed_heap():
        pytest.skip("not glibc: no malloc_trim to give the freed pages back")
    environ = {k: v for k, v in clean_environ().items() if k != ALLOCATOR_VARIABLE}
    started, pid, allocator, took, stays = scattered(environ)
    assert (pid, allocator) == (started, "malloc")  # re-executed in place
    # ~70 MB of tuples at the peak. On pymalloc each 1 MiB arena keeps a survivor, so
    # nearly all of it stays resident (the daemon's RSS measured quiet grew wave after
    # wave); on malloc, with the trim, only the pages holding survivors do.
    assert took > 32 * 1024, took
    assert stays < took // 4, (took, stays)


def test_pymalloc_keeps_the_memory_of_a_flood() -> None:
    """The other side: what the test above would see without the re-exec."""
    if not keep_freed_heap():
        pytest.skip("not glibc")
    environ = {**clean_environ(), ALLOCATOR_VARIABLE: "pymalloc"}
    _, _, allocator, took, stays = scattered(environ)
    assert allocator == "pymalloc"
    assert stays > took // 2, (took, stays)


# In a fresh process: eight threads allocate at once, each while the others hold theirs;
# prints how many malloc arenas (``<heap nr=…>`` in malloc_info) there are then.
ARENAS = """
import ctypes, os, sys, tempfile, threading
from trio_wrapper.runtime.heap import keep_freed_heap
if sys.argv[1] == "tuned":
    assert keep_freed_heap()
barrier = threading.Barrier(8)
def work():
    held = [bytearray(2000) for _ in range(200)]
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
path = os.path.join(tempfile.mkdtemp(), "info.xml")
stream = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, stream)
libc.fclose(stream)
print(open(path).read().count("<heap nr="))
"""


def test_threads_share_the_one_heap() -> None:
    if not keep_freed_heap():
        pytest.skip("not glibc: mallopt is not available, the heap is left as it is")
    arenas = {
        mode: int(
            subprocess.run(
                [sys.executable, "-c", ARENAS, mode], capture_output=True, text=True, check=True
            ).stdout
        )
        for mode in ("default", "tuned")
    }
    assert arenas["default"] > 1  # glibc's default: arenas of their own for busy threads
    assert arenas["tuned"] == 1
