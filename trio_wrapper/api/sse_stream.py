"""One SSE client's stream, from subscription to its end, over ASGI ``send``/``receive``
(its body pieces written straight to the connection where ``api.direct_body`` can).

``run_stream`` is a plain loop: wait for news and the hub's flush, send. It has no timer
of its own: the hub's flusher releases every stream with news at once, a burst's worth at
a time; its pacemaker wakes an idle stream for its ping and reads its connection's
disconnect (see ``runtime.hub.Client``); its sweep ends a send stalled past the stall
timeout. No ``yield`` in a cancel scope anywhere (PEP 789): there is no generator.

The steps (subscribe, open, ping, news, leave) are functions of their own, called
and returned from: only ``run_stream``'s frame stays while a stream idles, so an idle
stream costs one frame, and what a step built (a replay, a burst) goes when it returns.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import msgspec
import trio
from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
)

from trio_wrapper.api import direct_body
from trio_wrapper.api.errors import http_status
from trio_wrapper.core.errors import Refusal
from trio_wrapper.runtime.hub import Client, Hub
from trio_wrapper.streaming.client import (
    DROPPED,
    ENDING,
    IDLE,
    SEND,
    SHUTTING_DOWN,
    STOP,
    Transition,
)
from trio_wrapper.streaming.fanout import AgentView, Subscription, complete_data
from trio_wrapper.streaming.wire import Event, control


class StreamedAgent(AgentView, Protocol):
    """What a stream reads of its agent: the fan-out's view, and whether it still runs."""

    @property
    def is_live(self) -> bool: ...


class AgentLookup(Protocol):
    """What the stream routes need of the supervisor."""

    def get(self, name: str) -> StreamedAgent:
        """The agent, or a ``Refusal`` (agent_not_found)."""
        ...


async def run_stream(
    hub: Hub,
    agent: StreamedAgent | None,
    last_event_id: int | None,
    history: int,
    peer: tuple[str, int] | None,
    start: HTTPResponseStartEvent,
    send: ASGISendCallable,
    receive: ASGIReceiveCallable,
) -> None:
    """One SSE client from subscription to the end of its stream.

    Ends when the client disconnects, when its agent completes or is removed, at shutdown
    (after a ``shutdown`` event), or when the client is dropped: a send stalled past the
    stall timeout, or still open after the shutdown grace.
    """
    name = agent.name if agent is not None else None
    sub = await _subscribe(hub, agent, name, last_event_id, history, peer, send)
    if sub is None:
        return
    client = sub.client
    client.inbox = _inbox(receive)
    use_global = name is None
    interval = hub.limits.ping_interval
    try:
        going_on = await _open(send, client, start, sub, agent, name)
        del sub  # its replay may be thousands of events: not kept for the stream's life
        if not going_on:
            return
        # Under hypercorn's trio worker, body pieces go straight to the connection (see
        # ``api.direct_body``); elsewhere, or if the chain is not there, through ``send``.
        direct = direct_body.find(send) if client.inbox is not None else None
        # With a direct writer, the hub's flush writes small news itself (``Hub.flush``)
        # while this task stays parked; what the socket did not take is ``unsent``.
        client.writer = direct
        client.ping_at = trio.current_time() + interval
        while True:
            if client.unsent is not None:
                assert direct is not None, "only a direct writer leaves anything unsent"
                if not await _send_unsent(direct, client):
                    return
                client.ping_at = trio.current_time() + interval
            step = client.next_step()
            if step is SEND:
                chunks, done = _news(client, name, use_global)
                for piece in _pieces(chunks):
                    if not await _send_piece(send, direct, client, piece):
                        return
                del chunks
                client.sent()
                if done:
                    await send(_end())
                    return
                client.ping_at = trio.current_time() + interval
            elif step is STOP:
                return
            elif step is IDLE and trio.current_time() >= client.ping_at:
                if not await _ping(send, client, name, interval):
                    return
            # Wait until woken. Idle: for news, a drop, or the pacemaker (ping due, gone).
            # Held: for the hub's next flush (``Hub.flush_delay``), so that a burst goes
            # out in one send to each client: each send costs the server the same CPU
            # whatever it carries. Parked here, not in a helper: an idle stream then
            # keeps one frame, this one.
            elif client.inbox is not None:
                await client.park()
            else:
                await _wait(client, receive)
    finally:
        _leave(hub, client)


