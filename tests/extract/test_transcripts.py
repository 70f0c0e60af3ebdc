"""Every real transcript in tests/fixtures/transcripts, through its extractor: the exact records,
the same records however the lines are batched, and garbage mixed in changes nothing."""

from __future__ import annotations

import itertools
from typing import Any
from unittest.mock import ANY

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import TRANSCRIPTS
from trio_wrapper.extract import Record, make_extractor, record_type

FORMATS = {
    "aider/edit_and_commit_2025-12.txt": "aider",
    "aider/header_v0.86.2.txt": "aider",
    "aider/real_fake_server_0.86.2.txt": "aider",
    "claude/gleam_golden_basic_query_2.1.7.jsonl": "claude-stream-json",
    "claude/gleam_init_and_result_2.1.3.jsonl": "claude-stream-json",
    "claude/real_fake_server_2.1.197.jsonl": "claude-stream-json",
    "claude/vincent_stream_permission_allow_2.1.226.jsonl": "claude-stream-json",
    "codex/exec_json_docs_sample.jsonl": "codex-json",
    "codex/plain_exec_v0.114.0_claude-os-worker.txt": "text",
    "codex/plain_exec_v0.93_gaia_go.txt": "text",
    "codex/real_fake_server_0.171.0.jsonl": "codex-json",
    "codex/vincent_failure.jsonl": "codex-json",
    "codex/vincent_success.jsonl": "codex-json",
    "codex/vincent_tooluse.jsonl": "codex-json",
    "gemini/official_docs_json_output_example.json": "gemini-stream-json",
    "gemini/official_docs_stream_json_example_v0.11.jsonl": "gemini-stream-json",
    "gemini/real_fake_server_0.61.0.jsonl": "gemini-stream-json",
}


def lines_of(name: str) -> list[bytes]:
    lines = (TRANSCRIPTS / name).read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the file's final newline ends the last line; it is not a line
    return lines


def extract(fmt: str, lines: list[bytes], cuts: list[int] | None = None) -> list[Record]:
    """Feed ``lines`` as one batch, or cut before each index in ``cuts``."""
    ex = make_extractor(fmt)
    bounds = [0, *sorted(set(cuts or [])), len(lines)]
    out: list[Record] = []
    for lo, hi in itertools.pairwise(bounds):
        if hi > lo:
            out.extend(ex.feed(lines[lo:hi], lo + 1, "stdout"))
    out.extend(ex.finish())
    return out


def rows(records: list[Record]) -> list[tuple[Any, ...]]:
    return [(record_type(r), *msgspec.structs.astuple(r)) for r in records]


def text_lines(name: str, first: int, last: int) -> str:
    """Lines first..last (1-based, inclusive) of a transcript, as text."""
    return b"\n".join(lines_of(name)[first - 1 : last]).decode()


def test_every_transcript_is_covered() -> None:
    on_disk = {str(p.relative_to(TRANSCRIPTS)) for p in TRANSCRIPTS.rglob("*") if p.is_file()} - {
        "SOURCES.md"
    }
    assert on_disk == set(FORMATS)


CODEX_114 = "codex/plain_exec_v0.114.0_claude-os-worker.txt"
LISTING = text_lines(CODEX_114, 30, 35)


def test_codex_plain_v0114() -> None:
    got = rows(extract("text", lines_of(CODEX_114)))
    assert got == [
        ("session", 1, "version", "0.114.0"),
        ("session", 3, "workdir", "/workspace"),
        ("session", 4, "model", "gpt-5.4"),
        ("session", 5, "provider", "openai"),
        ("session", 6, "approval", "never"),
        (
            "session",
            7,
            "sandbox",
            "workspace-write [workdir, /tmp, $TMPDIR, /home/worker/.codex/memories]",
        ),
        ("session", 8, "reasoning_effort", "none"),
        ("session", 9, "reasoning_summaries", "none"),
        ("session", 10, "session_id", "019ce2fd-9ff8-70f2-a291-5cce9d837f89"),
        (
            "prompt",
            12,
            "Confirm that you are running as the Codex CLI agent. List the current "
            "directory and say hello from the first Codex-powered Claude OS worker.",
        ),
        ("response", 15, text_lines(CODEX_114, 16, 16)),
        ("tool_call", 18, "shell", "/usr/bin/bash -lc 'pwd && ls -la'", "completed", 0),
        ("code_block", 29, "text", 6, LISTING),
        ("response", 25, text_lines(CODEX_114, 26, 38)),
        ("metric", 40, "tokens_used", 1468, "tokens"),
    ]
    # The final message printed again after "tokens used" (codex's stdout copy) adds no
    # second code block.
    assert LISTING.startswith("/workspace\ntotal 4") and LISTING.endswith("task-output.txt")


