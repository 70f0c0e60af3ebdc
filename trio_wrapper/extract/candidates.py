"""Finding the lines worth a look in a batch: one RE2 pass over its bytes.

The streaming extractors (text, aider) look closely at few lines: those that begin
like an event, a marker, a fence or an error. Finding them is most of their cost, so
it is done by Google's RE2, whose DFA tries every alternative of the pattern at once
in a single pass. Python's ``re`` tries the alternatives one after another at every
newline and was six times slower on a busy agent's output. The pattern works on the
batch's UTF-8 bytes (no decoding of the lines nobody looks at) and starts with the
``\\n`` put in front of every line, so a match's start + 1 is the line's start.

RE2's syntax differs from ``re``'s in small ways: ``\\w`` and ``\\d`` are ASCII only
(write ``[\\pL\\pN_]`` for letters of any script), no look-around, no back-references,
and non-ASCII characters are written as themselves, not as ``\\u`` escapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, cast

import re2


class _Match(Protocol):
    def start(self) -> int: ...


# google-re2's public finditer wraps every match in a Python object built by Python
# code; its compiled regexp's Match() returns the spans directly, at half the cost
# per candidate. It is not documented, so it is used only when it is there, and a
# test checks both ways agree.
_UNANCHORED: Any = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)


class CandidateLines:
    """``starts(text)``: the start of every line of ``text`` the pattern accepts."""

    __slots__ = ("_finditer", "_match", "pattern")

    def __init__(self, pattern: str, *, public_api_only: bool = False) -> None:
        if not pattern.startswith("\\n"):
            raise ValueError("a candidate pattern starts with \\n")
        self.pattern = pattern
        compiled = re2.compile(("(?m)" + pattern).encode())
        self._finditer = cast(Callable[[bytes], Iterator[_Match]], compiled.finditer)
        match = getattr(getattr(compiled, "_regexp", None), "Match", None)
        usable = match is not None and _UNANCHORED is not None and not public_api_only
        self._match: Callable[[Any, bytes, int, int], list[tuple[int, int]]] | None = (
            match if usable else None
        )

    def starts(self, text: bytes) -> list[int]:
        match = self._match
        if match is None:
            return [m.start() + 1 for m in self._finditer(text)]
        out: list[int] = []
        pos = 0
        end = len(text)
        while True:
            first, last = match(_UNANCHORED, text, pos, end)[0]
            if first < 0:
                return out
            out.append(first + 1)
            pos = last  # never stuck: every match contains at least its "\n"
