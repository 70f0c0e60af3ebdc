"""The C heap of a daemon that handles floods: keep freed memory instead of returning it.

Under a flood every read becomes Python objects that die a moment later: reads of up to
1 MiB, 1 MiB read-backs from the log file, one bytes object per JSON line (most too big for
Python's own small-object allocator, so they come from glibc's malloc). With glibc's
defaults, buffers of 128 KiB and more are fresh ``mmap`` s and the top of the heap is
given back to the kernel as soon as 128 KiB of it is free; the next read faults the
same pages in again. On a 180 MB Claude stream that was up to 84,000 page faults and
0.5 s of kernel time per run (0.15 s without them), and it came and went from run to
run. Keeping up to :data:`TRIM_THRESHOLD` of freed heap (and what fragmentation holds
below the top) costs resident memory after a flood: :class:`QuietTrim` gives it back once
the daemon has been quiet for :data:`QUIET_SECONDS`. (In a 10-minute soak, 200 SSE
clients and 1,000 agents, the daemon's RSS measured quiet went 253 → 614 MB without it.)

Python's own small-object allocator (pymalloc) is the other half: it takes memory in
1 MiB arenas and gives an arena back only once every object in it is gone. A flood
leaves a few long-lived objects (a ring's events, a timer's cancel scope) scattered over
the arenas its garbage filled, and each pins its whole arena: in a soak, the daemon's
live Python objects stayed at 24.6 MB from one quiet checkpoint to the next while
pymalloc's arenas went 60 → 77 (empty pools held in them 30 → 44 MB), and the RSS
measured quiet +20 to +29 % over six waves. ``malloc_trim`` cannot reach into those
arenas; it does give back the free pages inside glibc's heap. So ``serve`` runs on
glibc's malloc (:func:`use_system_allocator`: ``PYTHONMALLOC=malloc``, read only when
the interpreter starts, hence a re-exec); the same soak then measured +6 to +13 %, and
the 10-minute soak +6 to +27 % (median +19 %) where pymalloc measured +31 to +43 %
(docs/benchmarks.md: what still grows is free heap around survivors).
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence

import trio

from trio_wrapper.core.malloc import (
    QUIET_SECONDS,
    QuietSpells,
    collect_garbage,
    give_back_freed_heap,
    libc_function,
)

log = logging.getLogger(__name__)

# mallopt parameters, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

# Blocks up to this size come from the heap (reused), not from their own mmap.
MMAP_THRESHOLD = 4 * 1024 * 1024
# Free memory at the top of the heap is given back only beyond this.
TRIM_THRESHOLD = 64 * 1024 * 1024
# One heap for every thread. glibc gives threads arenas of their own (up to 8 a core) so
# that they need not wait for each other's locks; the daemon's threads are a few short
# file and index calls, and each arena they leave behind keeps its own free and
# fragmented memory for good (in a soak, 1.7 MB more resident at the end, in arenas of
# threads long gone).
ARENA_MAX = 1
# Python's allocator, chosen when the interpreter starts (and only then).
ALLOCATOR_VARIABLE = "PYTHONMALLOC"
SYSTEM_ALLOCATOR = "malloc"
# An interpreter option (``-X``, in ``sys._xoptions``) the re-exec adds: ``PYTHONMALLOC``
# is then the daemon's own choice, not one made outside, and its children need not share it.
REEXEC_OPTION = "trio_wrapper_malloc"


def system_allocator_command(
    environ: Mapping[str, str], executable: str, orig_argv: Sequence[str]
) -> tuple[list[str], dict[str, str]] | None:
    """The command line and environment that run this same process again on the C
    library's malloc instead of pymalloc (see above), or None when there is nothing to
    do: ``PYTHONMALLOC`` is set already (whatever its value: a choice made outside wins,
    and the re-executed process sees it set), or there is no interpreter to run."""
    if ALLOCATOR_VARIABLE in environ or not executable or not orig_argv:
        return None
    # ``orig_argv`` keeps the interpreter's own options (-X, -m …), not only the script's.
    argv = [executable, "-X", REEXEC_OPTION, *orig_argv[1:]]
    return argv, {**environ, ALLOCATOR_VARIABLE: SYSTEM_ALLOCATOR}


def worker_environ(
    environ: Mapping[str, str], xoptions: Mapping[str, object]
) -> dict[str, str] | None:
    """The extraction worker's environment: the daemon's, without the ``PYTHONMALLOC`` the
    re-exec set, so that the worker runs on pymalloc; None (the daemon's as it is) when
    there is nothing to take out, or when ``PYTHONMALLOC`` was chosen outside.

    The worker's objects are many, small and short-lived (a decoded line, a record, its
    JSON): pymalloc's pools serve them faster than glibc's malloc (on glibc's, the worker
    extracted 20-50 % fewer lines a second: docs/benchmarks.md), and what a batch leaves
    does not outlive the batch to pin an arena. The daemon keeps glibc's malloc for what
    its floods leave behind (above)."""
    if REEXEC_OPTION not in xoptions or environ.get(ALLOCATOR_VARIABLE) != SYSTEM_ALLOCATOR:
        return None
    return {key: value for key, value in environ.items() if key != ALLOCATOR_VARIABLE}


def use_system_allocator() -> None:
    """Replace this process (same pid, same arguments) with one running on the C
    library's malloc, unless ``PYTHONMALLOC`` says otherwise; to be called first thing,
    before anything is opened or written. Returns only when there is nothing to do or
    the exec failed (the daemon then runs on pymalloc, as before)."""
    found = system_allocator_command(os.environ, sys.executable, sys.orig_argv)
    if found is None:
        return
    argv, env = found
    try:
        os.execve(argv[0], argv, env)
    except OSError as exc:
        print(f"trio-wrapper: running on pymalloc: cannot re-exec {argv[0]!r}: {exc}",
              file=sys.stderr)  # fmt: skip


def keep_freed_heap() -> bool:
    """Tune glibc's malloc as above; False (and nothing changed) on another C library."""
    mallopt = libc_function("mallopt", (ctypes.c_int, ctypes.c_int), ctypes.c_int)
    if mallopt is None:
        log.debug("no mallopt in the C library: heap left as it is")
        return False
    # mallopt returns 1 on success, 0 on error.
    return (
        bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
        and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
        and bool(mallopt(M_ARENA_MAX, ARENA_MAX))
    )


async def _trim_in_thread() -> None:
    # It walks every arena: milliseconds on a large heap, off the event loop.
    await trio.to_thread.run_sync(give_back_freed_heap)


class QuietTrim:
    """Once the daemon has been quiet for a while (``activity()`` unchanged: no event
    published, no stream opened, no agent started), give back what floods left in the
    heap: collect the garbage, then trim. Never during a flood (the heap is kept then, on
    purpose), and once per quiet spell."""

    def __init__(
        self,
        activity: Callable[[], int],
        quiet_seconds: float = QUIET_SECONDS,
        trim: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._activity = activity
        self._quiet = quiet_seconds
        self._trim = trim or _trim_in_thread
        self._scope = trio.CancelScope()
        self.trims = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        spells = QuietSpells(self._activity(), dirty=True)  # start-up left garbage too
        with self._scope:
            while True:
                await trio.sleep(self._quiet)
                if spells.due(self._activity()):
                    collect_garbage()
                    await self._trim()
                    self.trims += 1

    def close(self) -> None:
        self._scope.cancel()
