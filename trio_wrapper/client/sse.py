"""Server-Sent Events as read from the wire: lines in, events out (pure, no I/O)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SseEvent:
    """One event: its ``event:`` type, ``id:`` (None for control events) and the JSON of
    its ``data:`` (the daemon's envelope: ``type``, ``timestamp``, ``agent_name``, ``data``)."""

    event: str
    id: int | None
    data: Any

    @property
    def payload(self) -> dict[str, Any]:
        """The envelope's ``data`` object (an empty dict when there is none)."""
        if isinstance(self.data, dict):
            inner = self.data.get("data")
            if isinstance(inner, dict):
                return inner
        return {}


class SseParser:
    """Feed it the stream's lines (without their line ends); it returns an event at each
    blank line that ends one. Comments (``:``), ``retry:`` and unknown fields are ignored;
    several ``data:`` lines are joined with newlines, as the SSE standard says."""

    def __init__(self) -> None:
        self._event = ""
        self._id: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> SseEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id":
            self._id = value
        return None

    def _dispatch(self) -> SseEvent | None:
        if not self._data and not self._event:
            return None
        text = "\n".join(self._data)
        try:
            data: Any = json.loads(text) if text else None
        except ValueError:
            data = text
        ident = int(self._id) if self._id is not None and self._id.isdigit() else None
        event = SseEvent(self._event or "message", ident, data)
        self._event, self._id, self._data = "", None, []
        return event
