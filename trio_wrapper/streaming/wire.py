"""Server-Sent Events on the wire, and the event records behind them. Pure: no trio.

An event is built cheaply when it happens (a few slots, no JSON) and encoded only if a
client ever needs it; its JSON body is then cached, so a hundred clients share one
encoding. The ``id:`` line differs between an agent's own stream (agent sequence) and
``/api/events`` (global sequence), so both framings are cached separately.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()


class TimestampCache:
    """RFC 3339 UTC stamps with milliseconds; the date part is formatted once a second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def format(self, moment: float) -> str:
        second = int(moment)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{int((moment - second) * 1000):03d}Z"


_stamps = TimestampCache()


def stamp(moment: float) -> str:
    return _stamps.format(moment)


class Event:
    """One numbered event of one agent. ``data`` is the contract's ``data`` object, or for
    a log line (the hot path) ``None`` with ``line``/``stream``/``line_num`` set."""

    __slots__ = (
        "_body",
        "_global_wire",
        "_wire",
        "agent",
        "created",
        "data",
        "global_seq",
        "line",
        "line_num",
        "seq",
        "stream",
        "type",
    )

    def __init__(
        self,
        agent: str,
        seq: int,
        global_seq: int,
        type_: str,
        data: dict[str, Any] | None = None,
        *,
        line: bytes = b"",
        stream: str = "",
        line_num: int = 0,
        created: float | None = None,
    ) -> None:
        self.agent = agent
        self.seq = seq
        self.global_seq = global_seq
        self.type = type_
        self.data = data
        self.line = line
        self.stream = stream
        self.line_num = line_num
        self.created = time.time() if created is None else created
        self._body: bytes | None = None
        self._wire: bytes | None = None
        self._global_wire: bytes | None = None

    def body(self) -> bytes:
        if self._body is None:
            data = self.data
            if data is None:
                data = {
                    "line": self.line.decode("utf-8", "replace"),
                    "stream": self.stream,
                    "line_num": self.line_num,
                }
            self._body = envelope(self.type, self.agent, data, self.created)
        return self._body

    def wire(self) -> bytes:
        """Framed for the agent's own stream: ``id`` is the agent's sequence number."""
        if self._wire is None:
            self._wire = frame(self.type, self.body(), self.seq)
        return self._wire

    def global_wire(self) -> bytes:
        """Framed for ``/api/events``: ``id`` is the daemon-wide sequence number."""
        if self._global_wire is None:
            self._global_wire = frame(self.type, self.body(), self.global_seq)
        return self._global_wire


def envelope(type_: str, agent: str | None, data: dict[str, Any], created: float) -> bytes:
    return _encoder.encode(
        {
            "type": type_,
            "timestamp": _stamps.format(created),
            "agent_name": agent,
            "data": data,
        }
    )


def frame(type_: str, body: bytes, event_id: int | None = None) -> bytes:
    """``id:``/``event:``/``data:`` lines and the blank line. JSON never holds a raw newline,
    so one ``data:`` line is always enough."""
    head = b"event: " + type_.encode() + b"\ndata: "
    if event_id is not None:
        head = b"id: " + str(event_id).encode() + b"\n" + head
    return head + body + b"\n\n"


def control(type_: str, agent: str | None, data: dict[str, Any]) -> bytes:
    """An unnumbered event (connected, ping, gap, shutdown): never retained, no ``id``."""
    return frame(type_, envelope(type_, agent, data, time.time()))


def parse_last_event_id(value: str | None) -> int | None:
    """A client's ``Last-Event-ID``: a non-negative integer, anything else is ignored."""
    if value is None:
        return None
    value = value.strip()
    # ASCII digits only: str.isdigit() also takes "²" (and other scripts' digits), which
    # int() then refuses.
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        return None
    return int(value)