def test_codex_plain_v093() -> None:
    got = rows(extract("text", lines_of("codex/plain_exec_v0.93_gaia_go.txt")))
    assert got == [
        ("session", 1, "version", "0.93.0"),
        ("session", 3, "workdir", "/Users/jgirmay/Desktop/gitrepo/pyWork/architect/go_wrapper"),
        ("session", 4, "model", "gpt-5.2-codex"),
        ("session", 5, "provider", "openai"),
        ("session", 6, "approval", "never"),
        ("session", 7, "sandbox", "workspace-write [workdir, /tmp, $TMPDIR]"),
        ("session", 8, "reasoning_effort", "xhigh"),
        ("session", 9, "reasoning_summaries", "auto"),
        ("session", 10, "session_id", "019c4185-215a-7972-bc9f-b8da4a842551"),
        ("prompt", 12, "What is 2+2?"),
        ("response", 15, "4"),
        ("metric", 18, "tokens_used", 1377, "tokens"),
    ]


def test_codex_json_docs_sample() -> None:
    got = rows(extract("codex-json", lines_of("codex/exec_json_docs_sample.jsonl")))
    assert got == [
        ("session", 1, "session_id", "0199a213-81c0-7800-8aa1-bbab2a035a53"),
        ("state", 3, "thinking", "**Searching for README files**"),
        ("state", 4, "running_command", "bash -lc ls"),
        # started on line 4, completed on line 5: one tool call
        ("tool_call", 5, "shell", "bash -lc ls", "completed", 0),
        ("state", 6, "thinking", "**Checking repository root for README**"),
        ("response", 7, "Yep \u2014 there\u2019s a `README.md` in the repository root."),
        ("metric", 8, "input_tokens", 24763, "tokens"),
        ("metric", 8, "cached_input_tokens", 24448, "tokens"),
        ("metric", 8, "output_tokens", 122, "tokens"),
        ("state", 8, "turn_completed", ""),
    ]


def test_codex_json_success() -> None:
    got = rows(extract("codex-json", lines_of("codex/vincent_success.jsonl")))
    assert got == [
        ("session", 1, "session_id", "019fe041-fb59-77a0-bce2-6d07f49e917c"),
        ("response", 3, "hello"),
        ("metric", 4, "input_tokens", 14312, "tokens"),
        ("metric", 4, "cached_input_tokens", 2432, "tokens"),
        ("metric", 4, "output_tokens", 32, "tokens"),
        ("metric", 4, "reasoning_output_tokens", 25, "tokens"),
        ("state", 4, "turn_completed", ""),
    ]


def test_codex_json_tooluse() -> None:
    got = rows(extract("codex-json", lines_of("codex/vincent_tooluse.jsonl")))
    command = "pwsh -Command 'echo vincent-fixture'"
    assert got == [
        ("session", 1, "session_id", "019fe042-697a-79a0-8b8e-7a1a9551fde5"),
        ("state", 3, "running_command", command),
        ("tool_call", 4, "shell", command, "completed", 0),
        ("response", 5, "The output is:\n\n```text\nvincent-fixture\n```"),
        ("code_block", 5, "text", 1, "vincent-fixture"),
        ("metric", 6, "input_tokens", 28858, "tokens"),
        ("metric", 6, "cached_input_tokens", 16128, "tokens"),
        ("metric", 6, "output_tokens", 196, "tokens"),
        ("metric", 6, "reasoning_output_tokens", 87, "tokens"),
        ("state", 6, "turn_completed", ""),
    ]


def test_codex_json_failure() -> None:
    got = rows(extract("codex-json", lines_of("codex/vincent_failure.jsonl")))
    upgrade = (
        "The 'gpt-5.6-sol' model requires a newer version of Codex. "
        "Please upgrade to the latest app or CLI and try again."
    )
    assert got == [
        ("session", 1, "session_id", "019fe040-c131-7d31-a9bd-83df751b4d4a"),
        (
            "error",
            2,
            "Model metadata for `gpt-5.6-sol` not found. Defaulting to fallback "
            "metadata; this can degrade performance and cause issues.",
            "agent",
        ),
        # The API's JSON body is unwrapped; turn.failed repeating it adds no second error.
        ("error", 4, upgrade, "agent"),
        ("state", 5, "turn_failed", ""),
    ]


