"""One SSE client of the fan-out, as plain data: its bounded buffer and drop policy, and
its life as a state machine. Pure: no trio; the runtime subclass adds how its stream
task is parked and woken (``runtime.hub.Client``).

The state (``ClientState``) changes a handful of times in a client's life, so it is an
Enum. What changes on every delivery (``queued``, ``released``, the buffer) is kept in
plain attributes: the fan-out loop touches them once per client per read, and a bool
test costs less there than any Enum comparison.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Final

from trio_wrapper.streaming.backlog import Backlog
from trio_wrapper.streaming.replay import Gap
from trio_wrapper.streaming.ring import Published


class ClientState(enum.Enum):
    """Where a client's stream is in its life. The stream loop reads it on each wake."""

    STREAMING = "streaming"  # sends news when released, a ping when one is due
    ENDING = "ending"  # its agent was removed: send what is buffered, then end quietly
    SHUTTING_DOWN = "shutting_down"  # the daemon stops: send what is buffered, ``shutdown``
    GONE = "gone"  # the client disconnected: end now
    DROPPED = "dropped"  # stalled in a send, or left at shutdown: end now, even mid-send
    CLOSED = "closed"  # the stream has ended and left the hub


class Transition(enum.Enum):
    """What can happen to a client (the inputs of its state machine)."""

    END = "end"  # the hub: its agent was removed
    SHUT_DOWN = "shut_down"  # the hub: the daemon stops
    DISCONNECT = "disconnect"  # the connection: the client went away
    DROP = "drop"  # the hub: stalled past the stall timeout, or past the shutdown grace
    CLOSE = "close"  # the stream: it has ended


class Step(enum.Enum):
    """The stream loop's next move, decided by ``FanoutClient.next_step``."""

    STOP = "stop"  # disconnected or dropped: end now, sending nothing more
    SEND = "send"  # news the hub's flush released, or the last of an ending stream
    HOLD = "hold"  # news, held until the hub's next flush: wait to be woken
    IDLE = "idle"  # nothing to send: ping if one is due, else wait to be woken


STOP: Final = Step.STOP
SEND: Final = Step.SEND
HOLD: Final = Step.HOLD
IDLE: Final = Step.IDLE
STREAMING: Final = ClientState.STREAMING
ENDING: Final = ClientState.ENDING
SHUTTING_DOWN: Final = ClientState.SHUTTING_DOWN
GONE: Final = ClientState.GONE
DROPPED: Final = ClientState.DROPPED
CLOSED: Final = ClientState.CLOSED

# Every legal move. Anything else is ignored: the hub's timers and the connection race
# with the stream's own end (a disconnect read after a drop, a sweep of a client that is
# just closing), and the first reason to end is the one that holds. Precedence follows:
# a drop overrides everything but CLOSED (it cuts even a send short), a disconnect
# overrides a polite ending (nobody is left to read it), shutdown overrides ENDING (both
# send what is buffered; shutdown adds its event).
TRANSITIONS: Final[Mapping[ClientState, Mapping[Transition, ClientState]]] = {
    STREAMING: {
        Transition.END: ENDING,
        Transition.SHUT_DOWN: SHUTTING_DOWN,
        Transition.DISCONNECT: GONE,
        Transition.DROP: DROPPED,
        Transition.CLOSE: CLOSED,
    },
    ENDING: {
        Transition.SHUT_DOWN: SHUTTING_DOWN,
        Transition.DISCONNECT: GONE,
        Transition.DROP: DROPPED,
        Transition.CLOSE: CLOSED,
    },
    SHUTTING_DOWN: {
        Transition.DISCONNECT: GONE,
        Transition.DROP: DROPPED,
        Transition.CLOSE: CLOSED,
    },
    GONE: {Transition.DROP: DROPPED, Transition.CLOSE: CLOSED},
    DROPPED: {Transition.CLOSE: CLOSED},
    CLOSED: {},
}


# What one send takes from the buffer at most (runs' ``size``, what they can come to hold
# with their frames; the first run always goes, whatever its size): a client far behind
# sends its backlog a slice at a time, so what the send holds, outside the buffer and
# beyond the fan-out's reach, stays small.
TAKE_BYTES: Final = 4 * 1024 * 1024


