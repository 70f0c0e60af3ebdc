"""What the formatters read: one consistent picture of the metrics at one moment. Pure.

The model builds a snapshot per request; the Prometheus, JSON and line-protocol
formatters only read it, so all three show the same figures. (What their views keep
between requests, format strings and time stamp texts, only saves work: the output is
what a fresh render of the snapshot gives.)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, Protocol, overload


class AgentFigures(NamedTuple):
    """One listed agent. A NamedTuple because a scrape builds a thousand of them."""

    name: str
    status: str
    started_at: datetime
    completed_at: datetime | None
    log_lines: int
    extractions: int
    code_blocks: int
    errors: int
    stdout_bytes: int
    stderr_bytes: int
    exit_code: int | None
    duration_seconds: float

    @property
    def bytes_processed(self) -> int:
        return self.stdout_bytes + self.stderr_bytes


class AgentRows(Sequence[AgentFigures]):
    """Agents' figures stored flat: the fields of the first agent (in ``AgentFigures``
    order), then the second's, and so on. What the model builds.

    The formatters read whole columns, which ``AgentColumns.of`` slices straight out of
    the flat tuple; a thousand ``AgentFigures`` would only be made to be taken apart again
    (and as many container objects set off a garbage collection per scrape). A row is
    made when somebody reads one.
    """

    __slots__ = ("flat",)

    def __init__(self, flat: tuple[object, ...]) -> None:
        if len(flat) % _WIDTH:
            raise ValueError(f"{len(flat)} values do not make rows of {_WIDTH}")
        self.flat = flat

    def __len__(self) -> int:
        return len(self.flat) // _WIDTH

    @overload
    def __getitem__(self, index: int) -> AgentFigures: ...

    @overload
    def __getitem__(self, index: slice) -> list[AgentFigures]: ...

    def __getitem__(self, index: int | slice) -> AgentFigures | list[AgentFigures]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("agent index out of range")
        return AgentFigures._make(self.flat[index * _WIDTH : (index + 1) * _WIDTH])

    def __iter__(self) -> Iterator[AgentFigures]:
        # The same iterator _WIDTH times over: zip takes consecutive values for each row.
        return map(AgentFigures._make, zip(*[iter(self.flat)] * _WIDTH, strict=True))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AgentRows):
            return self.flat == other.flat
        if isinstance(other, list):  # as a list compares
            return list(self) == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"AgentRows({list(self)!r})"


_WIDTH = len(AgentFigures._fields)


class AgentColumns(NamedTuple):
    """The agents' figures transposed: one tuple per field, in the agents' order.

    The formatters write each field for every agent in turn (a Prometheus family per
    field) or feed whole columns to C-level ``map``/``zip``, where reading the fields
    agent by agent would be Python work.
    """

    name: tuple[str, ...]
    status: tuple[str, ...]
    started_at: tuple[datetime, ...]
    completed_at: tuple[datetime | None, ...]
    log_lines: tuple[int, ...]
    extractions: tuple[int, ...]
    code_blocks: tuple[int, ...]
    errors: tuple[int, ...]
    stdout_bytes: tuple[int, ...]
    stderr_bytes: tuple[int, ...]
    exit_code: tuple[int | None, ...]
    duration_seconds: tuple[float, ...]

    @classmethod
    def of(cls, agents: Sequence[AgentFigures]) -> AgentColumns:
        # Every _WIDTH-th value of the flat figures from each field's offset: C-level
        # slices. (zip(*agents) would make an iterator per agent: again a thousand
        # container objects, and a garbage collection per scrape.)
        if isinstance(agents, AgentRows):
            flat = agents.flat
        else:
            flat = tuple(itertools.chain.from_iterable(agents))
        return cls._make(flat[offset::_WIDTH] for offset in range(_WIDTH))


@dataclass(frozen=True, slots=True)
class SseFigures:
    """What the SSE hub reports; all zero while no hub is registered."""

    clients_by_agent: Mapping[str, int] = field(default_factory=dict)
    dropped_events_total: int = 0
    slow_disconnects_total: int = 0
    events_clients: int = 0  # on /api/events (all agents), counted in the total only

    @property
    def total_clients(self) -> int:
        return sum(self.clients_by_agent.values()) + self.events_clients

    @property
    def agents_with_clients(self) -> int:
        return sum(1 for count in self.clients_by_agent.values() if count > 0)


class SseSource(Protocol):
    """Implemented by the SSE hub; read at each request, so it must be cheap."""

    def sse_figures(self) -> SseFigures: ...


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    version: str
    timestamp_ns: int  # wall clock, for the line protocol
    uptime_seconds: float
    agents_by_status: Mapping[str, int]  # every status, zeros included
    agents_started_total: int
    failed_starts_total: int
    events_total: int
    log_lines_total: int
    state_changes_total: int
    extractions_by_type: Mapping[str, int]
    events_per_second: float
    agents: Sequence[AgentFigures]
    sse: SseFigures = field(default_factory=SseFigures)
    tasks: int = 0  # trio tasks alive in the daemon (0: not counted)

    @property
    def extractions_total(self) -> int:
        return sum(self.extractions_by_type.values())

    @property
    def agents_listed(self) -> int:
        return sum(self.agents_by_status.values())