def test_claude_golden_basic_query() -> None:
    got = rows(
        extract("claude-stream-json", lines_of("claude/gleam_golden_basic_query_2.1.7.jsonl"))
    )
    assert got == [
        ("session", 1, "model", "claude-opus-4-5-20251101"),
        ("session", 1, "session_id", "1d1e46f9-35c7-4834-b529-846d5bb82288"),
        ("session", 1, "cwd", "/home/cyou/claude-agent-sdk-gleam"),
        ("session", 1, "version", "2.1.7"),
        ("response", 2, "4"),
        ("metric", 2, "message_input_tokens", 10, "tokens"),
        ("metric", 2, "message_output_tokens", 5, "tokens"),
        ("metric", 3, "total_cost_usd", 0.1354875, "usd"),
        ("metric", 3, "duration_ms", 2360, "ms"),
        ("metric", 3, "duration_api_ms", 2325, "ms"),
        ("metric", 3, "num_turns", 1, "turns"),
        ("metric", 3, "input_tokens", 10, "tokens"),
        ("metric", 3, "output_tokens", 25, "tokens"),
        ("metric", 3, "cache_creation_input_tokens", 21570, "tokens"),
        ("metric", 3, "cache_read_input_tokens", 0, "tokens"),  # a zero is still a metric
        ("state", 3, "turn_completed", "success"),
    ]


def test_claude_init_and_result() -> None:
    got = rows(extract("claude-stream-json", lines_of("claude/gleam_init_and_result_2.1.3.jsonl")))
    assert got == [
        ("session", 1, "model", "claude-opus-4-5-20251101"),
        ("session", 1, "session_id", "40e7b02d-c0f9-4876-9010-f514d4eb0603"),
        ("session", 1, "cwd", "/home/cyou/claude-agent-sdk-gleam"),
        ("session", 1, "version", "2.1.3"),
        ("metric", 2, "total_cost_usd", 0.24722425, "usd"),
        ("metric", 2, "duration_ms", 8722, "ms"),
        ("metric", 2, "duration_api_ms", 21034, "ms"),
        ("metric", 2, "num_turns", 2, "turns"),
        ("metric", 2, "input_tokens", 18, "tokens"),
        ("metric", 2, "output_tokens", 424, "tokens"),
        ("metric", 2, "cache_creation_input_tokens", 25067, "tokens"),
        ("metric", 2, "cache_read_input_tokens", 17254, "tokens"),
        ("state", 2, "turn_completed", "success"),
    ]


def test_claude_permission_allow() -> None:
    name = "claude/vincent_stream_permission_allow_2.1.226.jsonl"
    got = rows(extract("claude-stream-json", lines_of(name)))
    path = "C:\\work\\repo\\hello.txt"
    assert got == [
        ("session", 1, "session_id", "25f505f3-79a7-4119-8ffa-23ce6efc7560"),
        ("session", 1, "cwd", "C:\\work\\repo"),
        # the init line was trimmed by its author: the model comes from the messages
        ("session", 2, "model", "claude-haiku-4-5-20251001"),
        ("state", 2, "thinking", ANY),
        # usage of msg_011Cdpz3ik… is on lines 2 and 3: counted once
        ("metric", 2, "message_input_tokens", 10, "tokens"),
        ("metric", 2, "message_output_tokens", 8, "tokens"),
        ("tool_call", 3, "Write", path, "started", None),
        ("file_op", 3, "create", path),
        ("state", 4, "waiting_for_input", "permission to use Write"),
        (
            "state",
            6,
            "thinking",
            "Success! The file was created at the specified path with the "
            "content 'hi'. The operation completed successfully.",
        ),
        ("metric", 6, "message_input_tokens", 8, "tokens"),
        ("metric", 6, "message_output_tokens", 1, "tokens"),
        ("response", 7, "Done. Created `hello.txt` with content `hi`."),
        ("metric", 8, "total_cost_usd", 0.009825, "usd"),
        ("metric", 8, "duration_ms", 7997, "ms"),
        ("metric", 8, "duration_api_ms", 6244, "ms"),
        ("metric", 8, "num_turns", 2, "turns"),
        ("metric", 8, "input_tokens", 18, "tokens"),
        ("metric", 8, "output_tokens", 491, "tokens"),
        ("metric", 8, "cache_creation_input_tokens", 548, "tokens"),
        ("metric", 8, "cache_read_input_tokens", 66670, "tokens"),
        ("state", 8, "turn_completed", "success"),
    ]
    assert got[3][3].startswith("The user wants me to create a file named hello.txt")


