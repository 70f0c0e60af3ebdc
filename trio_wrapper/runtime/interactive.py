"""An agent one talks to while it runs: its screen, when it waits, how a message reaches
it. The decisions are ``core.interactive``'s; here are the timer and the writes.

Every live agent has one ``Interaction``:

- a PTY agent's terminal output is copied (``on_output``, from the reader: a copy into a
  bounded buffer, nothing more) for the emulator (``core.screen``); the watcher task feeds
  it, and once the terminal has been quiet for ``interactive.quiet_seconds`` reads the
  screen's last lines for the agent's prompt pattern: found, the agent *waits*;
- the records extraction yields (``on_found``) say it for CLIs with structured output:
  ``state`` records ``waiting_for_input`` (claude's permission prompts, codex's approval
  requests) and, for claude reading stream-json from stdin, ``turn_completed``;
- a stream-json agent's output lines are looked at (``on_lines``, one substring test a
  batch) for the permission prompt a message will answer;
- ``deliver`` writes one user turn; the agent is ``running`` again once it is written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Final, Literal

import msgspec
import trio

from trio_wrapper.core.errors import Refusal
from trio_wrapper.core.interactive import (
    CONTROL_MARK,
    Delivery,
    PermissionPrompt,
    Verdict,
    compile_pattern,
    enter_key,
    last_line_of,
    last_verdict,
    not_interactive,
    permission_answer,
    permission_prompt,
    prompt_detail,
    screen_waits,
    stream_json_input,
    user_message,
)
from trio_wrapper.core.lines import LineBatch, Lines
from trio_wrapper.core.screen import FEED_SLICE, ScreenText, TerminalScreen
from trio_wrapper.core.spec import AgentSpec
from trio_wrapper.extract.found import Found
from trio_wrapper.extract.records import RECORD_TYPES

_STATE_KIND: Final = RECORD_TYPES.index("state")


class _StateRecord(msgspec.Struct):
    state: str = ""
    detail: str = ""


_decode_state = msgspec.json.Decoder(_StateRecord)

SetWaiting = Callable[[bool, str], None]
Write = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Delivered:
    """How a message went: typed or written as stream-json, its bytes, and the
    permission prompt it answered (allowed or not)."""

    delivery: Delivery
    written: int
    answered: PermissionPrompt | None = None
    allowed: bool | None = None


class Interaction:
    """One agent's interactive side. ``set_waiting(waiting, detail)`` is the agent's:
    it changes the status where that is a change (``running`` <-> ``waiting``)."""

    def __init__(
        self,
        spec: AgentSpec,
        set_waiting: SetWaiting,
        *,
        quiet_seconds: float = 1.0,
        enter_delay_seconds: float = 0.1,
    ) -> None:
        self.name = spec.name
        self.delivery: Delivery | None = None
        if spec.stdin and spec.pty:
            self.delivery = "pty"
        elif spec.stdin and stream_json_input(spec.command):
            self.delivery = "stream-json"
        self.screen: TerminalScreen | None = None
        if spec.pty:
            rows, cols = spec.pty_size or (24, 80)
            self.screen = TerminalScreen(rows, cols)
        self.pattern = compile_pattern(spec.waiting_pattern) if spec.waiting_pattern else None
        self.enter = enter_key(spec.enter)
        self.turns_wait = self.delivery == "stream-json"
        # Lines are looked at only where a permission prompt can be answered.
        self.scans_lines = self.delivery == "stream-json"
        self.prompt: PermissionPrompt | None = None
        self._set_waiting = set_waiting
        self._quiet = quiet_seconds
        self._enter_delay = enter_delay_seconds
        # Who said "waiting" last: the screen or the records; each undoes only its own.
        self._source: Literal["screen", "records"] | None = None
        self._news = trio.Event()
        self._last_output = 0.0
        self._lock = trio.Lock()

    @property
    def watches(self) -> bool:
        """Whether the watcher task has work: a terminal to feed and read."""
        return self.screen is not None

    # ---- fed by the agent ------------------------------------------------------------

    def on_output(self, chunk: bytes) -> None:
        """A chunk the terminal wrote (the reader's, after the log file has it)."""
        screen = self.screen
        if screen is not None:
            screen.push(chunk)
            self._last_output = trio.current_time()
            self._news.set()

    def on_lines(self, batch: LineBatch) -> None:
        """A stream-json agent's lines: the permission prompt a message would answer."""
        lines = batch.lines
        text = lines.text if isinstance(lines, Lines) else b"\n".join(lines)
        if CONTROL_MARK not in text:
            return
        for line in lines:
            if CONTROL_MARK in line:
                found = permission_prompt(line)
                if found is not None:
                    self.prompt = found

    def on_found(self, found: Found) -> None:
        """Extraction records, in line order: a waiting state says ``waiting``; while the
        records said so, any later record says the agent is at work again."""
        if self._source == "records" or _STATE_KIND in found.kinds:
            verdict = last_verdict(self._states(found), turns_wait=self.turns_wait)
            if verdict is not None:
                prompt = self.prompt
                if verdict.waiting and prompt is not None and prompt.tool in verdict.detail:
                    # The prompt's own words (claude's question), not only the tool's name.
                    verdict = Verdict(True, prompt_detail(prompt))
                self._apply(verdict, "records")

    def _states(self, found: Found) -> Iterator[tuple[str, str] | None]:
        """Newest first, each decoded only if read (``last_verdict`` stops early)."""
        for kind, line in zip(reversed(found.kinds), found.reversed_lines(), strict=True):
            if kind != _STATE_KIND:
                yield None
                continue
            try:
                record = _decode_state.decode(line)
            except msgspec.DecodeError:
                continue
            yield (record.state, record.detail)

    def _apply(self, verdict: Verdict, source: Literal["screen", "records"]) -> None:
        if verdict.waiting:
            if self._source is not None:
                return  # said already (the agent waits until something says otherwise)
            self._source = source
            self._set_waiting(True, verdict.detail)
        elif self._source == source:
            self._source = None
            self._set_waiting(False, "at work again")

    def started(self) -> None:
        """The agent runs: claude reading stream-json from stdin says nothing before its
        first message, which it waits for."""
        if self.turns_wait:
            self._apply(Verdict(True, "waiting for the first message"), "records")

    def stopped_waiting(self) -> None:
        """The agent is no longer running (it ended or is being stopped)."""
        self._source = None

    # ---- the watcher task --------------------------------------------------------------

    async def run(self, scope: trio.CancelScope) -> None:
        """Feed the emulator behind the reader; read a quiet terminal for its prompt."""
        screen = self.screen
        assert screen is not None
        with scope:
            while True:
                await self._news.wait()
                self._news = trio.Event()
                await self._feed(screen)
                if self._source == "screen" and not screen_waits(screen.lines(), self.pattern):
                    self._apply(Verdict(False, ""), "screen")
                deadline = self._last_output + self._quiet
                while trio.current_time() < deadline:
                    await trio.sleep_until(deadline)
                    deadline = self._last_output + self._quiet
                await self._feed(screen)
                lines = screen.lines()
                if screen_waits(lines, self.pattern):
                    self._apply(Verdict(True, f"prompt: {last_line_of(lines)}"), "screen")

    @staticmethod
    async def _feed(screen: TerminalScreen) -> None:
        """What is pending now (not what a flood adds meanwhile), a slice a turn."""
        budget = screen.pending
        while budget > 0:
            piece = min(budget, FEED_SLICE)
            screen.feed(piece)
            budget -= piece
            await trio.lowlevel.checkpoint()

    async def screen_text(self) -> ScreenText | None:
        """The screen now, the output pending so far fed first (None: not a PTY agent)."""
        if self.screen is None:
            return None
        await self._feed(self.screen)
        return self.screen.text()

    # ---- messages ------------------------------------------------------------------------

    async def deliver(self, text: str, write: Write) -> Delivered:
        """Write ``text`` as one user turn with ``write`` (the agent's stdin writer, which
        raises the agent's ``StdinClosed`` / ``StdinBlocked``)."""
        delivery = self.delivery
        if delivery is None:
            raise not_interactive(self.name)
        async with self._lock:  # one message at a time: text and Enter stay together
            answered: PermissionPrompt | None = None
            allowed: bool | None = None
            if delivery == "pty":
                data = text.encode()
                await write(data)
                if self._enter_delay:
                    await trio.sleep(self._enter_delay)
                await write(self.enter)
                written = len(data) + len(self.enter)
            else:
                prompt = self.prompt
                if prompt is not None:
                    line, allowed = permission_answer(prompt, text)
                    answered = prompt
                else:
                    line = user_message(text)
                await write(line)
                if prompt is not None:
                    self.prompt = None
                written = len(line)
            self._source = None
            self._set_waiting(False, "message received")
            return Delivered(delivery, written, answered, allowed)


def refuse_screen(name: str) -> Refusal:
    return Refusal("not_a_terminal", f'agent {name!r} has no terminal (start it with "pty": true)')