async def _subscribe(
    hub: Hub,
    agent: StreamedAgent | None,
    name: str | None,
    last_event_id: int | None,
    history: int,
    peer: tuple[str, int] | None,
    send: ASGISendCallable,
) -> Subscription[Client] | None:
    """Register with the hub, or answer its refusal (JSON error) and return None."""
    try:
        return hub.subscribe(
            name,
            last_event_id,
            history,
            agent_live=agent is None or agent.is_live,
            peer=peer,
        )
    except Refusal as err:
        await _send_error(send, err)
        return None


async def _open(
    send: ASGISendCallable,
    client: Client,
    start: HTTPResponseStartEvent,
    sub: Subscription[Client],
    agent: StreamedAgent | None,
    name: str | None,
) -> bool:
    """The response head, then ``connected``, the gap, the replay, and for a finished
    agent its ``complete`` and the end, in one body. False: the stream is over."""
    if not await _send(send, client, start):
        return False
    first = [control("connected", name, {"client_id": client.id, "agent": name})]
    if sub.gap is not None:
        first.append(control("gap", name, sub.gap.data()))
    first.extend(_wires(sub.replay, name is None))
    if sub.finished:
        first.append(_complete_wire(agent, name, sub.replay, sub.complete))
    data = b"".join(first)
    del first
    if not await _send(send, client, _body(data)):
        return False
    if sub.finished:
        await send(_end())
        return False
    return True


async def _ping(send: ASGISendCallable, client: Client, name: str | None, interval: float) -> bool:
    """Send the due ping. False: the stream must end."""
    # The next ping is due an interval after this one was due, not after this send: idle
    # streams keep the spread their connections had instead of bunching into ever larger
    # rounds of pings at once.
    client.ping_at += interval
    if not await _send(send, client, _body(control("ping", name, {}))):
        return False
    now = trio.current_time()
    if client.ping_at <= now:
        client.ping_at = now + interval  # the send took a whole interval
    return True


def _news(client: Client, name: str | None, use_global: bool) -> tuple[list[bytes], bool]:
    """What the buffer gives one send (after its gap) as wire chunks, and whether that
    ends the stream: its agent completed or was removed, or the daemon shuts down
    (``shutdown`` added). Not a coroutine: the loop sends the chunks itself, one frame
    less per send."""
    runs, gap = client.take()
    chunks = []
    if gap is not None:
        chunks.append(control("gap", name, gap.data()))
    chunks.extend(run.wire(use_global) for run in runs)
    completes = not use_global and any(r.completes for r in runs)  # the agent's last event
    if client.batches and not completes:
        return chunks, False  # a slice of a long backlog: the rest goes in the next sends
    done = completes or client.state is ENDING
    if client.state is SHUTTING_DOWN:
        chunks.append(control("shutdown", name, {}))
        done = True
    return chunks, done


def _leave(hub: Hub, client: Client) -> None:
    client.writer = None
    client.unsent = None
    hub.unsubscribe(client)
    if client.sending_since is not None and not hub.closing:
        # Left in the middle of a send: the connection took nothing for the whole stall
        # timeout (the sweep dropped it and shut its socket).
        hub.slow_disconnects_total += 1


def _complete_wire(
    agent: StreamedAgent | None, name: str | None, replay: list[Event], complete: Event | None
) -> bytes:
    """The end of a finished agent's stream: its numbered ``complete`` unless the replay
    already ended with it; an unnumbered one for a past run the hub never saw."""
    if complete is None:
        assert agent is not None, "only an agent's stream finishes"
        return control("complete", name, complete_data(agent))
    if replay and replay[-1] is complete:
        return b""
    return complete.wire()


def _body(data: bytes) -> HTTPResponseBodyEvent:
    return {"type": "http.response.body", "body": data, "more_body": True}


def _end() -> HTTPResponseBodyEvent:
    return {"type": "http.response.body", "body": b"", "more_body": False}


