"""Text written once around slots, then filled with fresh values at each scrape. Pure.

With 1,000 agents a scrape writes ~9,000 Prometheus samples or 1,000 line-protocol points.
Their names, labels and tags (escaped) change only when an agent comes, goes, changes
status or finishes; between two scrapes only the numbers change. So the text around the
numbers is built once per layout as a ``%``-format string, and a scrape is a single
``format % values``: CPython converts each value (``%s`` is ``str()``) and copies the text
between them in C, with no Python-level work per sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

# A value written as ``str(value)``.
SLOT = "%s"
# A value written as ``repr(value)``.
REPR_SLOT = "%r"
# A value consumed but not written (``%.0s`` is ``str(value)`` cut to nothing): lets rows
# that lack a field (a running agent's exit code) take their share of a flat value list.
HIDDEN_SLOT = "%.0s"


def literal(text: str) -> str:
    """``text`` as it must appear in a format string: ``%`` is the only special character."""
    return text.replace("%", "%%")


def interleave(columns: Sequence[Sequence[object]]) -> tuple[object, ...]:
    """The values row by row (the first of every column, then the second...): the slots'
    order when a format writes a line per row. Strided slice assignments, in C."""
    width = len(columns)
    if not width:
        return ()
    values: list[object] = [None] * (width * len(columns[0]))
    for offset, column in enumerate(columns):
        values[offset::width] = column  # a column of another length raises ValueError
    return tuple(values)


L = TypeVar("L")


class LayoutMemo(Generic[L]):
    """The format string of the last layout seen; rebuilt only when the layout changes.

    A layout is whatever the text around the values is a function of (names, statuses,
    which agents have an exit code...): equal layouts give the same text, so reusing it
    keeps the output exactly what a fresh build would give. One entry: successive scrapes
    nearly always share the layout, and an old one is not coming back.
    """

    __slots__ = ("_format", "_layout")

    def __init__(self) -> None:
        self._layout: L | object = _NOTHING_YET  # equal to no layout: the first get builds
        self._format = ""

    def get(self, layout: L, build: Callable[[], str]) -> str:
        if layout != self._layout:
            self._format = build()
            self._layout = layout
        return self._format


_NOTHING_YET = object()
