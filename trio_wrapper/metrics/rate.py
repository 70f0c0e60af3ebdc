"""Events per second over a sliding window, in O(window) memory. Pure: the caller passes
the time, so tests need no clock."""

from __future__ import annotations

WINDOW_SECONDS = 60  # the contract: "the rate over the last 60 s, not a lifetime average"


class SlidingRate:
    """Counts in one-second buckets; the rate is the sum of the buckets still inside the
    window divided by the window (or by the time since ``start`` while that is shorter,
    so the first minute after a start is not understated)."""

    __slots__ = ("_counts", "_seconds", "_start", "_window")

    def __init__(self, start: float, window_seconds: int = WINDOW_SECONDS) -> None:
        if window_seconds < 1:
            raise ValueError("window_seconds must be at least 1")
        self._window = window_seconds
        self._start = start
        self._counts = [0] * window_seconds
        # The whole second each bucket currently holds; -1 = never used.
        self._seconds = [-1] * window_seconds

    def add(self, count: int, now: float) -> None:
        second = int(now)
        index = second % self._window
        if self._seconds[index] != second:
            self._seconds[index] = second
            self._counts[index] = 0
        self._counts[index] += count

    def rate(self, now: float) -> float:
        second = int(now)
        oldest = second - self._window + 1
        total = sum(
            count
            for count, bucket in zip(self._counts, self._seconds, strict=True)
            if oldest <= bucket <= second
        )
        span = min(float(self._window), now - self._start)
        return total / max(span, 1.0)