class FanoutClient:
    """One SSE connection's buffer and state.

    The buffer holds runs (``Published``: what line work took in one go, one line or a
    megabyte's worth of them, shared by every client and encoded once for all). It is
    bounded in events, however the agent happened to write them: at most ``limit`` events
    (log lines, records, states) wait for the client; past that the *oldest* runs go,
    whole (the newest is always kept, even alone above the limit). Memory is bounded for
    all clients together (``Backlog``, each run counted once; ``Fanout._shed`` drops the
    oldest runs of the clients furthest behind). Either loss is accounted as one ``Gap``
    reported before what is sent next. ``push`` is O(1) while the client keeps up.

    Thousands of clients sit idle for hours (the goal is 20 KB each, the connection
    included), so an idle client holds no buffer: the deque is made by the first push
    after it was emptied.

    ``queued``: in the hub's list for its next flush; ``released``: that flush came, so
    the stream sends what is buffered. Both are set per delivery, hence plain bools.
    """

    __slots__ = (
        "_first_missed",
        "_last_missed",
        "_missed",
        "agent",
        "backlog",
        "batches",
        "buffered",
        "in_flight",
        "limit",
        "number",
        "peer",
        "ping_at",
        "queued",
        "released",
        "sending_since",
        "state",
    )

    def __init__(
        self,
        number: int,
        agent: str | None,
        limit: int,
        peer: tuple[str, int] | None = None,
        backlog: Backlog | None = None,
    ) -> None:
        self.number = number
        self.peer = peer  # the TCP peer, to abort a connection the server won't let go
        self.agent = agent  # None: the all-agents stream
        self.limit = limit  # events
        self.batches: deque[Published] | None = None
        self.buffered = 0  # events in ``batches``
        self.in_flight: Sequence[Published] = ()  # what the send under way carries
        # Counts what the buffer holds: the fan-out's, shared by all its clients (the
        # counts live on the runs, so clients sharing runs must share it too).
        self.backlog = backlog if backlog is not None else Backlog(math.inf)
        self._missed = 0
        self._first_missed = 0
        self._last_missed = 0
        self.ping_at = math.inf  # when the stream's next ping is due
        self.queued = False
        self.released = False
        self.sending_since: float | None = None  # when the send under way began
        self.state = STREAMING

    @property
    def id(self) -> str:
        return f"c{self.number}"

    # ---- the state machine ---------------------------------------------------------

    def move(self, transition: Transition) -> bool:
        """Apply ``transition``: True if the state changed, False if it was ignored (see
        ``TRANSITIONS``). Wakes nothing: the caller wakes the stream if it must."""
        target = TRANSITIONS[self.state].get(transition)
        if target is None:
            return False
        self.state = target
        return True

    def next_step(self) -> Step:
        """What the stream does on this wake (see ``Step``). One call, no allocation: the
        stream loop asks once per wake, before each send."""
        state = self.state
        if state is GONE or state is DROPPED:
            return STOP
        if self.batches or state is ENDING or state is SHUTTING_DOWN:
            # Ending and shutting down don't wait for a flush.
            if self.released or state is ENDING or state is SHUTTING_DOWN:
                return SEND
            return HOLD
        return IDLE

    def wake(self) -> None:
        """End the stream's wait. Nothing here: only the runtime knows how a stream waits
        (``runtime.hub.Client`` overrides it)."""

    # ---- the buffer ----------------------------------------------------------------

    def push(self, run: Published) -> int:
        """Queue one run. Past the limit, the oldest runs go. Returns how many events
        were dropped."""
        batches = self.batches
        if batches is None:
            batches = self.batches = deque()
        batches.append(run)
        self.backlog.hold(run)
        self.buffered += run.count
        if self.buffered <= self.limit:
            return 0
        dropped = 0
        while len(batches) > 1 and self.buffered > self.limit:
            dropped += self.drop_oldest()
        return dropped

    def drop_oldest(self) -> int:
        """Drop the oldest buffered run (there must be one), counted as missed. Returns
        how many events it held."""
        assert self.batches
        lost = self.batches.popleft()
        first = lost.first_id(self.agent is None)
        if not self._missed:
            self._first_missed = first
        self._last_missed = first + lost.count - 1
        self._missed += lost.count
        self.buffered -= lost.count
        self.backlog.release(lost)
        return lost.count

    @property
    def oldest(self) -> Published | None:
        """The oldest buffered run, if another is buffered after it (droppable)."""
        batches = self.batches
        if batches is not None and len(batches) > 1:
            return batches[0]
        return None

    def take(self, max_bytes: int = TAKE_BYTES) -> tuple[Sequence[Published], Gap | None]:
        """What to send next: the gap, if some was lost, and the oldest runs, up to
        ``max_bytes`` of them (at least one). They stay counted until ``sent`` (or
        ``clear``). What is left stays released, for the next send."""
        self._let_go_in_flight()
        gap = None
        if self._missed:
            gap = Gap(self._missed, self._first_missed, self._last_missed)
            self._missed = 0
        batches = self.batches
        runs: list[Published] = []
        size = 0
        while batches and (not runs or size + batches[0].size <= max_bytes):
            run = batches.popleft()
            runs.append(run)
            size += run.size
        if not batches:
            self.batches = None
        self.in_flight = runs
        self.buffered -= sum(run.count for run in runs)
        self.released = bool(self.batches)
        return runs, gap

    def take_plain(self, max_bytes: int) -> Sequence[Published] | None:
        """Everything buffered, for a send made on the spot by the hub's flush, or None
        when the stream must make it itself: it is not plainly streaming, some events
        were lost (the gap goes first), a run completes its agent (the stream ends after
        it), or the runs may come to more than ``max_bytes`` on the wire (their
        ``size``, an upper bound). Taken as ``take`` takes: held until ``sent``."""
        batches = self.batches
        if not batches or self._missed or self.state is not STREAMING:
            return None
        size = 0
        for run in batches:
            size += run.size
            if size > max_bytes or run.completes:
                return None
        self._let_go_in_flight()
        self.in_flight = runs = list(batches)
        self.batches = None
        self.buffered = 0
        self.released = False
        return runs

    def sent(self) -> None:
        """The send of what ``take`` gave is over: let it go."""
        self._let_go_in_flight()

    def clear(self) -> None:
        """Let go of everything held (the stream has ended)."""
        self._let_go_in_flight()
        batches, self.batches = self.batches, None
        self.buffered = 0
        release = self.backlog.release
        for run in batches or ():
            release(run)

    def _let_go_in_flight(self) -> None:
        runs, self.in_flight = self.in_flight, ()
        release = self.backlog.release
        for run in runs:
            release(run)

    # ---- timing (the clock is the caller's) ------------------------------------------

    def stalled(self, now: float, timeout: float) -> bool:
        """Stuck in one send for ``timeout`` or more."""
        since = self.sending_since
        return since is not None and now - since >= timeout


__all__ = ["TRANSITIONS", "ClientState", "FanoutClient", "Step", "Transition"]
