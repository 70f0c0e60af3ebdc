"""Recent events, kept as they were published and built into ``Event`` objects only
when asked. Pure.

A ``Published`` is what one publish produced: the lines of one read, or a few
state/extraction events. Rings hold them, so an agent writing a million lines with nobody
watching costs one small object per read here, not one per line. Ids inside one are
consecutive, and consecutive ones in a ring continue each other, so a ring is one
unbroken id range. ("Run", elsewhere, is one execution of an agent.)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

import msgspec

from trio_wrapper.core.lines import joined, total_length
from trio_wrapper.extract.found import Found
from trio_wrapper.streaming.backlog import Backlog
from trio_wrapper.streaming.wire import Event, stamp

# For the byte bounds of rings and client buffers: a line's bytes object and list slot;
# a small state event.
LINE_OVERHEAD = 48
EVENT_SIZE = 256
# Once streamed, a run also holds its SSE frames, once per id sequence it was sent on
# (an agent's stream and the all-agents one): each frame repeats the text, JSON-escaped
# (counted as 1.5 times: agents' JSON lines are dense with quotes), and adds this much
# besides the agent's name (id, event, type, timestamp, stream, line number).
FRAME_OVERHEAD = 160
WIRES = 2

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


# Every number below 1000 in ASCII, plain and as 3 digits: consecutive numbers (a run's ids
# and line numbers) are written as the digits of their thousands, shared by a thousand
# numbers, and one of these.
_PLAIN = [b"%d" % n for n in range(1000)]
_PADDED = [b"%03d" % n for n in range(1000)]


def _decimals(start: int, count: int, first_prefix: bytes = b"") -> tuple[list[bytes], list[bytes]]:
    """``count`` numbers from ``start`` in ASCII, as two lists to be joined pairwise (the
    thousands, the rest): no object is made per number (a ``%`` per number was most of a
    frame's cost). ``first_prefix`` goes before the first number."""
    heads: list[bytes] = []
    tails: list[bytes] = []
    number, end = start, start + count
    while number < end:
        thousands, low = divmod(number, 1000)
        take = min(end - number, 1000 - low)
        if thousands:
            heads += [b"%d" % thousands] * take
            tails += _PADDED[low : low + take]
        else:
            heads += [b""] * take
            tails += _PLAIN[low : low + take]
        number += take
    if first_prefix and heads:
        heads[0] = first_prefix + heads[0]
    return heads, tails


class Published:
    """Consecutive events of one agent from one publish: the lines of one read, the
    records one read yielded, or a few state events. Events and their wire bytes are
    built only when someone asks, and then once for everyone."""

    __slots__ = (
        "_events",
        "_global_wire",
        "_lines",
        "_records",
        "_wire",
        "agent",
        "backlog",
        "base",
        "count",
        "created",
        "gseq",
        "held",
        "holders",
        "line_num",
        "seq",
        "size",
        "stream",
    )

    def __init__(
        self,
        agent: str,
        seq: int,
        gseq: int,
        count: int,
        *,
        lines: Sequence[bytes] | None = None,
        stream: str = "",
        line_num: int = 0,
        records: Found | None = None,
        events: list[Event] | None = None,
    ) -> None:
        self.agent = agent
        self.seq = seq
        self.gseq = gseq
        self.count = count
        self._lines = lines
        self._records = records
        self.stream = stream
        self.line_num = line_num
        self.created = time.time()
        self._events = events
        if lines is not None:
            text = total_length(lines)
        elif records is not None:
            text = len(records.data)
        else:
            text = EVENT_SIZE * count
        # What it holds before it is streamed: its text, with a bytes object's overhead
        # per line.
        self.base = text + LINE_OVERHEAD * count
        # What it can come to hold, roughly, for the rings' byte bounds: once streamed,
        # its frames on both id sequences too. For short lines the frames weigh several
        # times the text.
        frame = FRAME_OVERHEAD + len(agent)
        self.size = self.base + WIRES * (text + text // 2 + frame * count)
        self._wire: bytes | None = None
        self._global_wire: bytes | None = None
        # Client buffers holding it, and the weight their ``Backlog`` counted for it.
        self.holders = 0
        self.held = 0
        self.backlog: Backlog | None = None

    @classmethod
    def of_lines(
        cls, agent: str, seq: int, gseq: int, lines: Sequence[bytes], stream: str, line_num: int
    ) -> Published:
        return cls(agent, seq, gseq, len(lines), lines=lines, stream=stream, line_num=line_num)

    @classmethod
    def of_records(cls, agent: str, seq: int, gseq: int, records: Found) -> Published:
        """Extraction records, as JSON lines: each is exactly the event's ``data`` object.
        They are split only if someone streams or replays them."""
        return cls(agent, seq, gseq, len(records), records=records)

    @classmethod
    def of_events(cls, events: list[Event]) -> Published:
        first = events[0]
        return cls(first.agent, first.seq, first.global_seq, len(events), events=events)

    @property
    def completes(self) -> bool:
        """Holds a ``complete`` event (only state runs can)."""
        return self._events is not None and any(e.type == "complete" for e in self._events)

    def events(self) -> list[Event]:
        """The run's events. Those of lines and records are built anew for each asker
        (a replay, rare) and not kept: kept, they would be many small objects a ring holds
        for minutes, which pin the allocator's arenas (see ``Lines.__iter__``)."""
        if self._events is None:
            agent, seq, gseq, created = self.agent, self.seq, self.gseq, self.created
            if self._records is not None:
                return [
                    Event(
                        agent,
                        seq + i,
                        gseq + i,
                        "extraction",
                        _decode(r),
                        created=created,
                    )
                    for i, r in enumerate(self._records.lines())
                ]
            else:
                stream, line_num = self.stream, self.line_num
                return [
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
                    for i, line in enumerate(self._lines or [])
                ]
        return self._events

    def wire(self, use_global: bool = False) -> bytes:
        """The whole run framed for SSE, encoded once per id sequence."""
        cached = self._global_wire if use_global else self._wire
        if cached is None:
            if self._lines is not None:
                cached = self._encode_lines(use_global)
            elif self._records is not None:
                cached = self._encode_records(use_global)
            elif use_global:
                cached = b"".join(e.global_wire() for e in self.events())
            else:
                cached = b"".join(e.wire() for e in self.events())
            if use_global:
                self._global_wire = cached
            else:
                self._wire = cached
            if self.backlog is not None:
                self.backlog.grew(self, len(cached))
        return cached

    def drop_frames(self) -> None:
        """Forget the frames ``wire`` built, once no client buffer holds the run (the
        ``Backlog`` calls it). Kept, a ring's runs would hold for minutes up to twice
        their text again in frames nobody is sending (for short lines, five times the
        text), each built in the middle of a flood and scattered over the heap it grew.
        A run streamed again is encoded again."""
        self._wire = None
        self._global_wire = None

    def weight(self) -> int:
        """What it holds now: its text, and the frames built so far (exact)."""
        weight = self.base
        if self._wire is not None:
            weight += len(self._wire)
        if self._global_wire is not None:
            weight += len(self._global_wire)
        return weight

    def _head(self, type_: str) -> bytes:
        return (
            b"\nevent: "
            + type_.encode()
            + b'\ndata: {"type":"'
            + type_.encode()
            + b'","timestamp":"'
            + stamp(self.created).encode()
            + b'","agent_name":'
            + _encode(self.agent)
            + b',"data":'
        )

    def _encode_lines(self, use_global: bool) -> bytes:
        # Byte for byte what Event.wire() gives, without an Event or a line of Python per
        # line: the lines are decoded in one go and JSON-encoded as one list, whose items
        # are cut apart where '","' stands (only between two items: inside a JSON string
        # every quote is escaped), then interleaved with the parts every frame shares.
        lines = self._lines or ()
        count = len(lines)
        if not count:
            return b""
        texts = _encode(joined(lines).decode("utf-8", "replace").split("\n"))[2:-2]
        inner = texts.split(b'","')
        if len(inner) != count:  # cannot happen (above); never a wrong frame if it did
            raise AssertionError("a JSON list of strings cut into the wrong number of items")
        first_id = self.gseq if use_global else self.seq
        parts = [b"}}\n\nid: "] * (8 * count)
        parts[0::8], parts[1::8] = _decimals(first_id, count, b"id: ")
        parts[2::8] = [self._head("log") + b'{"line":"'] * count
        parts[3::8] = inner
        parts[4::8] = [b'","stream":"' + self.stream.encode() + b'","line_num":'] * count
        parts[5::8], parts[6::8] = _decimals(self.line_num, count)
        parts[-1] = b"}}\n\n"
        return b"".join(parts)

    def _encode_records(self, use_global: bool) -> bytes:
        # The same way: each record's JSON is the event's data, as it is.
        records = self._records.lines() if self._records else []
        count = len(records)
        if not count:
            return b""
        first_id = self.gseq if use_global else self.seq
        parts = [b"}\n\nid: "] * (5 * count)
        parts[0::5], parts[1::5] = _decimals(first_id, count, b"id: ")
        parts[2::5] = [self._head("extraction")] * count
        parts[3::5] = records
        parts[-1] = b"}\n\n"
        return b"".join(parts)

    def first_id(self, use_global: bool) -> int:
        return self.gseq if use_global else self.seq


class EventRing:
    """The last ``capacity`` events of one id sequence (an agent's, or the daemon's), and
    no more than ``max_bytes`` of them (``Published.size``); the newest publish is always
    kept whole, whatever its size."""

    __slots__ = ("_bytes", "_runs", "_total", "capacity", "max_bytes", "use_global")

    def __init__(
        self, capacity: int, *, use_global: bool = False, max_bytes: int | None = None
    ) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.use_global = use_global
        self._runs: deque[Published] = deque()
        self._total = 0
        self._bytes = 0

    def __len__(self) -> int:
        return min(self._total, self.capacity)

    def append(self, run: Published) -> None:
        runs = self._runs
        runs.append(run)
        self._total += run.count
        self._bytes += run.size
        # Drop whole runs while what is left still covers the capacity, and while the
        # runs are over the byte bound (but the newest).
        while runs and self._total - runs[0].count >= self.capacity:
            self._drop_oldest()
        if self.max_bytes is not None:
            while len(runs) > 1 and self._bytes > self.max_bytes:
                self._drop_oldest()

    def _drop_oldest(self) -> None:
        dropped = self._runs.popleft()
        self._total -= dropped.count
        self._bytes -= dropped.size

    @property
    def retained_bytes(self) -> int:
        return self._bytes

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