def test_gemini_stream_json() -> None:
    name = "gemini/official_docs_stream_json_example_v0.11.jsonl"
    got = rows(extract("gemini-stream-json", lines_of(name)))
    assert got == [
        ("session", 1, "session_id", "abc123"),
        ("session", 1, "model", "gemini-2.0-flash-exp"),
        ("prompt", 2, "List files in current directory"),
        ("tool_call", 3, "Bash", "ls -la", "started", None),
        ("response", 5, "Here are the files..."),
        ("metric", 6, "total_tokens", 250, "tokens"),
        ("metric", 6, "input_tokens", 50, "tokens"),
        ("metric", 6, "output_tokens", 200, "tokens"),
        ("metric", 6, "duration_ms", 3000, "ms"),
        ("metric", 6, "tool_calls", 1, ""),
    ]


def test_gemini_json_output_document() -> None:
    got = rows(
        extract("gemini-stream-json", lines_of("gemini/official_docs_json_output_example.json"))
    )
    assert got[:2] == [
        ("session", 1, "model", "gemini-2.5-pro"),
        ("response", 1, "The capital of France is Paris."),
    ]
    metrics = {row[2]: (row[3], row[4]) for row in got[2:]}
    assert all(row[0] == "metric" for row in got[2:])
    assert metrics["models.gemini-2.5-pro.tokens.prompt"] == (24939, "tokens")
    assert metrics["models.gemini-2.5-pro.tokens.total"] == (25113, "tokens")
    assert metrics["models.gemini-2.5-pro.api.totalLatencyMs"] == (5053, "ms")
    assert metrics["models.gemini-2.5-flash.tokens.tool"] == (28, "tokens")
    assert metrics["tools.totalCalls"] == (1, "")
    assert metrics["tools.totalDurationMs"] == (1881, "ms")
    assert metrics["files.totalLinesAdded"] == (0, "")
    assert len(metrics) == 24  # per-tool and per-decision breakdowns are left out


def test_aider_edit_and_commit() -> None:
    name = "aider/edit_and_commit_2025-12.txt"
    got = rows(extract("aider", lines_of(name)))
    path = "backend/src/schemas/student.schema.ts"
    assert got == [
        ("code_block", 10, "typescript", 5, text_lines(name, 11, 15)),
        ("metric", 22, "tokens_sent", 15000, "tokens"),  # "15k"
        ("metric", 22, "tokens_received", 191, "tokens"),
        ("metric", 22, "cost_usd", 0.04, "usd"),
        ("metric", 22, "session_cost_usd", 0.04, "usd"),
        ("file_op", 23, "update", path),
        (
            "state",
            24,
            "commit",
            "94a380b feat: make street address optional in student registration schema",
        ),
    ]


def test_aider_header() -> None:
    got = rows(extract("aider", lines_of("aider/header_v0.86.2.txt")))
    assert got == [
        ("session", 5, "version", "0.86.2"),
        ("session", 6, "model", "zai/glm-4.7"),
        ("session", 6, "edit_format", "whole"),
        ("session", 7, "git_repo", ".git"),
        ("metric", 7, "repo_files", 3204, "files"),
        (
            "error",
            8,
            "Warning: For large repos, consider using --subtree-only and .aiderignore",
            "stdout",
        ),
        ("session", 10, "repo_map", "using 4096 tokens, auto refresh"),
        ("state", 16, "interrupted", "KeyboardInterrupt"),
    ]


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_auto_detects_each_transcript(name: str) -> None:
    lines = lines_of(name)
    ex = make_extractor("auto")
    assert ex.format == "auto"
    got = ex.feed(lines, 1, "stdout") + ex.finish()
    assert ex.format == FORMATS[name]
    assert rows(got) == rows(extract(FORMATS[name], lines))


