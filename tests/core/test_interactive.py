"""core.interactive and core.screen: when an agent waits, how a message is written, and
a PTY agent's screen. Pure."""

from __future__ import annotations

import itertools
import json

import pytest

from tests.helpers import TRANSCRIPTS
from trio_wrapper.core.errors import Refusal
from trio_wrapper.core.interactive import (
    DEFAULT_PTY_SIZE,
    PermissionPrompt,
    Verdict,
    check_pty_size,
    compile_pattern,
    last_verdict,
    permission_answer,
    permission_prompt,
    prompt_detail,
    screen_waits,
    stream_json_input,
    user_message,
)
from trio_wrapper.core.screen import TerminalScreen
from trio_wrapper.core.status import InvalidTransition, Status, check_transition
from trio_wrapper.extract.codex_json import CodexJsonExtractor
from trio_wrapper.extract.found import Found
from trio_wrapper.extract.records import Error, State


def test_pty_size_is_checked() -> None:
    assert check_pty_size(None, pty=True) == DEFAULT_PTY_SIZE
    assert check_pty_size(None, pty=False) is None
    assert check_pty_size([40, 120], pty=True) == (40, 120)
    for bad in ([1, 80], [24, 5], [501, 80], [24, 1001], [24], [24, 80, 1]):
        with pytest.raises(Refusal, match="pty_size"):
            check_pty_size(bad, pty=True)
    with pytest.raises(Refusal, match="'pty'"):
        check_pty_size([24, 80], pty=False)


def test_waiting_patterns_are_checked_regexes() -> None:
    with pytest.raises(Refusal, match="waiting_pattern: not a valid regular expression"):
        compile_pattern("(")
    with pytest.raises(Refusal, match="longer than"):
        compile_pattern("a" * 1001)


def test_a_screen_waits_when_its_last_lines_show_the_prompt() -> None:
    prompt = compile_pattern("^>$")
    assert screen_waits(["hello", "> ", "", "   "], prompt)
    assert not screen_waits(["> hello", "thinking…"], prompt)
    assert not screen_waits(["", ""], prompt)
    assert not screen_waits(["> "], None)
    # Below the prompt, a footer (as TUIs draw): found within the last lines.
    boxed = compile_pattern(r"^[\s│]*>\s*│?$")
    assert screen_waits(["╭────╮", "│ >  │", "╰────╯", "? for shortcuts"], boxed)
    # A prompt that scrolled up is not the screen's end.
    assert not screen_waits([">", "a", "b", "c"], prompt)


def test_stream_json_input_is_read_from_the_command() -> None:
    assert stream_json_input(["claude", "-p", "--input-format", "stream-json"])
    assert stream_json_input(["claude", "--input-format=stream-json"])
    assert not stream_json_input(["claude", "-p", "--input-format", "text"])
    assert not stream_json_input(["claude", "--input-format"])


def verdict_in_order(states: list[tuple[str, str] | None], *, turns_wait: bool) -> Verdict | None:
    """``last_verdict`` given the batch in order (it reads it from its end)."""
    return last_verdict(reversed(states), turns_wait=turns_wait)


def test_the_last_record_decides() -> None:
    asked = ("waiting_for_input", "permission to use Bash")
    assert verdict_in_order([None, asked], turns_wait=False) == Verdict(
        True, "permission to use Bash"
    )
    assert verdict_in_order([asked, None], turns_wait=False) == Verdict(False, "")
    assert verdict_in_order([("thinking", "x")], turns_wait=False) == Verdict(False, "")
    assert verdict_in_order([], turns_wait=False) is None
    done = ("turn_completed", "success")
    assert verdict_in_order([done], turns_wait=False) is None
    assert verdict_in_order([asked, done], turns_wait=False) == Verdict(
        True, "permission to use Bash"
    )
    assert verdict_in_order([None, done], turns_wait=True) == Verdict(
        True, "turn completed; waiting for the next message"
    )
    approval = ("waiting_for_approval", "approval to run ls")
    assert verdict_in_order([approval], turns_wait=False) == Verdict(True, "approval to run ls")


def test_reading_from_the_end_says_what_reading_every_record_in_order_says() -> None:
    # Every batch of up to 5 records over all kinds of item: the verdict is what the
    # records say read in order, each overriding the one before unless it says nothing.
    items: list[tuple[str, str] | None] = [
        None,
        ("waiting_for_input", "a"),
        ("waiting_for_approval", ""),
        ("turn_completed", "success"),
        ("thinking", "x"),
    ]
    for turns_wait in (False, True):
        for size in range(6):
            for batch in itertools.product(items, repeat=size):
                expected = None
                for item in batch:
                    said = last_verdict([item], turns_wait=turns_wait)
                    expected = said if said is not None else expected
                assert verdict_in_order(list(batch), turns_wait=turns_wait) == expected


def test_records_are_read_back_from_the_newest() -> None:
    found = Found.of([State(1, "a", ""), Error(2, "b", "tool"), State(3, "c", "")])
    assert list(found.reversed_lines()) == found.lines()[::-1]
    assert list(Found().reversed_lines()) == []


