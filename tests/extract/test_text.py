"""Format ``text`` (and plain ``codex exec``) and ``aider``: each category by hand,
with the near misses that must not match."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_wrapper.extract import Record, make_extractor, record_type
from trio_wrapper.extract.ansi import strip_ansi
from trio_wrapper.extract.numbers import parse_number
from trio_wrapper.extract.records import MAX_LONG_TEXT, CodeBlock


def run(text: str, fmt: str = "text", stream: str = "stderr") -> list[tuple[Any, ...]]:
    ex = make_extractor(fmt)
    lines = [line.encode() for line in text.split("\n")]
    records: list[Record] = ex.feed(lines, 1, stream) + ex.finish()
    return [(record_type(r), *msgspec.structs.astuple(r)) for r in records]


def test_session_header_lines_outside_a_banner() -> None:
    got = run(
        "model: gpt-5.2-codex\nprovider: openai\nworkdir: /w\nsession id: abc-1\n"
        "approval: never\nsandbox: read-only\nreasoning effort: high"
    )
    assert got == [
        ("session", 1, "model", "gpt-5.2-codex"),
        ("session", 2, "provider", "openai"),
        ("session", 3, "workdir", "/w"),
        ("session", 4, "session_id", "abc-1"),
        ("session", 5, "approval", "never"),
        ("session", 6, "sandbox", "read-only"),
        ("session", 7, "reasoning_effort", "high"),
    ]


@pytest.mark.parametrize(
    "line",
    [
        "the model: gpt-4 is fine",
        "  model: indented",
        "model:",
        "model:   ",
        "modelname: x",
        "model:gpt-4",
        "supermodel: x",
        "# model: commented",
    ],
)
def test_session_near_misses(line: str) -> None:
    assert run(line) == []


def test_header_block_takes_any_key_in_snake_case() -> None:
    got = run(
        "OpenAI Codex v0.50.0 (research preview)\n--------\nworkdir: /w\n"
        "Reasoning Summaries: auto\nnew-key: v\n--------\nuser\nhi\nNote: x"
    )
    assert got == [
        ("session", 1, "version", "0.50.0"),
        ("session", 3, "workdir", "/w"),
        ("session", 4, "reasoning_summaries", "auto"),
        ("session", 5, "new_key", "v"),
        ("prompt", 7, "hi\nNote: x"),
    ]


def test_blocks_user_codex_thinking_exec() -> None:
    got = run(
        "user\nfix the bug\nin two lines\nthinking\n**Reading the code**\ncodex\n"
        "Done.\nerror: this is prose, not an error report\nexec\n"
        "bash -lc 'make test' in /repo exited 2 in 1.5s:\nerror: build failed\n"
        "exec\nbash -lc ls in /repo succeeded in 5ms:\nREADME.md\ncodex\nAll good."
    )
    assert got == [
        ("prompt", 1, "fix the bug\nin two lines"),
        ("state", 4, "thinking", "**Reading the code**"),
        ("response", 6, "Done.\nerror: this is prose, not an error report"),
        ("tool_call", 10, "shell", "bash -lc 'make test'", "failed", 2),
        ("error", 11, "error: build failed", "tool"),
        ("tool_call", 13, "shell", "bash -lc ls", "completed", 0),
        ("response", 15, "All good."),
    ]


def test_parallel_exec_lines_glued_together() -> None:
    got = run(
        "exec\nbash -lc 'sleep 1' in /wexec\nbash -lc 'echo hi' in /w succeeded in 3ms:\nhi\n"
        " succeeded in 1.0s:\n"
    )
    assert got == [
        ("tool_call", 3, "shell", "bash -lc 'echo hi'", "completed", 0),
        ("tool_call", 2, "shell", "bash -lc 'sleep 1'", "completed", 0),
    ]


def test_exec_without_status_is_reported_at_end() -> None:
    assert run("exec\nbash -lc 'sleep 100' in /w") == [
        ("tool_call", 2, "shell", "bash -lc 'sleep 100'", "unknown", None)
    ]


def test_old_timestamped_layout() -> None:
    got = run(
        "[2025-08-01T12:00:00] OpenAI Codex v0.20.0 (research preview)\n--------\n"
        "model: o3\n--------\n[2025-08-01T12:00:01] User instructions:\nhello\n"
        "[2025-08-01T12:00:02] codex\nHi there\n"
        "[2025-08-01T12:00:03] exec bash -lc ls in /w\n"
        "[2025-08-01T12:00:04] bash -lc ls succeeded in 4ms:\nREADME\n"
        "[2025-08-01T12:00:05] tokens used: 1,234"
    )
    assert got == [
        ("session", 1, "version", "0.20.0"),
        ("session", 3, "model", "o3"),
        ("prompt", 5, "hello"),
        ("response", 7, "Hi there"),
        ("tool_call", 9, "shell", "bash -lc ls", "completed", 0),
        ("metric", 12, "tokens_used", 1234, "tokens"),
    ]


def test_tokens_used_same_and_next_line() -> None:
    assert run("tokens used\n5,244") == [("metric", 2, "tokens_used", 5244, "tokens")]
    assert run("tokens used: 0") == [("metric", 1, "tokens_used", 0, "tokens")]
    assert run("tokens used\nnot a number") == []
    assert run("tokens used in this run: 12") == []
    assert run("The tokens used\n12") == []


def test_tokens_used_number_in_the_next_batch() -> None:
    ex = make_extractor("text")
    assert ex.feed([b"tokens used"], 1, "stderr") == []
    got = ex.feed([b"12,000"], 2, "stderr")
    assert [(r.line_num, msgspec.structs.astuple(r)[1:]) for r in got] == [
        (2, ("tokens_used", 12000, "tokens"))
    ]


def test_code_blocks() -> None:
    got = run(
        "```python\ndef f():\n\n    return 1\n```\n~~~\nplain\n~~~\n````md\n```\ninner\n```\n````"
    )
    assert got == [
        ("code_block", 1, "python", 3, "def f():\n\n    return 1"),
        ("code_block", 6, "", 1, "plain"),
        ("code_block", 9, "md", 3, "```\ninner\n```"),
    ]


def test_code_block_near_misses_and_edges() -> None:
    assert run("use ```inline``` code") == []
    assert run("```js ``` not a fence\n    ```indented four is code, not a fence") == []
    assert run("```\n```") == [("code_block", 1, "", 0, "")]
    # An unclosed block is closed at the end of output.
    assert run("```sh\nls\n") == [("code_block", 1, "sh", 2, "ls\n")]


def test_code_block_across_batches_and_in_code_block_flag() -> None:
    ex = make_extractor("text")
    assert ex.feed([b"```py", b"a = 1"], 1, "stdout") == []
    assert ex.in_code_block
    assert ex.feed([b"error: inside a code block is code"], 3, "stdout") == []
    # The other stream is not inside the block.
    assert [r.line_num for r in ex.feed([b"error: on stderr"], 4, "stderr")] == [4]
    got = ex.feed([b"", b"```", b"after"], 5, "stdout")
    assert not ex.in_code_block
    assert [msgspec.structs.astuple(r) for r in got] == [
        (1, "py", 3, "a = 1\nerror: inside a code block is code\n")
    ]


@pytest.mark.parametrize("per_batch", [None, 7])
def test_a_long_code_block_keeps_its_first_characters(per_batch: int | None) -> None:
    # 60 lines of 5,000 characters: more than MAX_LONG_TEXT, whether the block is closed
    # in the batch that opened it or its lines came in batches of 7.
    lines = [b"```txt", *[b"\xc3\xa9" * 5_000 for _ in range(60)], b"```"]
    step = per_batch or len(lines)
    ex = make_extractor("text")
    got: list[Record] = []
    for lo in range(0, len(lines), step):
        got += ex.feed(lines[lo : lo + step], lo + 1, "stdout")
    got += ex.finish()
    assert [(r.line_num, r.line_count) for r in got if isinstance(r, CodeBlock)] == [(1, 60)]
    block = got[0]
    assert isinstance(block, CodeBlock)
    assert len(block.content) == MAX_LONG_TEXT
    assert block.content == ("\u00e9" * 5_000 + "\n") * (MAX_LONG_TEXT // 5_001) + "\u00e9" * (
        MAX_LONG_TEXT % 5_001
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("error: could not compile `demo`", "error: could not compile `demo`"),
        ("Error: ENOENT: no such file", "Error: ENOENT: no such file"),
        ("ERROR: stream disconnected", "ERROR: stream disconnected"),
        ("error[E0308]: mismatched types", "error[E0308]: mismatched types"),
        ("fatal: not a git repository", "fatal: not a git repository"),
        ("ValueError: bad input", "ValueError: bad input"),
        ("litellm.AuthenticationError: key", "litellm.AuthenticationError: key"),
        ("warning: unused import", "warning: unused import"),
        ("WARNING: low disk", "WARNING: low disk"),
        ("Warning: For large repos", "Warning: For large repos"),
    ],
)
def test_error_and_warning_lines(line: str, message: str) -> None:
    assert run(line, stream="stdout") == [
        ("error", 1, message, "agent" if line.startswith(("ERROR:", "warning:")) else "stdout")
    ]


@pytest.mark.parametrize(
    "line",
    [
        "errors: 0",
        "error:",
        "Error handling was improved",
        "No errors found",
        "  error: indented quote",
        "terror: x",
        "ErrorBoundary: component",
        "warnings: 3",
        "This is a warning: not at the start",
    ],
)
def test_error_near_misses(line: str) -> None:
    assert run(line) == []


@pytest.mark.parametrize(
    ("line", "op", "path"),
    [
        ("Created src/app.py", "create", "src/app.py"),
        ("created file: docs/a.md", "create", "docs/a.md"),
        ("Wrote /tmp/out.json", "create", "/tmp/out.json"),
        ("Modified: src/lib/util.ts", "update", "src/lib/util.ts"),
        ("- Updated `README.md`", "update", "README.md"),
        ("\u2022 Edited src/main.rs (+3 -1)", "update", "src/main.rs"),
        ("Deleted old/legacy.py", "delete", "old/legacy.py"),
        ("Removed build/", "delete", "build/"),
        ("File created successfully at: /home/u/x.txt", "create", "/home/u/x.txt"),
        ("File deleted: notes.txt", "delete", "notes.txt"),
        ("Read Cargo.toml", "read", "Cargo.toml"),
    ],
)
def test_file_op_lines(line: str, op: str, path: str) -> None:
    assert run(line) == [("file_op", 1, op, path)]


@pytest.mark.parametrize(
    "line",
    [
        "Updated the docs.",
        "Added 3 tests",
        "Created a new function to parse input.",
        "Updated dependencies.",
        "Updated v1.2",
        "Modified files: 3",
        "Deleted",
        "I created src/app.py",
        "Created src/app.py and src/b.py",
        "Ready to go: yes.py",
    ],
)
def test_file_op_near_misses(line: str) -> None:
    assert run(line) == []


def test_codex_file_update_block_and_diff() -> None:
    got = run(
        "file update\nA /w/new.py\n+print(1)\nM /w/old.py\n@@ -1 +1 @@\n-a\n+b\n"
        "D /w/gone.py\nR /w/a.py -> /w/b.py\napply_patch(auto_approved=true) exited 0 in 2ms:\n"
        "Success.\nfile update:\ndiff --git a/x b/x\nA not/an/entry.py\ncodex\ndone"
    )
    assert got == [
        ("file_op", 2, "create", "/w/new.py"),
        ("file_op", 4, "update", "/w/old.py"),
        ("file_op", 8, "delete", "/w/gone.py"),
        ("file_op", 9, "update", "/w/b.py"),
        ("tool_call", 10, "apply_patch", "", "completed", 0),
        ("response", 15, "done"),
    ]


def test_other_codex_events() -> None:
    got = run(
        'tool docs.search({"q":"x"})\ndocs.search({"q":"x"}) success in 20ms:\n{\n'
        '  "error: inside the result": 1\n}\n\U0001f310 Searched: trio nurseries\n'
        "codex session 0199-aaaa\ntask interrupted\nmcp startup: no servers\n"
        "deprecated: the flag --foo"
    )
    assert got == [
        ("tool_call", 2, "docs.search", '{"q":"x"}', "completed", None),
        ("tool_call", 6, "web_search", "trio nurseries", "completed", None),
        ("session", 7, "session_id", "0199-aaaa"),
        ("state", 8, "interrupted", "task interrupted"),
        ("error", 10, "deprecated: the flag --foo", "agent"),
    ]


def test_thinking_and_plan_blocks() -> None:
    got = run(
        "thinking\nstep one\nstep two\nPlan update\n  \u2713 read\n  \u2192 write\n"
        "exec\nls in /w succeeded in 1ms:"
    )
    assert got == [
        ("state", 1, "thinking", "step one\nstep two"),
        ("state", 4, "plan", "\u2713 read\n  \u2192 write"),
        ("tool_call", 8, "shell", "ls", "completed", 0),
    ]


def test_ansi_is_stripped_before_matching() -> None:
    line = "\x1b[1m\x1b[33mwarning:\x1b[0m careful\x1b]8;;http://x\x07link\x1b]8;;\x07"
    assert run(line) == [("error", 1, "warning: carefullink", "agent")]
    assert run("\x1b[3m\x1b[35mcodex\x1b[0m\x1b[0m\nhello") == [("response", 1, "hello")]
    assert run("Working... 10%\rWorking... 100%\rmodel: o3") == [("session", 1, "model", "o3")]


def test_strip_ansi_keeps_line_count() -> None:
    text = "a\x1b[31m\nb\x1b]0;title\nc\x1b"
    assert strip_ansi(text).count("\n") == 2


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    ex = make_extractor("text")
    got = ex.feed([b"\xff\xfeerror: x", b"error: bad \xff byte"], 1, "stdout")
    assert [msgspec.structs.astuple(r) for r in got] == [(2, "error: bad \ufffd byte", "stdout")]


def test_streams_keep_separate_blocks() -> None:
    ex = make_extractor("text")
    out = ex.feed([b"codex", b"answer line 1"], 1, "stderr")
    out += ex.feed([b"error: from stdout"], 3, "stdout")
    out += ex.feed([b"answer line 2", b"tokens used", b"10"], 4, "stderr")
    assert [(record_type(r), r.line_num) for r in out] == [
        ("error", 3),
        ("response", 1),
        ("metric", 6),
    ]
    assert msgspec.structs.astuple(out[1]) == (1, "answer line 1\nanswer line 2")


def test_none_format_extracts_nothing() -> None:
    ex = make_extractor("none")
    assert ex.feed([b"error: x", b"model: y"], 1, "stdout") == []
    assert ex.finish() == []
    assert ex.format == "none"
    assert not ex.in_code_block


def test_unknown_format_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown format 'yaml'"):
        make_extractor("yaml")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("5,244", 5244),
        ("15k", 15000),
        ("2.4k", 2400),
        ("1.2M", 1200000),
        ("0.04", 0.04),
        ("$0.04", 0.04),
        ("0", 0),
        ("1_000", 1000),
        ("1.5", 1.5),
    ],
)
def test_parse_number(text: str, value: float) -> None:
    assert parse_number(text) == value
    assert type(parse_number(text)) is type(value)


@pytest.mark.parametrize("text", ["", "k", "1.2.3", "12 apples", "-", "1e5x"])
def test_parse_number_rejects(text: str) -> None:
    assert parse_number(text) is None


def test_aider_older_and_cached_token_lines() -> None:
    got = run(
        "Aider v0.50.1\nMain model: claude-3-5-sonnet with diff edit format, infinite output\n"
        "Weak model: claude-3-haiku\n"
        "Models: gpt-4o with diff edit format, weak model gpt-4o-mini\n"
        "Tokens: 5,244 sent, 604 received. Cost: $0.02 request, $0.02 session.\n"
        "Tokens: 2.4k sent, 1.1k cache write, 4.4k cache hit, 212 received.\n"
        "Creating empty file src/new.py\nDid not apply edit to src/x.py (--dry-run)\n"
        "Tokens: lots sent\nCommit zzzzzzz not a sha\nApplied edit to",
        fmt="aider",
        stream="stdout",
    )
    assert got == [
        ("session", 1, "version", "0.50.1"),
        ("session", 2, "model", "claude-3-5-sonnet"),
        ("session", 2, "edit_format", "diff"),
        ("session", 3, "weak_model", "claude-3-haiku"),
        ("session", 4, "model", "gpt-4o"),
        ("session", 4, "edit_format", "diff"),
        ("session", 4, "weak_model", "gpt-4o-mini"),
        ("metric", 5, "tokens_sent", 5244, "tokens"),
        ("metric", 5, "tokens_received", 604, "tokens"),
        ("metric", 5, "cost_usd", 0.02, "usd"),
        ("metric", 5, "session_cost_usd", 0.02, "usd"),
        ("metric", 6, "tokens_sent", 2400, "tokens"),
        ("metric", 6, "tokens_cache_write", 1100, "tokens"),
        ("metric", 6, "tokens_cache_hit", 4400, "tokens"),
        ("metric", 6, "tokens_received", 212, "tokens"),
        ("file_op", 7, "create", "src/new.py"),
        ("error", 8, "Did not apply edit to src/x.py (--dry-run)", "agent"),
    ]


@settings(max_examples=60, deadline=None)
@given(
    body=st.lists(
        st.sampled_from(
            [
                "codex",
                "user",
                "exec",
                "ls in /w succeeded in 1ms:",
                "```py",
                "```",
                "x = 1",
                "naïve — ✓ 日本",
                "",
                "tokens used",
                "1,000",
                "error: e",
                "model: m",
                "Created a/b.py",
                "\x1b[1mwarn\x1b[0m",
                "file update",
                "A /w/x.py",
                "OpenAI Codex v1.0.0",
                "--------",
                "thinking",
            ]
        ),
        max_size=60,
    ),
    cuts=st.lists(st.integers(1, 59), max_size=10),
)
def test_text_batching_property(body: list[str], cuts: list[int]) -> None:
    lines = [line.encode() for line in body]

    def feed(bounds: list[int]) -> list[Record]:
        ex = make_extractor("text")
        out: list[Record] = []
        for lo, hi in itertools.pairwise(bounds):
            if hi > lo:
                out += ex.feed(lines[lo:hi], lo + 1, "stderr")
        return out + ex.finish()

    split = [0, *sorted({c for c in cuts if c < len(lines)}), len(lines)]
    whole = feed([0, len(lines)])
    parts = feed(split)
    assert list(map(msgspec.json.encode, whole)) == list(map(msgspec.json.encode, parts))
