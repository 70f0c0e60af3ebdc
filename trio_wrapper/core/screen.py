"""A PTY agent's screen: its terminal output run through a terminal emulator (pyte).
Pure: bytes in, lines of text out.

The reader hands every chunk the terminal wrote to ``push`` (a copy into a bounded
buffer, nothing more: capture never waits for the emulator); ``feed`` runs what is
pending through the emulator, a slice at a time, where the caller has time for it.
Memory is fixed per agent: the screen is ``rows`` x ``cols`` cells and at most
``pending_limit`` bytes wait. Under a flood the oldest pending bytes are dropped (their
escape sequences with them, so the screen can be off until the program redraws it);
the log file keeps every byte regardless.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyte

# pyte takes about 5 ms per KiB of colourful output on a loaded 2-core machine: a full
# redraw of a TUI is a few KiB, so 64 KiB holds several, and a slice of 4 KiB is a short
# turn of the event loop.
PENDING_LIMIT = 64 * 1024
FEED_SLICE = 4 * 1024


@dataclass(frozen=True, slots=True)
class ScreenText:
    rows: int
    cols: int
    lines: list[str]
    cursor_row: int
    cursor_col: int


class TerminalScreen:
    __slots__ = ("_limit", "_pending", "_screen", "_stream", "dropped_bytes", "fed_bytes")

    def __init__(self, rows: int, cols: int, *, pending_limit: int = PENDING_LIMIT) -> None:
        self._screen = pyte.Screen(cols, rows)
        self._stream = pyte.ByteStream(self._screen)
        self._pending = bytearray()
        self._limit = pending_limit
        self.dropped_bytes = 0
        self.fed_bytes = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def push(self, chunk: bytes) -> None:
        """Keep ``chunk`` for the emulator (the oldest pending bytes go past the limit)."""
        pending = self._pending
        pending += chunk
        excess = len(pending) - self._limit
        if excess > 0:
            del pending[:excess]
            self.dropped_bytes += excess

    def feed(self, budget: int = FEED_SLICE) -> bool:
        """Run up to ``budget`` pending bytes through the emulator; True if more wait."""
        pending = self._pending
        if not pending:
            return False
        piece = bytes(pending[:budget])
        del pending[:budget]
        self._stream.feed(piece)
        self.fed_bytes += len(piece)
        return bool(pending)

    def feed_all(self) -> None:
        while self.feed():
            pass

    def lines(self) -> list[str]:
        """The screen as it is now (what is pending not yet in it), one string a row."""
        return list(self._screen.display)

    def text(self) -> ScreenText:
        screen = self._screen
        return ScreenText(
            rows=screen.lines,
            cols=screen.columns,
            lines=[line.rstrip() for line in screen.display],
            cursor_row=screen.cursor.y,
            cursor_col=screen.cursor.x,
        )
