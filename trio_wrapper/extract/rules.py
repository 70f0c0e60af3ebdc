"""User rules: extra regexes from a TOML file (``conf/patterns.toml``).

Each ``[[rules]]`` table names a record type, a regex and which group holds the
value; the rule is tried on every decoded line of every format (for text formats the
line after ANSI stripping, for JSON formats the raw JSON text).

A bad file is a :class:`RulesError` with one line naming the file, the rule and the
problem: the daemon turns it into a clean startup error instead of a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trio_wrapper.core.tomlfile import TomlFileError, read_toml
from trio_wrapper.extract.numbers import parse_number
from trio_wrapper.extract.records import (
    FILE_OPS,
    MAX_LONG_TEXT,
    Error,
    FileOp,
    Metric,
    Prompt,
    Record,
    Response,
    Session,
    State,
    ToolCall,
    short,
)

RULE_TYPES = ("session", "prompt", "response", "tool_call", "file_op", "metric", "error", "state")
_ALLOWED_KEYS = frozenset({"name", "type", "regex", "group", "key", "unit", "ignore_case"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class RulesError(ValueError):
    """A rules file that cannot be used; ``str()`` is one line naming the bad rule."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One user rule. ``key`` fills the record's naming field: the metric or session
    key, the state name, the tool name, the file op, the error source."""

    name: str
    type: str
    pattern: re.Pattern[str]
    group: int | str
    key: str
    unit: str = ""

    def record(self, line: str, line_num: int) -> Record | None:
        m = self.pattern.search(line)
        if m is None:
            return None
        value = m.group(self.group)
        if value is None:  # an optional group that did not take part
            return None
        kind = self.type
        if kind == "metric":
            number = parse_number(value)
            return None if number is None else Metric(line_num, self.key, number, self.unit)
        if kind == "error":
            return Error(line_num, short(value), self.key)
        if kind == "state":
            return State(line_num, self.key, short(value))
        if kind == "session":
            return Session(line_num, self.key, short(value))
        if kind == "tool_call":
            return ToolCall(line_num, self.key, short(value), "")
        if kind == "file_op":
            return FileOp(line_num, self.key, value)
        if kind == "prompt":
            return Prompt(line_num, value[:MAX_LONG_TEXT])
        return Response(line_num, value[:MAX_LONG_TEXT])


def apply_rules(rules: Sequence[Rule], text: str, first_line_num: int) -> list[Record]:
    """Records of ``rules`` over a batch of lines joined by ``\\n``.

    Each rule searches the whole batch (one C-level scan instead of one call per line)
    and is then re-checked on the single line where the hit starts, so a pattern that
    could span a newline never matches across lines; the search resumes on the next
    line, so every line matching on its own is found.
    """
    out: list[Record] = []
    size = len(text)
    for rule in rules:
        search = rule.pattern.search
        pos = 0
        line_idx = 0
        counted_to = 0
        while pos <= size:
            m = search(text, pos)
            if m is None:
                break
            start = text.rfind("\n", 0, m.start()) + 1
            end = text.find("\n", m.start())
            if end < 0:
                end = size
            line_idx += text.count("\n", counted_to, start)
            counted_to = start
            rec = rule.record(text[start:end], first_line_num + line_idx)
            if rec is not None:
                out.append(rec)
            pos = end + 1
    if len(rules) > 1:
        out.sort(key=_line_of)
    return out


def _line_of(record: Record) -> int:
    return record.line_num


def load_rules(path: str | Path) -> list[Rule]:
    """Read and validate a rules file. A missing file is an error (the caller decides
    whether a default path may be absent)."""
    try:
        data = read_toml(path)
    except TomlFileError as exc:
        raise RulesError(str(exc)) from None
    return parse_rules(data, str(path))


def parse_rules(data: Mapping[str, Any], source: str = "<rules>") -> list[Rule]:
    unknown = set(data) - {"rules"}
    if unknown:
        raise RulesError(
            f"{source}: unknown top-level key {sorted(unknown)[0]!r} (expected [[rules]])"
        )
    tables = data.get("rules", [])
    if not isinstance(tables, list):
        raise RulesError(f"{source}: 'rules' must be an array of tables ([[rules]])")
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, table in enumerate(tables, start=1):
        rule = _parse_rule(table, f"{source}: rule #{index}")
        if rule.name in seen:
            raise RulesError(f"{source}: rule #{index} ({rule.name!r}): duplicate name")
        seen.add(rule.name)
        rules.append(rule)
    return rules


def _parse_rule(table: object, where: str) -> Rule:
    if not isinstance(table, dict):
        raise RulesError(f"{where}: must be a table")
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RulesError(
            f"{where}: 'name' must be a string like 'rate_limit' (letters, digits, _.-)"
        )
    where = f"{where} ({name!r})"
    extra = set(table) - _ALLOWED_KEYS
    if extra:
        raise RulesError(f"{where}: unknown key {sorted(extra)[0]!r}")
    kind = table.get("type")
    if kind == "code_block":
        raise RulesError(f"{where}: 'code_block' cannot come from a one-line rule")
    if kind not in RULE_TYPES:
        raise RulesError(f"{where}: 'type' must be one of {', '.join(RULE_TYPES)}; got {kind!r}")
    regex = table.get("regex")
    if not isinstance(regex, str) or not regex:
        raise RulesError(f"{where}: 'regex' must be a non-empty string")
    ignore_case = table.get("ignore_case", False)
    if not isinstance(ignore_case, bool):
        raise RulesError(f"{where}: 'ignore_case' must be true or false")
    try:
        # MULTILINE so ^ and $ keep their per-line meaning when apply_rules scans a
        # whole batch at once.
        flags = re.MULTILINE | (re.IGNORECASE if ignore_case else 0)
        pattern = re.compile(regex, flags)
    except re.error as exc:
        raise RulesError(f"{where}: regex does not compile: {exc}") from None
    group = table.get("group", 1 if pattern.groups else 0)
    if isinstance(group, bool) or not isinstance(group, int | str):
        raise RulesError(f"{where}: 'group' must be a group number or name")
    if isinstance(group, int) and not 0 <= group <= pattern.groups:
        raise RulesError(f"{where}: 'group' {group} but the regex has {pattern.groups} group(s)")
    if isinstance(group, str) and group not in pattern.groupindex:
        raise RulesError(f"{where}: 'group' {group!r} is not a named group of the regex")
    key = table.get("key", _default_key(kind, name))
    if not isinstance(key, str) or not key:
        raise RulesError(f"{where}: 'key' must be a non-empty string")
    if kind == "file_op" and key not in FILE_OPS:
        raise RulesError(
            f"{where}: a file_op rule needs 'key' = one of {', '.join(sorted(FILE_OPS))}"
        )
    unit = table.get("unit", "")
    if not isinstance(unit, str):
        raise RulesError(f"{where}: 'unit' must be a string")
    return Rule(name=name, type=kind, pattern=pattern, group=group, key=key, unit=unit)


def _default_key(kind: str, name: str) -> str:
    if kind == "error":
        return "rule"
    if kind == "file_op":
        return "update"
    return name


__all__ = ["Rule", "RulesError", "apply_rules", "load_rules", "parse_rules"]
