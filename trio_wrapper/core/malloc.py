"""Giving freed C heap back to the kernel, for any process of the daemon. Pure: no trio.

glibc's ``malloc_trim(0)`` returns the free pages of every malloc arena (the top of each
heap and whole pages inside free chunks). The daemon (``runtime.heap.QuietTrim``) and its
extraction worker (``extract.worker``) both call it once they have been quiet for a while
after work: floods leave tens of megabytes freed but resident otherwise.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import sys
import threading
from collections.abc import Callable
from typing import Any, Final

# Quiet this long after work before the heap is given back.
QUIET_SECONDS: Final = 5.0


@functools.cache
def libc_function(name: str, argtypes: tuple[Any, ...], restype: Any) -> Any | None:
    """A function of the C library this process already runs on (looked up once, from
    the process's own symbols: no search for the library, which would run ``ldconfig``),
    or None when that library has none by this name (glibc's malloc tuning, elsewhere)."""
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = list(argtypes)
    function.restype = restype
    return function


def give_back_freed_heap() -> bool:
    """Return the free pages of every malloc arena to the kernel (glibc's malloc_trim).
    False on another C library."""
    malloc_trim = libc_function("malloc_trim", (ctypes.c_size_t,), ctypes.c_int)
    return malloc_trim is not None and bool(malloc_trim(0))


def collect_garbage() -> None:
    """A full collection, after emptying CPython's attribute-lookup cache (``sys.
    _clear_type_cache``, refilled by the next lookups). Each of that cache's 4,096 entries
    holds the name it was looked up by, and C code that looks an attribute up by a C
    string (``"utcoffset"`` for every aware datetime, ``"incrementaldecoder"`` for every
    text file opened) makes that name anew each time: the cache keeps the latest copies
    alive, made in the middle of floods and scattered over the heap they grew, each
    holding a page that ``malloc_trim`` could otherwise give back (in a soak, 1,500 of the
    5,000 small objects found on heap pages less than a quarter used were strings, most
    of them such names)."""
    sys._clear_type_cache()
    gc.collect()


class QuietSpells:
    """When to give the heap back, as plain data: looking now and then at an activity
    counter, a trim is due at the first look that sees it unchanged since the previous
    look, once per quiet spell. ``dirty``: a trim is due at the first quiet look even
    with no activity seen (what start-up left)."""

    __slots__ = ("_dirty", "_seen")

    def __init__(self, activity: int = 0, *, dirty: bool = False) -> None:
        self._seen = activity
        self._dirty = dirty

    def due(self, activity: int) -> bool:
        """One look: True if a trim is due now (and then not again until more activity)."""
        if activity != self._seen:
            self._seen = activity  # activity since the last look: wait for a quiet spell
            self._dirty = True
            return False
        if not self._dirty:
            return False  # quiet, and trimmed since the last activity already
        self._dirty = False
        return True


class IdleTrim:
    """For a process whose main thread blocks on its input (the extraction worker): a
    daemon thread that, once ``worked()`` has not been called for ``quiet`` seconds after
    it was, collects the garbage and gives the freed heap back; once per quiet spell,
    never while work goes on."""

    def __init__(
        self,
        quiet: float = QUIET_SECONDS,
        trim: Callable[[], object] = give_back_freed_heap,
    ) -> None:
        self._quiet = quiet
        self._trim = trim
        self._work = 0  # bumped by the main thread; read by the trimmer (an int: atomic)
        self._spells = QuietSpells()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="idle-trim", daemon=True)
        self.trims = 0

    def start(self) -> IdleTrim:
        self._thread.start()
        return self

    def worked(self) -> None:
        self._work += 1

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def look(self) -> bool:
        """One look (the thread takes one every ``quiet`` seconds): trim if there was work
        before the last look and none since. True if it trimmed."""
        if not self._spells.due(self._work):
            return False
        collect_garbage()
        self._trim()
        self.trims += 1
        return True

    def _run(self) -> None:
        while not self._stopped.wait(self._quiet):
            self.look()


__all__ = [
    "QUIET_SECONDS",
    "IdleTrim",
    "QuietSpells",
    "collect_garbage",
    "give_back_freed_heap",
    "libc_function",
]
