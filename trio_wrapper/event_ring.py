"""Recent events, kept as runs and built into ``Event`` objects only when asked. Pure.

A run is what one publish produced: the lines of one read, or a few state/extraction
events. Rings hold runs, so an agent writing a million lines with nobody watching costs
one small object per read here, not one per line. Ids inside a run are consecutive, and
consecutive runs in a ring continue each other, so a ring is one unbroken id range.
"""

from __future__ import annotations

import time
from collections import deque

from trio_wrapper.sse_wire import Event


class Run:
    __slots__ = (
        "_events",
        "_lines",
        "agent",
        "count",
        "created",
        "gseq",
        "line_num",
        "seq",
        "stream",
    )

    def __init__(
        self,
        agent: str,
        seq: int,
        gseq: int,
        count: int,
        *,
        lines: list[bytes] | None = None,
        stream: str = "",
        line_num: int = 0,
        events: list[Event] | None = None,
    ) -> None:
        self.agent = agent
        self.seq = seq
        self.gseq = gseq
        self.count = count
        self._lines = lines
        self.stream = stream
        self.line_num = line_num
        self.created = time.time()
        self._events = events

    @classmethod
    def of_lines(
        cls, agent: str, seq: int, gseq: int, lines: list[bytes], stream: str, line_num: int
    ) -> Run:
        return cls(agent, seq, gseq, len(lines), lines=lines, stream=stream, line_num=line_num)

    @classmethod
    def of_events(cls, events: list[Event]) -> Run:
        first = events[0]
        return cls(first.agent, first.seq, first.global_seq, len(events), events=events)

    def events(self) -> list[Event]:
        """The run's events, built once and then shared by everyone who asks."""
        if self._events is None:
            lines = self._lines or []
            agent, seq, gseq = self.agent, self.seq, self.gseq
            stream, line_num, created = self.stream, self.line_num, self.created
            self._events = [
                Event(
                    agent,
                    seq + i,
                    gseq + i,
                    "log",
                    line=line,
                    stream=stream,
                    line_num=line_num + i,
                    created=created,
                )
                for i, line in enumerate(lines)
            ]
            self._lines = None
        return self._events

    def first_id(self, use_global: bool) -> int:
        return self.gseq if use_global else self.seq


class EventRing:
    """The last ``capacity`` events of one id sequence (an agent's, or the daemon's)."""

    __slots__ = ("_runs", "_total", "capacity", "use_global")

    def __init__(self, capacity: int, *, use_global: bool = False) -> None:
        self.capacity = capacity
        self.use_global = use_global
        self._runs: deque[Run] = deque()
        self._total = 0

    def __len__(self) -> int:
        return min(self._total, self.capacity)

    def append(self, run: Run) -> None:
        runs = self._runs
        runs.append(run)
        self._total += run.count
        # Drop whole runs while what is left still covers the capacity.
        while runs and self._total - runs[0].count >= self.capacity:
            self._total -= runs.popleft().count

    @property
    def newest_id(self) -> int | None:
        if not self._runs:
            return None
        last = self._runs[-1]
        return last.first_id(self.use_global) + last.count - 1

    @property
    def oldest_id(self) -> int | None:
        """The oldest id still retained (runs may hold a few older ones beyond capacity)."""
        newest = self.newest_id
        if newest is None:
            return None
        return max(self._runs[0].first_id(self.use_global), newest - self.capacity + 1)

    def since(self, first_id: int) -> list[Event]:
        """Retained events with id >= ``first_id``, oldest first."""
        oldest = self.oldest_id
        if oldest is None:
            return []
        first_id = max(first_id, oldest)
        picked: list[list[Event]] = []
        for run in reversed(self._runs):
            start = run.first_id(self.use_global)
            if start + run.count <= first_id:
                break
            events = run.events()
            picked.append(events[first_id - start :] if start < first_id else events)
        return [event for events in reversed(picked) for event in events]

    def last(self, count: int) -> list[Event]:
        newest = self.newest_id
        if newest is None or count <= 0:
            return []
        return self.since(newest - count + 1)

    def peek_last(self) -> Event | None:
        if not self._runs:
            return None
        return self._runs[-1].events()[-1]
