"""The memory all SSE clients' buffers hold together, each run counted once. Pure.

Clients share what they wait for: a run (``ring.Published``) is one object, and its SSE
frames are encoded once for every client of the same id sequence. Ten clients behind on
the same million lines hold one copy of them, not ten, so a bound per client, which
must count the shared run in full for each, either lets the total grow with the number
of clients or cuts a fast firehose short for memory it does not use. This counts each
run once: from the first client that holds it to the last that lets it go, at its
weight (``Published.weight``), which grows when its frames are built while held. The
last one to let go also drops the frames (``Published.drop_frames``): a run the rings
keep for replays then holds its text only, until a client streams it again.

The fan-out (``Fanout._shed``) keeps the total under ``limit`` by dropping the oldest
runs of the clients furthest behind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trio_wrapper.streaming.ring import Published


class Backlog:
    """Bytes held by client buffers (and by the sends under way), each run once."""

    __slots__ = ("bytes", "limit", "runs")

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.bytes = 0  # the held runs' weight
        self.runs = 0  # how many distinct runs are held

    def hold(self, run: Published) -> None:
        """One more client holds ``run``; the first one counts its weight."""
        if not run.holders:
            run.held = run.weight()
            run.backlog = self
            self.bytes += run.held
            self.runs += 1
        run.holders += 1

    def release(self, run: Published) -> None:
        """A client lets ``run`` go (sent or dropped); the last one uncounts it."""
        run.holders -= 1
        if not run.holders:
            self.bytes -= run.held
            self.runs -= 1
            run.held = 0
            run.backlog = None
            run.drop_frames()

    def grew(self, run: Published, extra: int) -> None:
        """A held run built frames worth ``extra`` bytes (``Published.wire``)."""
        run.held += extra
        self.bytes += extra


__all__ = ["Backlog"]
