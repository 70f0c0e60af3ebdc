"""The last N lines of a log file, read backwards in blocks. Pure (blocking file I/O)."""

from __future__ import annotations

import os
from pathlib import Path

BLOCK = 64 * 1024
MAX_TAIL_BYTES = 64 * 1024 * 1024  # a tail request never reads more than this


def tail_lines(path: Path, count: int) -> bytes:
    """The last ``count`` lines (a final line without newline counts) as raw bytes."""
    if count <= 0:
        return b""
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        position = end
        data = b""
        # A trailing newline ends the last line; it does not start an empty one.
        wanted = count + 1 if end else count
        while position > 0 and data.count(b"\n") < wanted and end - position < MAX_TAIL_BYTES:
            step = min(BLOCK, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    trailing = data.endswith(b"\n")
    lines = data.split(b"\n")
    if trailing:
        lines.pop()
    kept = lines[-count:]
    return b"\n".join(kept) + (b"\n" if trailing and kept else b"")
