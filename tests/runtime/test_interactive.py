"""runtime.interactive: the quiet-terminal watcher (on trio's virtual clock), the verdicts
of extraction records, and how messages are written."""

from __future__ import annotations

import json

import pytest
import trio
import trio.lowlevel
import trio.testing

from trio_wrapper.core.errors import Refusal
from trio_wrapper.core.lines import LineBatch
from trio_wrapper.core.screen import TerminalScreen
from trio_wrapper.core.spec import AgentSpec
from trio_wrapper.extract.found import Found
from trio_wrapper.extract.records import State, ToolCall
from trio_wrapper.runtime.interactive import Interaction


class Calls:
    def __init__(self) -> None:
        self.seen: list[tuple[bool, str]] = []

    def __call__(self, waiting: bool, detail: str) -> None:
        self.seen.append((waiting, detail))


def pty_spec(**extra: object) -> AgentSpec:
    fields: dict[str, object] = {
        "name": "t",
        "command": ["cli"],
        "pty": True,
        "stdin": True,
        "pty_size": (5, 30),
        "waiting_pattern": "^>$",
    }
    fields.update(extra)
    return AgentSpec(**fields)  # type: ignore[arg-type]


async def test_a_quiet_terminal_showing_its_prompt_waits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = Calls()
    interaction = Interaction(pty_spec(), calls, quiet_seconds=1.0)
    scope = trio.CancelScope()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(interaction.run, scope)
        interaction.on_output(b"working")
        await trio.sleep(5)
        assert calls.seen == []  # quiet, but no prompt
        interaction.on_output(b"\r\n> ")
        await trio.sleep(0.5)
        assert calls.seen == []  # the prompt, but not quiet long enough yet
        await trio.sleep(1)
        assert calls.seen == [(True, "prompt: >")]
        interaction.on_output(b"hello\r\nthinking")  # the prompt line is gone: at work
        await trio.sleep(0.1)  # (virtual time) less than the quiet time
        assert calls.seen[-1] == (False, "at work again")
        interaction.on_output(b"\r\n> ")
        await trio.sleep(2)
        assert calls.seen[-1] == (True, "prompt: >")
        assert len(calls.seen) == 3
        scope.cancel()
    shown = await interaction.screen_text()
    assert shown is not None and shown.lines[:4] == ["working", "> hello", "thinking", ">"]


async def test_pty_messages_are_typed_then_entered(autojump_clock: trio.testing.MockClock) -> None:
    calls = Calls()
    interaction = Interaction(pty_spec(enter="\r"), calls, enter_delay_seconds=0.2)
    written: list[tuple[float, bytes]] = []

    async def write(data: bytes) -> None:
        written.append((trio.current_time(), data))

    done = await interaction.deliver("héllo", write)
    assert done.delivery == "pty" and done.written == len("héllo".encode()) + 1
    assert [data for _, data in written] == ["héllo".encode(), b"\r"]
    assert written[1][0] - written[0][0] == pytest.approx(0.2)
    assert calls.seen == [(False, "message received")]


async def test_stream_json_records_and_prompts() -> None:
    calls = Calls()
    spec = AgentSpec(name="c", command=["claude", "--input-format", "stream-json"], stdin=True)
    interaction = Interaction(spec, calls)
    assert interaction.delivery == "stream-json" and not interaction.watches
    interaction.started()
    assert calls.seen == [(True, "waiting for the first message")]
    # Records after a waiting state say the agent is at work again, in order.
    interaction.on_found(Found.of([ToolCall(1, "Bash", "ls", "started")]))
    assert calls.seen[-1] == (False, "at work again")
    line = {
        "type": "control_request",
        "request_id": "r9",
        "request": {"subtype": "can_use_tool", "tool_name": "Bash", "input": {"command": "ls"}},
    }
    interaction.on_lines(LineBatch([b'{"type":"assistant"}', json.dumps(line).encode()]))
    assert interaction.prompt is not None and interaction.prompt.request_id == "r9"
    interaction.on_found(
        Found.of([ToolCall(2, "Bash", "ls", "started"), State(3, "waiting_for_input", "perm")])
    )
    assert calls.seen[-1] == (True, "perm")
    written: list[bytes] = []

    async def write(data: bytes) -> None:
        written.append(data)

    done = await interaction.deliver("no", write)
    assert done.answered is not None and done.allowed is False
    assert json.loads(written[0])["response"]["request_id"] == "r9"
    assert interaction.prompt is None
    await interaction.deliver("next task", write)
    assert json.loads(written[1])["type"] == "user"
    interaction.on_found(Found.of([State(9, "turn_completed", "success")]))
    assert calls.seen[-1] == (True, "turn completed; waiting for the next message")


async def test_agents_without_a_way_in_take_no_message() -> None:
    interaction = Interaction(AgentSpec(name="p", command=["x"], stdin=True), Calls())
    assert interaction.delivery is None

    async def write(data: bytes) -> None:
        raise AssertionError("nothing may be written")

    with pytest.raises(Refusal) as refused:
        await interaction.deliver("hi", write)
    assert refused.value.code == "not_interactive"
    # A plain agent's records never make it wait unless they say so.
    calls = Calls()
    plain = Interaction(AgentSpec(name="p", command=["x"]), calls)
    plain.on_found(Found.of([ToolCall(1, "Bash", "ls", "started")]))
    plain.on_found(Found.of([State(2, "turn_completed", "")]))
    assert calls.seen == []


async def test_feeding_takes_what_is_pending_not_what_a_flood_adds() -> None:
    class Flooded(TerminalScreen):
        """Each slice fed, the terminal writes as much again."""

        def feed(self, budget: int = 4096) -> bool:
            more = super().feed(budget)
            self.push(b"y" * budget)
            return more

    screen = Flooded(5, 20, pending_limit=64 * 1024)
    screen.push(b"x" * 20_000)
    await Interaction._feed(screen)
    assert screen.fed_bytes == 20_000  # it returned: the flood's bytes wait for the next turn
    assert screen.pending == 20_000
