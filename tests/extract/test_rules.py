"""User rules from conf/patterns.toml: loading, validation, and use in every format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.helpers import REPO
from trio_wrapper.extract import Record, RulesError, load_rules, make_extractor, record_type

GOOD = """
[[rules]]
name = "rate_limited"
type = "error"
regex = '(?i)rate limit(?:ed)?[: ]+(.+)'
key = "api"

[[rules]]
name = "tests_passed"
type = "metric"
regex = '^=+ (\\d+(?:,\\d+)*) passed'
unit = "tests"

[[rules]]
name = "branch"
type = "session"
regex = 'Switched to branch (?P<b>\\S+)'
group = "b"

[[rules]]
name = "approval"
type = "state"
regex = '^Allow command\\?'
key = "waiting_for_input"

[[rules]]
name = "touched"
type = "file_op"
regex = '^touch (\\S+)$'
key = "create"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "patterns.toml"
    path.write_text(text)
    return path


def rows(records: list[Record]) -> list[tuple[Any, ...]]:
    return [(record_type(r), *msgspec.structs.astuple(r)) for r in records]


def test_shipped_file_loads_and_is_empty() -> None:
    assert load_rules(REPO / "conf" / "patterns.toml") == []


def test_rules_apply_to_text(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, GOOD))
    assert [r.name for r in rules] == [
        "rate_limited",
        "tests_passed",
        "branch",
        "approval",
        "touched",
    ]
    ex = make_extractor("text", rules=rules)
    lines = [
        b"Switched to branch main",
        b"x",
        b"\x1b[31m===== 1,024 passed in 2s\x1b[0m",
        b"Rate limited: retry in 20s",
        b"Allow command? [y/N]",
        b"touch a.txt",
        b"error: e",
    ]
    got = rows(ex.feed(lines, 10, "stdout") + ex.finish())
    assert got == [
        ("session", 10, "branch", "main"),
        ("metric", 12, "tests_passed", 1024, "tests"),
        ("error", 13, "retry in 20s", "api"),
        ("state", 14, "waiting_for_input", "Allow command?"),
        ("file_op", 15, "create", "a.txt"),
        ("error", 16, "error: e", "stdout"),  # built-in records still come
    ]


def test_rules_apply_to_json_lines_and_every_line_once(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, GOOD))
    ex = make_extractor("codex-json", rules=rules)
    lines = [
        b'{"type":"error","message":"rate limit: slow down"}',
        b"rate limited: a",
        b"rate limited: b",
    ]
    got = rows(ex.feed(lines, 1, "stdout"))
    assert got == [
        ("error", 1, "rate limit: slow down", "agent"),
        ("error", 1, 'slow down"}', "api"),
        ("error", 2, "a", "api"),
        ("error", 3, "b", "api"),
    ]


def test_a_regex_spanning_lines_matches_per_line_only(tmp_path: Path) -> None:
    rules = load_rules(
        write(
            tmp_path,
            """
[[rules]]
name = "pair"
type = "state"
regex = 'a\\s+b'
group = 0
""",
        )
    )
    ex = make_extractor("text", rules=rules)
    assert rows(ex.feed([b"a", b"b", b"a  b"], 1, "stdout")) == [("state", 3, "pair", "a  b")]


def test_metric_rule_with_a_non_number_gives_nothing(tmp_path: Path) -> None:
    rules = load_rules(
        write(
            tmp_path,
            """
[[rules]]
name = "count"
type = "metric"
regex = 'count=(\\S+)'
""",
        )
    )
    ex = make_extractor("aider", rules=rules)
    assert rows(ex.feed([b"count=lots", b"count=15k"], 1, "stdout")) == [
        ("metric", 2, "count", 15000, "")
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[[rules]]\nname = "x"\ntype = "metric"\nregex = "(unclosed"',
            "rule #1 ('x'): regex does not compile",
        ),
        (
            '[[rules]]\nname = "x"\ntype = "banana"\nregex = "a"',
            "rule #1 ('x'): 'type' must be one of",
        ),
        ('[[rules]]\nname = "x"\ntype = "code_block"\nregex = "a"', "'code_block' cannot come"),
        ('[[rules]]\ntype = "metric"\nregex = "a"', "rule #1: 'name' must be"),
        ('[[rules]]\nname = "x"\ntype = "metric"', "rule #1 ('x'): 'regex' must be"),
        (
            '[[rules]]\nname = "x"\ntype = "metric"\nregex = "(a)"\ngroup = 2',
            "'group' 2 but the regex has 1 group(s)",
        ),
        (
            '[[rules]]\nname = "x"\ntype = "metric"\nregex = "(a)"\ngroup = "v"',
            "'group' 'v' is not a named group",
        ),
        (
            '[[rules]]\nname = "x"\ntype = "metric"\nregex = "a"\ncolour = "red"',
            "unknown key 'colour'",
        ),
        (
            '[[rules]]\nname = "x"\ntype = "file_op"\nregex = "(a)"\nkey = "smash"',
            "needs 'key' = one of",
        ),
        (
            '[[rules]]\nname = "x"\ntype = "error"\nregex = "a"\n'
            '[[rules]]\nname = "x"\ntype = "error"\nregex = "b"',
            "rule #2 ('x'): duplicate name",
        ),
        ("rules = 3", "'rules' must be an array"),
        ("[rule]\nname = 1", "unknown top-level key 'rule'"),
        ("this is = = not toml", "invalid TOML"),
    ],
)
def test_bad_rules_are_one_line_errors(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(RulesError) as info:
        load_rules(path)
    text = str(info.value)
    assert message in text
    assert text.startswith(str(path))
    assert "\n" not in text


def test_missing_file_is_a_rules_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "absent.toml")
