"""The cheap tests the text extractor runs before a pattern must never turn away a line the
pattern matches: each is checked against its pattern on the lines the pattern is there
for, and on random edits of them (other scripts' letters, bullets, tabs, case)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_wrapper.extract import base, text

_EVENTS = [
    "tokens used",
    "tokens used: 1,234",
    "file update:",
    "file update",
    "mcp startup: ready",
    "mcp: server up",
    "ERROR: stream disconnected",
    "warning: slow",
    "deprecated: old flag",
    "OpenAI Codex v0.93.0 (research preview)",
    "--------",
    "codex session 0199a",
    "apply_patch(auto_approved=true) exited 0 in 12ms:",
    'docs.search({"q": 1}) success in 120ms:',
    "fs-1.read_file(path) failed in 3ms:",
    "tool fs.read_file({})",
    "\U0001f310 Searched: trio nursery",
    "\U0001f310 Searching the web...",
    "task interrupted",
    "task aborted by user",
    "context compacted",
    "exec ls -la in /workspace",
]
_ERRORS = [
    "error: cannot find value",
    "error[E0308]: mismatched types",
    "ERROR: boom",
    "Error: nope",
    "fatal: not a git repository",
    "FATAL: out of memory",
    "Fatal: x",
    "panic: runtime error",
    "ValueError: bad",
    "json.decoder.JSONDecodeError: Expecting value",
    "RuntimeException: x",
    "warning: unused variable",
    "WARNING: disk",
    "Warning: x",
    "WARN: x",
    "warning[W01]: x",
]
_FILE_LINES = [
    "Created src/app.py",
    "created: a/b.txt",
    "Creating docs/x.md",
    "Wrote out/report.json",
    "writing file: a/b",
    "Added tests/test_x.py",
    "- Modified: src/lib/handler.ts (+14 -18)",
    "* modifying a/b.c",
    "\u2022 Updated README.md",
    "updating x/y",
    "Edited main.go",
    "Deleted old/record.py",
    "deleting tmp/x.log",
    "Removed build/out.o",
    "Read src/config.toml",
    "File created: notes/todo.md",
    "file deleted successfully at old/a.txt",
    "WRITING file a/b.py",
]
_SESSIONS = [
    "model: gpt-5.2",
    "Provider: openai",
    "workdir: /workspace",
    "session id: 0199a",
    "session_id: 0199a",
    "\u017fession id: 0199a",  # a long s matches "s" case-insensitively
    "approval: never",
    "sandbox: read-only",
    "reasoning effort: high",
    "Reasoning Summaries: auto",
]
_DONE = [
    "/usr/bin/bash -lc 'git status' in /workspace succeeded in 748ms:",
    "make lint in /w exited 2 in 1.2s:",
    "pytest -q in /repo exited -1 in 9ms:",
]
_GLUED = ["/usr/bin/bash -lc 'pytest -q' in /workspaceexec", "a in bexec  "]

# Characters that change what a pattern sees: other scripts' letters that match ASCII ones
# case-insensitively (only i, k and s have such), a bullet, the search globe, blanks.
_TRICKY = "\u017f\u212a\u0130\u0131\u2022\U0001f310 \t:.()-*`~[]0123456789"
_EDIT = st.text(alphabet=st.sampled_from(_TRICKY) | st.characters(), max_size=3)


def _edited(examples: list[str]) -> st.SearchStrategy[str]:
    """An example, with a few characters put in or taken out somewhere, or its case
    changed: near misses and near matches."""

    def edit(line: str, at: int, cut: int, put: str, case: int) -> str:
        at = min(at, len(line))
        line = line[:at] + put + line[at + cut :]
        return (line, line.upper(), line.lower(), line.swapcase())[case]

    return st.builds(
        edit,
        st.sampled_from(examples),
        st.integers(0, 80),
        st.integers(0, 3),
        _EDIT,
        st.integers(0, 3),
    )


def _fullmatch(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda line: pattern.fullmatch(line) is not None


def _errors(line: str) -> bool:
    return base.ERROR_LINE.match(line) is not None or base.WARNING_LINE.match(line) is not None


CASES = {
    "event": (text._may_be_event, _fullmatch(text._EVENT), _EVENTS),
    "error": (base.is_error_line, _errors, _ERRORS),
    "file line": (text._may_be_file_line, _fullmatch(text._FILE_LINE), _FILE_LINES),
    "session key": (lambda line: ": " in line, _fullmatch(text._SESSION_KEY), _SESSIONS),
    "exec done": (text._may_be_done, _fullmatch(text._EXEC_DONE), _DONE),
    "exec glued": (lambda line: "exec" in line, _fullmatch(text._EXEC_GLUED), _GLUED),
}


@pytest.mark.parametrize("name", CASES)
def test_every_example_passes_its_precheck_and_matches(name: str) -> None:
    precheck, matches, examples = CASES[name]
    for line in examples:
        assert matches(line), line  # the examples are what the pattern is for
        assert precheck(line), line


@pytest.mark.parametrize("name", CASES)
@settings(max_examples=300)
@given(data=st.data())
def test_a_line_the_precheck_turns_away_never_matches(name: str, data: st.DataObject) -> None:
    precheck, matches, examples = CASES[name]
    every = examples + _EVENTS + _ERRORS + _FILE_LINES + _SESSIONS
    line = data.draw(_edited(every) | st.text(max_size=40))
    if not precheck(line):
        assert not matches(line), line


def test_the_error_precheck_turns_away_most_lines_of_output() -> None:
    """What the prechecks are for: plain output fails them without a pattern being run."""
    plain = ["Compiling trio v0.27", "  --> src/main.rs:3:5", "Running 12 tests", "ok", ""]
    assert not any(base.is_error_line(line) for line in plain)
    assert not any(text._may_be_event(line) for line in ["Compiling x", "Modified: a.py"])
    assert text._may_be_file_line("Modified: a.py")
    assert not text._may_be_file_line("Jobs: 4 of 12 done")
