"""Agents one talks to while they run: when one waits for its user, and how a message
reaches it. Pure: decisions over plain data; the timers and writes are in
``runtime.interactive``.

Two kinds of agent can be talked to:

- a PTY agent started with ``stdin`` (``"pty": true, "stdin": true``): a message is typed
  into its terminal, followed by the Enter its CLI expects; it *waits* when its terminal
  has been quiet for a moment and the screen's last non-blank line matches its prompt
  pattern (the profile's ``waiting_pattern``, or the agent's own);
- claude started with ``--input-format stream-json`` and ``stdin``: a message is one
  stream-json ``user`` line, or, while a permission prompt (``control_request``) is
  pending, the answer to it; it *waits* on the structured records its extractor yields
  (``state`` records ``waiting_for_input``, and ``turn_completed`` once its turn is done).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

from trio_wrapper.core.errors import Refusal, invalid_request

# The state records (extract.records.State) that mean "wants its user".
WAITING_STATES: Final = frozenset({"waiting_for_input", "waiting_for_approval"})
# The state that ends a turn: a stream-json input agent then waits for the next message.
TURN_DONE: Final = "turn_completed"

# A terminal's size: at least what a CLI can draw a prompt in, at most what a screen
# endpoint should carry (the emulator keeps rows x cols characters per agent).
MIN_ROWS, MAX_ROWS = 2, 500
MIN_COLS, MAX_COLS = 10, 1000
DEFAULT_PTY_SIZE: Final = (24, 80)
# A waiting pattern is a user's regex: bounded, and checked at start.
MAX_PATTERN_CHARS = 1000
# A prompt is looked for in the screen's last non-blank lines (a TUI draws a footer under
# its input line).
TAIL_LINES = 3

# The answers to a permission prompt that allow the tool; any other text denies it and
# is passed on to the model as the reason.
_ALLOW = frozenset({"y", "yes", "allow", "ok", "approve", "approved"})

Delivery = Literal["pty", "stream-json"]


def check_pty_size(size: Sequence[int] | None, *, pty: bool) -> tuple[int, int] | None:
    """``[rows, cols]`` of a PTY agent's terminal (default 24x80); refused out of range
    or without ``pty``."""
    if size is None:
        return DEFAULT_PTY_SIZE if pty else None
    if not pty:
        raise invalid_request("'pty_size' goes with 'pty': true")
    if len(size) != 2:
        raise invalid_request("pty_size must be [rows, cols]")
    rows, cols = size
    if not MIN_ROWS <= rows <= MAX_ROWS or not MIN_COLS <= cols <= MAX_COLS:
        raise invalid_request(
            f"pty_size: rows must be {MIN_ROWS}..{MAX_ROWS} and cols {MIN_COLS}..{MAX_COLS}"
        )
    return (rows, cols)


def compile_pattern(pattern: str, where: str = "waiting_pattern") -> re.Pattern[str]:
    """A waiting pattern as a regex (searched in the screen's last non-blank line)."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise invalid_request(f"{where}: longer than {MAX_PATTERN_CHARS} characters")
    try:
        return re.compile(pattern, re.MULTILINE)
    except re.error as exc:
        raise invalid_request(f"{where}: not a valid regular expression: {exc}") from None


def screen_tail(screen: Iterable[str], count: int = TAIL_LINES) -> str:
    """The screen's last ``count`` non-blank lines, right-trimmed, joined by newlines."""
    lines = [line.rstrip() for line in screen]
    kept = [line for line in lines if line][-count:]
    return "\n".join(kept)


def last_line_of(screen: Iterable[str]) -> str:
    """The screen's last non-blank line, right-trimmed."""
    return screen_tail(screen, 1)


def screen_waits(screen: Iterable[str], pattern: re.Pattern[str] | None) -> bool:
    """Whether a quiet terminal showing ``screen`` waits for its user: ``pattern``
    (compiled with ``re.MULTILINE``) is found in its last few non-blank lines."""
    if pattern is None:
        return False
    tail = screen_tail(screen)
    return bool(tail) and pattern.search(tail) is not None


def stream_json_input(command: Sequence[str]) -> bool:
    """Whether ``command`` starts claude reading stream-json user messages from stdin."""
    for i, arg in enumerate(command):
        if arg == "--input-format=stream-json":
            return True
        if arg == "--input-format" and i + 1 < len(command) and command[i + 1] == "stream-json":
            return True
    return False


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a batch of records says: ``waiting`` (and why), or ``running`` again."""

    waiting: bool
    detail: str


def last_verdict(
    newest_first: Iterable[tuple[str, str] | None], *, turns_wait: bool
) -> Verdict | None:
    """The last word of a batch of records, read from its end: each a ``state`` record's
    (state, detail), or None for any other record (the agent is at work again). The
    newest record that says something decides, so the reading stops there: a batch of a
    thousand records usually costs one. ``turns_wait``: a finished turn means the agent
    waits for its next message (stream-json input); else it says nothing."""
    for item in newest_first:
        if item is None:
            return Verdict(False, "")
        state, detail = item
        if state in WAITING_STATES:
            return Verdict(True, detail or state)
        if state == TURN_DONE:
            if turns_wait:
                return Verdict(True, "turn completed; waiting for the next message")
            continue
        return Verdict(False, "")
    return None


# ---- claude stream-json input ---------------------------------------------------------


class _Request(msgspec.Struct):
    subtype: str = ""
    tool_name: str = ""
    input: dict[str, Any] = msgspec.field(default_factory=dict)


class _ControlLine(msgspec.Struct):
    type: str = ""
    request_id: str = ""
    request: _Request | None = None


@dataclass(frozen=True, slots=True)
class PermissionPrompt:
    """A pending ``can_use_tool`` request of claude's stream-json control protocol."""

    request_id: str
    tool: str
    input: dict[str, Any]


_decode_control = msgspec.json.Decoder(_ControlLine)
_encode = msgspec.json.Encoder()
CONTROL_MARK: Final = b'"control_request"'


def permission_prompt(line: bytes) -> PermissionPrompt | None:
    """The permission prompt a stream-json output line carries, if it is one."""
    if CONTROL_MARK not in line:
        return None
    try:
        decoded = _decode_control.decode(line)
    except msgspec.DecodeError:
        return None
    request = decoded.request
    if decoded.type != "control_request" or request is None or not decoded.request_id:
        return None
    if request.subtype != "can_use_tool":
        return None
    return PermissionPrompt(decoded.request_id, request.tool_name, request.input)


def user_message(text: str) -> bytes:
    """One stream-json ``user`` line for claude's stdin."""
    line = {
        "type": "user",
        "message": {"role": "user", "content": [{"type": "text", "text": text}]},
        "parent_tool_use_id": None,
        "session_id": "default",
    }
    return _encode.encode(line) + b"\n"


ASK_TOOL: Final = "AskUserQuestion"


def _questions(prompt: PermissionPrompt) -> list[str]:
    questions = prompt.input.get("questions")
    if not isinstance(questions, list):
        return []
    return [
        q["question"]
        for q in questions
        if isinstance(q, dict) and isinstance(q.get("question"), str)
    ]


def prompt_detail(prompt: PermissionPrompt) -> str:
    """What a permission prompt waits for, in the words of ``waiting_detail``: claude's
    question to its user (``AskUserQuestion``), or the tool it asks to use."""
    if prompt.tool == ASK_TOOL:
        questions = _questions(prompt)
        if questions:
            return f"question: {' / '.join(questions)}"
    return f"permission to use {prompt.tool}"


def permission_answer(prompt: PermissionPrompt, text: str) -> tuple[bytes, bool]:
    """The ``control_response`` line answering ``prompt`` with the user's ``text``: "yes"
    (or y, allow, ok, approve) allows the tool with its input; anything else denies it,
    with the text as the reason. Claude's question to its user (``AskUserQuestion``) is
    answered with the text itself, for each of its questions. Returns the line and whether
    it allows."""
    answer: dict[str, Any]
    questions = _questions(prompt) if prompt.tool == ASK_TOOL else []
    if questions:
        allow = True
        answers = {question: text.strip() for question in questions}
        answer = {"behavior": "allow", "updatedInput": {**prompt.input, "answers": answers}}
    else:
        allow = text.strip().lower().rstrip(".!") in _ALLOW
        answer = (
            {"behavior": "allow", "updatedInput": prompt.input}
            if allow
            else {"behavior": "deny", "message": text.strip() or "denied by the user"}
        )
    line = {
        "type": "control_response",
        "response": {"subtype": "success", "request_id": prompt.request_id, "response": answer},
    }
    return _encode.encode(line) + b"\n", allow


def enter_key(enter: str) -> bytes:
    """A profile's Enter as bytes (``"\\r"`` for most terminal CLIs)."""
    return enter.encode()


def not_interactive(name: str) -> Refusal:
    return Refusal(
        "not_interactive",
        f'agent {name!r} takes no messages: start it with "pty": true and "stdin": true, '
        'or as claude with --input-format stream-json and "stdin": true',
    )
