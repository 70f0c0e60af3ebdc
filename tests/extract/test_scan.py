"""The byte-level scanning pieces of the streaming extractors: escape stripping on
bytes and the RE2 candidate finder."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_wrapper.extract.ansi import strip_ansi, strip_ansi_bytes
from trio_wrapper.extract.candidates import CandidateLines

# Pieces that make escapes, partial escapes, redraws and multi-byte text likely.
_PIECES = st.sampled_from(
    [
        "\x1b[1m",
        "\x1b[0m",
        "\x1b[38;5;208m",
        "\x1b]8;;http://x\x07",
        "\x1b]0;title\x1b\\",
        "\x1bP1$r\x1b\\",
        "\x1b=",
        "\x1b",
        "\x9b31m",
        "\x9b",
        "\r",
        "\n",
        "warning: ",
        "é",
        "\u2022 ",
        "\U0001f310",
        "\u011b\u009b",
        "[",
        "m",
        "abc",
    ]
)


@settings(max_examples=400)
@given(st.lists(_PIECES | st.text(max_size=4), max_size=30).map("".join))
def test_strip_on_bytes_equals_strip_on_text(text: str) -> None:
    assert strip_ansi_bytes(text.encode()).decode() == strip_ansi(text)


def test_strip_on_bytes_keeps_lines_and_other_bytes() -> None:
    data = b"a\x1b[31mred\x1b[0m\n\xff\xfe\nprogress 1%\rprogress 100%\ndone"
    assert strip_ansi_bytes(data) == b"ared\n\xff\xfe\nprogress 100%\ndone"


_TEXT = (
    "\nplain\nerror: x\n\u00fcError: y\n  ```py\n\U0001f310 Searched: q\nWARN z\nexec\n"
    "nothing here\n\u2022 Created a.py\nlast error"
).encode()


@pytest.mark.parametrize("public_api_only", [False, True])
def test_candidate_starts_are_line_starts(public_api_only: bool) -> None:
    pattern = (
        r"\n(?:[ \t]{0,3}```|(?i:error|warn)|[\pL\pN_.]*Error:|exec[ \t]*$|"
        "\U0001f310|(?:\u2022 )?Created"
        r")"
    )
    finder = CandidateLines(pattern, public_api_only=public_api_only)
    starts = finder.starts(_TEXT)
    lines = [_TEXT[s : _TEXT.find(b"\n", s) if b"\n" in _TEXT[s:] else None] for s in starts]
    assert [line.decode() for line in lines] == [
        "error: x",
        "\u00fcError: y",
        "  ```py",
        "\U0001f310 Searched: q",
        "WARN z",
        "exec",
        "\u2022 Created a.py",
    ]
    assert all(_TEXT[s - 1 : s] == b"\n" for s in starts)


def test_both_ways_of_finding_candidates_agree() -> None:
    pattern = r"\n(?:[a-z]+:|\d)"
    fast, slow = CandidateLines(pattern), CandidateLines(pattern, public_api_only=True)
    text = b"".join(b"\n%d: word%s" % (i, b" x:" * (i % 3)) for i in range(500))
    text += b"\nabc: d\n\nq"
    assert fast.starts(text) == slow.starts(text)
    expected = [m.start() + 1 for m in re.finditer(rb"\n(?:[a-z]+:|\d)", text)]
    assert fast.starts(text) == expected


def test_candidate_pattern_must_start_with_newline() -> None:
    with pytest.raises(ValueError):
        CandidateLines("error")
