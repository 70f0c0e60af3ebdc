"""What a (re)connecting client is replayed, and the gap it is told about. Pure.

A client resumes with ``Last-Event-ID`` or asks for the last ``history`` events. What the
ring no longer holds is reported as a ``Gap`` (the ``gap`` event's data), never made up.
"""

from __future__ import annotations

from dataclasses import dataclass

from trio_wrapper.streaming.ring import EventRing
from trio_wrapper.streaming.wire import Event


@dataclass(frozen=True, slots=True)
class Gap:
    """Events a client will never see: lost from its buffer, or gone from the ring."""

    missed: int
    first_id: int
    last_id: int

    def data(self) -> dict[str, int]:
        return {"missed": self.missed, "first_id": self.first_id, "last_id": self.last_id}


def select_replay(
    ring: EventRing, last_event_id: int | None, history: int
) -> tuple[list[Event], Gap | None]:
    """The events to replay from ``ring``, and the gap before them if the ring has lost
    some the client asked for. ``last_event_id`` wins over ``history``."""
    newest = ring.newest_id
    if newest is None:
        return [], None
    if last_event_id is not None:
        if last_event_id >= newest:
            return [], None
        oldest = ring.oldest_id or 0
        gap = None
        if last_event_id + 1 < oldest:
            gap = Gap(oldest - last_event_id - 1, last_event_id + 1, oldest - 1)
        return ring.since(last_event_id + 1), gap
    return ring.last(history), None


__all__ = ["Gap", "select_replay"]