@pytest.mark.parametrize("name", sorted(FORMATS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_batching_does_not_change_records(name: str, data: st.DataObject) -> None:
    lines = lines_of(name)
    cuts = data.draw(st.lists(st.integers(1, max(1, len(lines) - 1)), max_size=len(lines)))
    fmt = data.draw(st.sampled_from([FORMATS[name], "auto"]))
    assert rows(extract(fmt, lines, cuts)) == rows(extract(FORMATS[name], lines))


GARBAGE = [
    b"plain text that is not json at all",
    b"\xff\xfe\x00\x01binary\x80junk\x1b[31m",
    b"",
    b'{"type":"mystery.event","payload":{"a":1}}',
    b"[1, 2, 3]",
    b'"a string"',
    b"null",
    b"{}",
    b'{"type": 42}',
    b'{"type":"item.completed","item":"not an object"}',
    b'{"type":"assistant","message":[1,2]}',
    b'{"type":"user","message":{"content":[7, null]}}',
    b'{"type":"message","role":"assistant","content":42,"delta":true}',
    b'{"type":"system","subtype":"init","model":["x"]}',
    b"   {   ",
]


@pytest.mark.parametrize(
    "name", sorted(n for n, f in FORMATS.items() if f.endswith("json") and n.endswith("l"))
)
def test_garbage_mixed_in_changes_nothing(name: str) -> None:
    clean = lines_of(name)
    mixed: list[bytes] = []
    original: dict[int, int] = {}  # line number in mixed -> line number in clean
    for i, line in enumerate(clean, start=1):
        for junk in GARBAGE:
            mixed.append(junk)
        mixed.append(line[: len(line) // 2])  # this line, truncated
        mixed.append(line)
        original[len(mixed)] = i
    got = [
        msgspec.structs.replace(r, line_num=original[r.line_num])
        for r in extract(FORMATS[name], mixed)
    ]
    assert rows(got) == rows(extract(FORMATS[name], clean))


def test_records_encode_to_json_with_their_type() -> None:
    records = extract("codex-json", lines_of("codex/vincent_tooluse.jsonl"))
    encoded = [msgspec.json.decode(msgspec.json.encode(r)) for r in records]
    assert encoded[2] == {
        "type": "tool_call",
        "line_num": 4,
        "tool": "shell",
        "input": "pwsh -Command 'echo vincent-fixture'",
        "status": "completed",
        "exit_code": 0,
    }
    assert [e["type"] for e in encoded] == [record_type(r) for r in records]


def test_codex_plain_with_stdout_and_stderr_apart() -> None:
    """As the daemon sees it: everything on stderr, the final message again on stdout."""
    lines = lines_of(CODEX_114)
    ex = make_extractor("text")
    got = ex.feed(lines[:40], 1, "stderr") + ex.feed(lines[40:], 41, "stdout") + ex.finish()
    assert rows(got) == rows(extract("text", lines))
    assert [record_type(r) for r in got].count("code_block") == 1


# The real CLIs' own output (tests/integration/test_real_clis.py, against a fake model
# server): a Write/write_file/apply_patch call that makes hello.py and a shell call that runs
# it, then a final answer.
CLAUDE_REAL = "claude/real_fake_server_2.1.197.jsonl"
CODEX_REAL = "codex/real_fake_server_0.171.0.jsonl"
GEMINI_REAL = "gemini/real_fake_server_0.61.0.jsonl"
AIDER_REAL = "aider/real_fake_server_0.86.2.txt"
PROMPT = "Write hello.py that prints hello, run it, and tell me what it printed."
FINAL = "Done: hello.py prints hello."


def test_claude_real_2_1_197() -> None:
    cwd = "/tmp/pytest-of-root/pytest-380/test_claude0/project"
    got = rows(extract("claude-stream-json", lines_of(CLAUDE_REAL)))
    assert got == [
        ("session", 1, "model", "claude-opus-4-8[1m]"),
        ("session", 1, "session_id", "4c805487-8c15-4428-8cc4-66f9b9e1faed"),
        ("session", 1, "cwd", cwd),
        ("session", 1, "version", "2.1.197"),
        ("tool_call", 2, "Write", f"{cwd}/hello.py", "started", None),
        ("file_op", 2, "create", f"{cwd}/hello.py"),
        ("metric", 2, "message_input_tokens", 1200, "tokens"),
        ("metric", 2, "message_output_tokens", 1, "tokens"),
        ("tool_call", 3, "Bash", "python3 hello.py > out.txt && cat out.txt", "started", None),
        ("response", 6, FINAL),
        ("metric", 6, "message_input_tokens", 2100, "tokens"),
        ("metric", 6, "message_output_tokens", 1, "tokens"),
        ("metric", 7, "total_cost_usd", 0.01825, "usd"),
        ("metric", 7, "duration_ms", 1030, "ms"),
        ("metric", 7, "duration_api_ms", 136, "ms"),
        ("metric", 7, "num_turns", 3, "turns"),
        ("metric", 7, "input_tokens", 3300, "tokens"),
        ("metric", 7, "output_tokens", 70, "tokens"),
        ("metric", 7, "cache_creation_input_tokens", 0, "tokens"),
        ("metric", 7, "cache_read_input_tokens", 0, "tokens"),
        ("state", 7, "turn_completed", "success"),
    ]


def test_codex_real_0_171_0() -> None:
    cwd = "/tmp/pytest-of-root/pytest-380/test_codex0/project"
    command = "/bin/bash -lc 'python3 hello.py > out.txt && cat out.txt'"
    got = rows(extract("codex-json", lines_of(CODEX_REAL)))
    assert got == [
        ("session", 1, "session_id", "01a24ba9-aef5-7131-a8a0-c76e0568f7ec"),
        ("file_op", 4, "create", f"{cwd}/hello.py"),  # apply_patch: a file_change item
        ("state", 5, "running_command", command),
        ("tool_call", 6, "shell", command, "completed", 0),
        ("response", 7, FINAL),
        ("metric", 8, "input_tokens", 3300, "tokens"),
        ("metric", 8, "cached_input_tokens", 0, "tokens"),
        ("metric", 8, "output_tokens", 70, "tokens"),
        ("metric", 8, "reasoning_output_tokens", 0, "tokens"),
        ("state", 8, "turn_completed", ""),
    ]


def test_gemini_real_0_61_0() -> None:
    cwd = "/tmp/pytest-of-root/pytest-380/test_gemini0/project"
    got = rows(extract("gemini-stream-json", lines_of(GEMINI_REAL)))
    assert got == [
        ("session", 1, "session_id", "dd270867-8f7b-4c58-bcd3-c640111c718c"),
        ("session", 1, "model", "gemini-2.5-flash"),
        ("prompt", 2, PROMPT),
        ("tool_call", 3, "write_file", f"{cwd}/hello.py", "started", None),
        ("file_op", 3, "create", f"{cwd}/hello.py"),
        ("tool_call", 4, "run_shell_command", "python3 hello.py > out.txt", "started", None),
        ("response", 7, FINAL),
        ("metric", 8, "total_tokens", 3370, "tokens"),
        ("metric", 8, "input_tokens", 3300, "tokens"),
        ("metric", 8, "output_tokens", 70, "tokens"),
        ("metric", 8, "cached", 0, "tokens"),
        ("metric", 8, "input", 3300, ""),
        ("metric", 8, "duration_ms", 1338, "ms"),
        ("metric", 8, "tool_calls", 2, ""),
    ]


def test_aider_real_0_86_2() -> None:
    got = rows(extract("aider", lines_of(AIDER_REAL)))
    assert got == [
        ("session", 7, "version", "0.86.2"),
        ("session", 8, "model", "openai/fake-coder"),
        ("session", 8, "edit_format", "whole"),
        ("session", 9, "git_repo", ".git"),
        ("metric", 9, "repo_files", 0, "files"),
        ("session", 10, "repo_map", "using 4096 tokens, auto refresh"),
        ("code_block", 18, "python", 1, "print('hello')"),
        ("metric", 22, "tokens_sent", 607, "tokens"),
        ("metric", 22, "tokens_received", 18, "tokens"),
        ("metric", 22, "cost_usd", 0.0014, "usd"),
        ("metric", 22, "session_cost_usd", 0.0014, "usd"),
        ("file_op", 25, "update", "hello.py"),
        ("state", 26, "commit", "75f4855 I will create hello.py."),
        ("code_block", 29, "python", 1, "print('hello')"),
    ]


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_no_transcript_has_unknown_event_types(name: str) -> None:
    """Every event type the recorded CLIs print is one their format knows."""
    ex = make_extractor(FORMATS[name])
    ex.feed(lines_of(name), 1, "stdout")
    ex.finish()
    assert ex.take_unknown() == {}