SEND_PIECE = 256 * 1024


def _pieces(chunks: list[bytes]) -> Iterator[bytes]:
    """Small chunks joined, large ones passed on as they are: the HTTP layer copies each
    body once more (chunked framing), so joining megabytes first would copy them twice."""
    small: list[bytes] = []
    size = 0
    for chunk in chunks:
        if len(chunk) >= SEND_PIECE:
            if small:
                yield b"".join(small)
                small, size = [], 0
            yield chunk
            continue
        small.append(chunk)
        size += len(chunk)
        if size >= SEND_PIECE:
            yield b"".join(small)
            small, size = [], 0
    if small:
        yield b"".join(small)


def _wires(events: Sequence[Event], use_global: bool) -> list[bytes]:
    if use_global:
        return [e.global_wire() for e in events]
    return [e.wire() for e in events]


def _inbox(receive: ASGIReceiveCallable) -> trio.MemoryReceiveChannel[Any] | None:
    """The memory channel behind ``receive``, when it is one (hypercorn's trio worker):
    the hub's pacemaker then reads it, and the idle stream needs no task waiting on it."""
    channel = getattr(receive, "__self__", None)
    if isinstance(channel, trio.MemoryReceiveChannel) and receive == channel.receive:
        return channel
    return None


async def _wait(client: Client, receive: ASGIReceiveCallable) -> None:
    """An idle stream's wait when its connection cannot be polled: in ``receive()``, until
    the disconnect (``GONE``) or ``Client.wake`` cancels the scope. Anything else the
    connection sends (the request's empty body) is let pass.

    A function of its own, not a block of ``run_stream``: a frame that an exception goes
    through keeps a frame object (as large as the frame) for as long as it runs.
    """
    with trio.CancelScope() as receiving:
        client.receiving = receiving
        while (await receive())["type"] != "http.disconnect":
            pass
        client.move(Transition.DISCONNECT)
    client.receiving = None


async def _send(send: ASGISendCallable, client: Client, message: ASGISendEvent) -> bool:
    """One send. False when the stream must end: the client was dropped (its
    ``sending_since`` then stays set, which counts it as a slow disconnect).

    No deadline of its own: hypercorn shields its socket writes from cancellation, so a
    send stalled past the stall timeout is ended by the hub's sweep, which shuts the
    socket (``Client.drop``); the send then returns. Only a connection that is not
    hypercorn's (no ``inbox``) sends in a scope the hub can cancel: a scope per send
    costs the hot path about 5 us, a tenth of a send, for nothing under hypercorn.
    """
    client.sending_since = trio.current_time()
    if client.inbox is not None:
        await send(message)
    else:
        with trio.CancelScope() as sending:
            client.sending = sending
            await send(message)
        client.sending = None
        if sending.cancelled_caught:
            return False
    if client.state is DROPPED:
        return False
    client.sending_since = None
    return True


async def _send_unsent(direct: direct_body.DirectBody, client: Client) -> bool:
    """The rest of a chunk the hub's flush wrote in part (``_send``'s contract)."""
    rest, client.unsent = client.unsent, None
    assert rest is not None
    client.sending_since = trio.current_time()
    if not await direct.send_rest(rest) or client.state is DROPPED:
        return False
    client.sending_since = None
    return True


async def _send_piece(
    send: ASGISendCallable, direct: direct_body.DirectBody | None, client: Client, piece: bytes
) -> bool:
    """One piece of the body, written directly when it can be (``_send``'s contract): a
    piece the direct writer could not write (the connection closed) goes through ``send``,
    which then handles the closed connection as hypercorn does."""
    if direct is not None:
        client.sending_since = trio.current_time()
        if await direct.send(piece):
            if client.state is DROPPED:
                return False
            client.sending_since = None
            return True
    return await _send(send, client, _body(piece))


async def _send_error(send: ASGISendCallable, err: Refusal) -> None:
    body = msgspec.json.encode(err.body())
    await send(
        {
            "type": "http.response.start",
            "status": http_status(err),
            "headers": [(b"content-type", b"application/json; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


__all__ = ["AgentLookup", "StreamedAgent", "run_stream"]