def test_a_real_permission_prompt_is_read_and_answered() -> None:
    path = TRANSCRIPTS / "claude" / "vincent_stream_permission_allow_2.1.226.jsonl"
    prompts = [p for line in path.read_bytes().splitlines() if (p := permission_prompt(line))]
    assert len(prompts) == 1
    prompt = prompts[0]
    assert prompt.request_id == "0a796fa8-74c6-4c82-82a7-fb161e77a51b"
    assert prompt.tool == "Write" and prompt.input["content"] == "hi"
    line, allowed = permission_answer(prompt, " Yes. ")
    assert allowed and line.endswith(b"\n")
    assert json.loads(line) == {
        "type": "control_response",
        "response": {
            "subtype": "success",
            "request_id": prompt.request_id,
            "response": {"behavior": "allow", "updatedInput": prompt.input},
        },
    }
    line, allowed = permission_answer(prompt, "no, use Edit")
    assert not allowed
    answer = json.loads(line)["response"]["response"]
    assert answer == {"behavior": "deny", "message": "no, use Edit"}


def test_lines_that_are_not_permission_prompts() -> None:
    assert permission_prompt(b'{"type":"assistant"}') is None
    assert permission_prompt(b'{"type":"control_request", broken') is None
    other = b'{"type":"control_request","request_id":"r","request":{"subtype":"interrupt"}}'
    assert permission_prompt(other) is None
    no_id = b'{"type":"control_request","request":{"subtype":"can_use_tool"}}'
    assert permission_prompt(no_id) is None


def test_a_user_message_is_one_stream_json_line() -> None:
    line = user_message('say "hi"\nthen stop')
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    message = json.loads(line)
    assert message["type"] == "user"
    assert message["message"] == {
        "role": "user",
        "content": [{"type": "text", "text": 'say "hi"\nthen stop'}],
    }


def test_waiting_is_running_with_one_more_fact() -> None:
    check_transition(Status.RUNNING, Status.WAITING)
    for after in (Status.RUNNING, Status.STOPPING, Status.COMPLETED, Status.FAILED):
        check_transition(Status.WAITING, after)
    with pytest.raises(InvalidTransition):
        check_transition(Status.STARTING, Status.WAITING)
    with pytest.raises(InvalidTransition):
        check_transition(Status.STOPPING, Status.WAITING)
    assert Status.WAITING.is_active and Status.RUNNING.is_active
    assert not Status.STOPPING.is_active and not Status.WAITING.is_terminal


def test_codex_approval_requests_are_waiting_states() -> None:
    extractor = CodexJsonExtractor()
    lines = [
        json.dumps({"id": "1", "msg": {"type": "exec_approval_request", "command": ["ls", "-la"]}}),
        json.dumps({"id": "2", "msg": {"type": "apply_patch_approval_request", "changes": {}}}),
    ]
    records = extractor.feed([line.encode() for line in lines], 1, "stdout")
    states = [(r.state, r.detail) for r in records if type(r).__name__ == "State"]
    assert states == [
        ("waiting_for_approval", "approval to run ls -la"),
        ("waiting_for_approval", "approval to apply a patch"),
    ]


# ---- the screen -------------------------------------------------------------------------


def test_the_screen_renders_what_the_terminal_wrote() -> None:
    screen = TerminalScreen(4, 20)
    screen.push(b"hello\r\n\x1b[1mbold\x1b[0m\r\n> ")
    assert screen.lines()[0].strip() == ""  # pushed, not yet fed
    screen.feed_all()
    shown = screen.text()
    assert shown.lines == ["hello", "bold", ">", ""]
    assert (shown.rows, shown.cols, shown.cursor_row, shown.cursor_col) == (4, 20, 2, 2)
    screen.push(b"\x1b[2J\x1b[H")  # cleared, cursor home
    screen.feed_all()
    assert screen.text().lines == ["", "", "", ""]


def test_pending_output_is_bounded_and_fed_in_slices() -> None:
    screen = TerminalScreen(3, 10, pending_limit=100)
    screen.push(b"x" * 250)
    assert screen.pending == 100 and screen.dropped_bytes == 150
    assert screen.feed(budget=40)  # more waits
    assert screen.pending == 60 and screen.fed_bytes == 40
    screen.feed_all()
    assert screen.pending == 0 and screen.fed_bytes == 100


def test_prompt_dataclass_is_plain_data() -> None:
    prompt = PermissionPrompt("r", "Bash", {"command": "ls"})
    assert permission_answer(prompt, "ok")[1]


def test_claudes_question_is_answered_with_the_text() -> None:
    asked = {
        "questions": [
            {"question": "Which colour?", "header": "Colour", "options": [{"label": "red"}]},
            {"question": "How big?", "header": "Size", "options": [{"label": "small"}]},
        ]
    }
    prompt = PermissionPrompt("q1", "AskUserQuestion", asked)
    assert prompt_detail(prompt) == "question: Which colour? / How big?"
    line, allowed = permission_answer(prompt, " blue ")
    assert allowed
    answer = json.loads(line)["response"]["response"]
    assert answer["behavior"] == "allow"
    assert answer["updatedInput"]["answers"] == {"Which colour?": "blue", "How big?": "blue"}
    assert answer["updatedInput"]["questions"] == asked["questions"]
    # Without questions it is a tool like any other.
    bare = PermissionPrompt("q2", "AskUserQuestion", {})
    assert prompt_detail(bare) == "permission to use AskUserQuestion"
    assert not permission_answer(bare, "blue")[1]
    assert prompt_detail(PermissionPrompt("r", "Bash", {})) == "permission to use Bash"
