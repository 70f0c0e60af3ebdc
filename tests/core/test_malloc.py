"""The worker's idle trim: once per quiet spell after work, never while work goes on."""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Callable

from trio_wrapper.core.malloc import (
    IdleTrim,
    QuietSpells,
    collect_garbage,
    give_back_freed_heap,
    libc_function,
)


def test_a_trim_comes_after_a_quiet_look_and_only_once() -> None:
    trims: list[int] = []
    trimmer = IdleTrim(trim=lambda: trims.append(1))
    assert not trimmer.look()  # nothing done yet
    for _ in range(5):  # busy: work between every two looks
        trimmer.worked()
        assert not trimmer.look()
    assert trims == []
    assert trimmer.look()  # a look with no work since the last: trim
    assert [trimmer.look() for _ in range(3)] == [False] * 3  # still quiet: not again
    trimmer.worked()
    trimmer.worked()
    assert not trimmer.look()  # new work seen
    assert trimmer.look()  # then quiet: one more
    assert len(trims) == trimmer.trims == 2


def test_the_thread_trims_once_work_stops() -> None:
    happened = threading.Event()
    trimmer = IdleTrim(0.01, happened.set).start()
    try:
        trimmer.worked()
        assert happened.wait(10), "no trim after the work stopped"
    finally:
        trimmer.stop()
    assert trimmer.trims >= 1


def test_give_back_freed_heap_answers() -> None:
    # True on glibc, False elsewhere; never raises.
    assert give_back_freed_heap() in (True, False)


def test_quiet_spells_when_dirty_at_start() -> None:
    # The daemon's quiet trim starts dirty: what start-up left is given back at the first
    # quiet look, then only after new activity.
    spells = QuietSpells(7, dirty=True)
    assert spells.due(7)
    assert not spells.due(7)
    assert not spells.due(8)
    assert spells.due(8)
    clean = QuietSpells(7)
    assert not clean.due(7)


def test_libc_functions_are_looked_up_once() -> None:
    first = libc_function("malloc_trim", (ctypes.c_size_t,), ctypes.c_int)
    assert libc_function("malloc_trim", (ctypes.c_size_t,), ctypes.c_int) is first
    assert libc_function("no_such_function_in_any_libc", (), ctypes.c_int) is None


def cached_name_refs() -> tuple[int, int, Callable[[], int]]:
    """A name made at run time (as C code does it, from a C string), looked up on a
    class: CPython's type cache keeps a reference to it. Returns the references to the
    name before the lookup, after it, and a way to count them again."""

    class Holder:
        incrementaldecoder = 1

    name = "".join(["incremental", "decoder"])  # a new str, not the interned one
    before = sys.getrefcount(name)
    getattr(Holder(), name)
    return before, sys.getrefcount(name), lambda: sys.getrefcount(name)


def test_collect_garbage_lets_go_of_the_names_the_type_cache_kept() -> None:
    before, after_lookup, count = cached_name_refs()
    assert after_lookup == before + 1  # the cache holds it (what the soak found pinned)
    collect_garbage()
    assert count() == before


def test_the_idle_trim_lets_go_of_them_too() -> None:
    before, _, count = cached_name_refs()
    trimmer = IdleTrim(trim=lambda: None)
    trimmer.worked()
    trimmer.look()
    assert trimmer.look()
    assert count() == before
