"""Terminal escape stripping, applied before any pattern is tried.

Works on a whole decoded batch (lines joined by ``\\n``): no pattern here can match a
newline, so the line count is unchanged.
"""

from __future__ import annotations

import re

# CSI (colours, cursor moves), OSC (titles, hyperlinks: ends in BEL or ESC \\, or is
# cut by the end of the line), and the two-byte escapes (ESC =, ESC 7, …).
# Each alternative starts with a literal escape byte, so the engine skips plain text fast.
_ANSI = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]"
    r"|\][^\x07\x1b\n]*(?:\x07|\x1b\\)?"
    r"|[PX^_][^\x1b\n]*(?:\x1b\\)?"
    r"|[ -/]*[0-~])"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
# A carriage return inside a line is a spinner or progress bar redrawing itself: what
# the terminal finally shows is the text after the last one.
_REDRAWN = re.compile(r"[^\n]*\r(?=[^\n\r])")


def strip_ansi(text: str) -> str:
    """Remove escapes; keep the text after the last ``\\r`` of each line."""
    if "\x1b" in text or "\x9b" in text:
        text = _ANSI.sub("", text)
    if "\r" in text:
        text = _REDRAWN.sub("", text).replace("\r", "")
    return text
