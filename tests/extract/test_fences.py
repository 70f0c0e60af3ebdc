"""Fenced code blocks: opening, closing, and whole-text scanning (CommonMark rules)."""

from __future__ import annotations

import pytest

from trio_wrapper.extract.fences import Fence, closes, code_blocks_in, make_block, open_fence
from trio_wrapper.extract.records import MAX_LONG_TEXT, CodeBlock


@pytest.mark.parametrize(
    ("line", "fence"),
    [
        ("```", Fence("```", "")),
        ("```python", Fence("```", "python")),
        ("````Python", Fence("````", "python")),
        ("   ~~~ rust", Fence("~~~", "rust")),
        ("``` {.python}", Fence("```", "python")),
        ("```python, linenums", Fence("```", "python")),
        ("~~~ `tick` is fine", None),  # a tilde fence's info may not hold a backtick
        ("    ```python", None),  # four spaces: indented code, not a fence
        ("``", None),
        ("```x```", None),  # inline code on one line
        ("text ```python", None),
    ],
)
def test_open_fence(line: str, fence: Fence | None) -> None:
    assert open_fence(line) == fence


def test_closes_needs_the_same_character_and_at_least_the_same_run() -> None:
    backticks = Fence("````", "")
    assert closes("````", backticks)
    assert closes("`````  ", backticks)
    assert not closes("```", backticks)  # shorter run
    assert not closes("~~~~", backticks)  # other character
    assert not closes("```` python", backticks)  # a closing fence has no info string
    assert closes("   ~~~", Fence("~~~", "sh"))
    assert not closes("    ~~~", Fence("~~~", "sh"))


def test_code_blocks_in_a_message() -> None:
    text = "Here:\n```python\nx = 1\ny = 2\n```\nand\n~~~\nplain\n~~~\n"
    assert code_blocks_in(text, 7) == [
        CodeBlock(7, "python", 2, "x = 1\ny = 2"),
        CodeBlock(7, "", 1, "plain"),
    ]


def test_inner_shorter_fence_stays_in_the_block() -> None:
    text = "````md\n```js\nlet a\n```\n````"
    assert code_blocks_in(text, 1) == [CodeBlock(1, "md", 3, "```js\nlet a\n```")]


def test_an_unclosed_fence_runs_to_the_end() -> None:
    assert code_blocks_in("```sh\nls\npwd", 3) == [CodeBlock(3, "sh", 2, "ls\npwd")]


def test_no_fence_no_blocks() -> None:
    assert code_blocks_in("no code here, only `inline`", 1) == []
    assert code_blocks_in("", 1) == []


def test_make_block_cuts_long_content() -> None:
    block = make_block(5, "txt", ["x" * (MAX_LONG_TEXT + 10)])
    assert block.line_count == 1
    assert len(block.content) == MAX_LONG_TEXT
