"""Deadlines that leave nothing behind once their scope is gone.

trio keeps every deadline in one heap. The entry of a cancel scope that exited before
its deadline stays there, holding the scope, until that deadline comes, or until such
stale entries outnumber twice the live ones by ``DEADLINE_HEAP_MIN_PRUNE_THRESHOLD``
(1,000), when trio sweeps them all out at once. The daemon makes them all the time:
Quart gives every response 60 s to be sent (``RESPONSE_TIMEOUT``) and every body 60 s
to arrive, and an agent's ``timeout_seconds`` is often an hour. Each stale entry is a
scope, a tuple, a float and an int, made in the middle of a flood and scattered over
the heap it grew: once the flood is gone, each of them keeps a page resident that the
quiet trim (:mod:`trio_wrapper.runtime.heap`) could otherwise give back. In a soak,
2,400 of the 5,000 small objects found on heap pages less than a quarter used were
parts of such entries, and the quiet daemon's RSS grew with the agents of the last
five minutes, one 300-second timer each.

Two remedies, each enough for what it covers: trio sweeps once stale entries pass
twice the live ones by :data:`STALE_DEADLINES` instead of 1,000 (a tuning of a private
constant: :func:`sweep_stale_deadlines_sooner` says whether it took), and our own long
timer sleeps in slices (:func:`sleep_in_slices`), so it never leaves an entry for
longer than a slice, whatever trio does.
"""

from __future__ import annotations

import logging
import math

import trio
from trio._core import _run as trio_run

log = logging.getLogger(__name__)

# Stale entries trio may keep beyond twice the live ones. A sweep costs a pass over the
# heap: with this margin it comes at most once per this many cancelled deadlines, a few
# microseconds each.
STALE_DEADLINES = 64
# trio's name for that margin (private to trio: checked, not assumed).
TRIO_PRUNE_THRESHOLD = "DEADLINE_HEAP_MIN_PRUNE_THRESHOLD"

# The longest a cancelled long timer's entry stays in trio's deadline heap; also how
# often a long sleep wakes up (a few comparisons) on its way.
SLICE_SECONDS = 10.0


def sweep_stale_deadlines_sooner(margin: int = STALE_DEADLINES) -> bool:
    """Have trio sweep stale deadline entries once they pass twice the live ones by
    ``margin``. False (nothing changed) if this trio has no such setting."""
    if not isinstance(getattr(trio_run, TRIO_PRUNE_THRESHOLD, None), int):
        log.debug("trio has no %s: stale deadlines swept at trio's pace", TRIO_PRUNE_THRESHOLD)
        return False
    setattr(trio_run, TRIO_PRUNE_THRESHOLD, margin)
    return True


async def sleep_in_slices(seconds: float, slice_seconds: float = SLICE_SECONDS) -> None:
    """``trio.sleep(seconds)``, as consecutive sleeps of at most ``slice_seconds``."""
    if math.isnan(seconds) or seconds < 0:
        raise ValueError("seconds must be non-negative")
    deadline = trio.current_time() + seconds
    await trio.sleep_until(min(deadline, trio.current_time() + slice_seconds))
    # A loop of sleeps on purpose (not an Event): each slice is a deadline of its own.
    while (now := trio.current_time()) < deadline:  # noqa: ASYNC110
        await trio.sleep_until(min(deadline, now + slice_seconds))


__all__ = [
    "SLICE_SECONDS",
    "STALE_DEADLINES",
    "sleep_in_slices",
    "sweep_stale_deadlines_sooner",
]
