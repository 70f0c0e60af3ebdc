"""Fenced code blocks (CommonMark fences: ``` or ~~~, up to 3 spaces of indent).

Streaming extractors use :func:`open_fence` / :func:`closes` line by line; JSON
extractors, which get a whole message at once, use :func:`code_blocks_in`.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from trio_wrapper.extract.records import MAX_LONG_TEXT, CodeBlock

# The info string of a backtick fence may not contain a backtick (CommonMark), which
# keeps inline code like ```x``` on one line from opening a block.
_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*")
_CLOSE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*")


class Fence(NamedTuple):
    marker: str  # the fence run, e.g. "```" or "````"
    language: str


def open_fence(line: str) -> Fence | None:
    m = _OPEN.fullmatch(line)
    if m is None:
        return None
    marker, info = m.groups()
    if marker[0] == "~" and "`" in line:
        return None
    # "{.python}" (pandoc) and "python," are still python.
    return Fence(marker, info.strip("{}.,").lower())


def closes(line: str, fence: Fence) -> bool:
    m = _CLOSE.fullmatch(line)
    if m is None:
        return False
    run = m.group(1)
    return run[0] == fence.marker[0] and len(run) >= len(fence.marker)


def code_blocks_in(text: str, line_num: int) -> list[CodeBlock]:
    """The closed fenced blocks of a complete text. An unclosed fence at the end
    runs to the end of the text (as CommonMark renders it)."""
    if "```" not in text and "~~~" not in text:
        return []
    out: list[CodeBlock] = []
    fence: Fence | None = None
    body: list[str] = []
    for line in text.split("\n"):
        if fence is None:
            fence = open_fence(line)
            body = []
        elif closes(line, fence):
            out.append(make_block(line_num, fence.language, body))
            fence = None
        else:
            body.append(line)
    if fence is not None:
        out.append(make_block(line_num, fence.language, body))
    return out


def make_block(line_num: int, language: str, body: list[str]) -> CodeBlock:
    content = "\n".join(body)
    if len(content) > MAX_LONG_TEXT:
        content = content[:MAX_LONG_TEXT]
    return CodeBlock(line_num, language, len(body), content)
