"""At most one log line per kind per interval, and how many were held back meanwhile.

So a client that hits a limit again and again (or an attacker who does it on purpose)
costs the daemon's log one line per interval and kind, not one per request. Pure: the
caller passes the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Throttle:
    interval: float
    # kind → (when its last line was let through, how many were held back since)
    _last: dict[str, float] = field(default_factory=dict)
    _held: dict[str, int] = field(default_factory=dict)

    def admit(self, kind: str, now: float) -> int | None:
        """None: hold this one back (it is counted). Else let it through, and the number
        of ``kind`` held back since the last one let through (0 the first time)."""
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._held[kind] = self._held.get(kind, 0) + 1
            return None
        self._last[kind] = now
        return self._held.pop(kind, 0)

    def held(self, kind: str) -> int:
        """How many of ``kind`` are held back now (not yet reported by a line)."""
        return self._held.get(kind, 0)
