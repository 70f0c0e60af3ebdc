"""Token usage and cost of one run, from its extraction records. Pure.

The records are the ``metric``, ``session`` and ``file_op`` records the extractors emit
(``extract/``), read live from the agent or back from the run's events file. What each
CLI reports, and how it is counted:

- Claude (``claude-stream-json``): the ``result`` line gives the session's totals
  (``input_tokens``, ``output_tokens``, ``cache_creation_input_tokens``,
  ``cache_read_input_tokens``, ``total_cost_usd``). They are cumulative: the latest
  value counts, never a sum of several result lines. Without any result line (a run cut
  short) the per-message ``message_input_tokens`` / ``message_output_tokens`` are summed
  instead (an estimate: a message's first line may not hold its final count).
- Codex (``codex-json``): ``turn.completed`` usage (``input_tokens``,
  ``cached_input_tokens``, ``output_tokens``, ``reasoning_output_tokens``) is cumulative
  for the thread: the latest counts. No cost. Plain ``codex exec``: ``tokens used N``,
  booked as ``other`` (the CLI does not split it).
- Gemini: ``stream-json``'s ``result.stats`` (``input_tokens``, ``output_tokens``), the
  latest counts; ``--output-format json``'s per-model ``stats.models.<m>.tokens``
  (``prompt`` → input, ``candidates`` → output, ``cached`` → cache_read, ``thoughts`` →
  reasoning), per model. No cost.
- Aider: each ``Tokens:`` line is one message's (``sent`` → input, ``received`` → output,
  ``cache write``, ``cache hit``): summed. ``Cost: $x message, $y session``: the session
  cost is cumulative, so the latest counts; the message costs are summed only when no
  session cost was printed.

Figures are kept as each CLI reports them: Codex's and Gemini's input include their
cached tokens, Claude's do not. The model is the latest ``session`` record ``model``
(else the one given on the command line, else ``unknown``).

Live, the tally is fed what extraction found already condensed (``extract/figures.py``,
which also names the keys above): a few records a batch, never decoded again. From an
events file, every record is decoded and added.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, cast

import msgspec

from trio_wrapper.extract.figures import (
    FALLBACK_TOKENS,
    GEMINI_MODEL_TOKENS,
    LATEST_COST,
    LATEST_TOKENS,
    SUMMED_COST,
    SUMMED_TOKENS,
    UsageFigure,
    usable_number,
)
from trio_wrapper.extract.found import Found
from trio_wrapper.extract.records import FileOp, Metric

TOKEN_TYPES: Final[tuple[str, ...]] = (
    "input",
    "output",
    "cache_read",
    "cache_write",
    "reasoning",
    "other",
)
UNKNOWN_MODEL: Final = "unknown"

_GEMINI_KINDS: Final[dict[str, str]] = {
    "prompt": "input",
    "candidates": "output",
    "cached": "cache_read",
    "thoughts": "reasoning",
}
_MODEL_FLAGS: Final = ("--model", "-m")
# In an events file every record is a JSON object with "type" first after "timestamp":
# these byte strings cannot occur inside a JSON string (its quotes are escaped).
_EVENT_MARKERS: Final = (b'"type":"metric"', b'"type":"session"', b'"type":"file_op"')


class UsageRecord(msgspec.Struct, gc=False):
    """The fields of a record this module reads; others are skipped by the decoder."""

    type: str = ""
    line_num: int | None = None
    key: str = ""
    value: int | float | str | None = None
    op: str = ""
    path: str = ""


_decode_record = msgspec.json.Decoder(UsageRecord).decode


@dataclass(slots=True)
class ModelUsage:
    """Tokens by type (``TOKEN_TYPES``) and the cost in USD when the CLI said it."""

    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_TYPES, 0))
    cost_usd: float | None = None

    def add_cost(self, value: float) -> None:
        self.cost_usd = value if self.cost_usd is None else self.cost_usd + value

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens.values())


def model_from_command(command: Sequence[str]) -> str | None:
    """``--model X``, ``--model=X`` or ``-m X`` on the command line (every CLI wrapped
    here takes one of them), or None."""
    for i, arg in enumerate(command):
        if arg in _MODEL_FLAGS and i + 1 < len(command):
            return command[i + 1] or None
        if arg.startswith("--model="):
            return arg.removeprefix("--model=") or None
    return None


class UsageTally:
    """Fed a run's records in order; ``totals()`` at any time is the run's usage so far,
    by model; ``files`` the paths it touched with their operations."""

    __slots__ = ("_added", "_cost_added", "_fallback", "_latest", "_latest_cost", "files", "model")

    def __init__(self, default_model: str | None = None) -> None:
        self.model = default_model or UNKNOWN_MODEL
        # (type, slot) -> (model, value); slot is "" or a model the figure belongs to.
        self._latest: dict[tuple[str, str], tuple[str, int]] = {}
        self._latest_cost: tuple[str, float] | None = None
        self._added: dict[tuple[str, str], int] = {}  # (model, type) -> sum
        self._cost_added: dict[str, float] = {}
        self._fallback: dict[tuple[str, str], int] = {}
        self.files: dict[str, set[str]] = {}

    # ---- feeding ------------------------------------------------------------------

    def add(self, record: UsageRecord) -> None:
        """One record as the events file has it (decoded)."""
        kind = record.type
        if kind == "metric":
            self._metric(record.key, record.value)
        elif kind == "session":
            if record.key == "model" and isinstance(record.value, str):
                self._model(record.value)
        elif kind == "file_op":
            self._file_op(record.path, record.op)

    def add_json(self, line: bytes) -> None:
        """One record as JSON (a ``Found`` line, or an events file line)."""
        try:
            record = _decode_record(line)
        except msgspec.DecodeError:
            return
        if record.line_num is not None:  # an events file's status change has none
            self.add(record)

    def add_found(self, found: Found) -> None:
        """What extraction just found: its usage figures, condensed where it was
        extracted (``extract/figures.py``), so nothing is decoded again here."""
        for figure in found.usage:
            self.add_figure(figure)

    def add_figure(self, figure: UsageFigure) -> None:
        """One record as extraction made it."""
        if isinstance(figure, Metric):
            self._metric(figure.key, figure.value)
        elif isinstance(figure, FileOp):
            self._file_op(figure.path, figure.op)
        elif figure.key == "model":
            self._model(figure.value)

    def add_events_file(self, data: bytes) -> None:
        """A whole events file's content (``<stamp>-events.jsonl``)."""
        for line in data.split(b"\n"):
            if any(marker in line for marker in _EVENT_MARKERS):
                self.add_json(line)

    def _model(self, model: str) -> None:
        if model:
            self.model = model

    def _file_op(self, path: str, op: str) -> None:
        if path:
            self.files.setdefault(path, set()).add(op)

    def _metric(self, key: str, value: object) -> None:
        if not usable_number(value):  # not a number, NaN, or nonsense
            return
        number = cast(float, value)
        if key in LATEST_TOKENS:
            self._latest[(LATEST_TOKENS[key], "")] = (self.model, round(number))
        elif key in SUMMED_TOKENS:
            slot = (self.model, SUMMED_TOKENS[key])
            self._added[slot] = self._added.get(slot, 0) + round(number)
        elif key in LATEST_COST:
            self._latest_cost = (self.model, float(number))
        elif key in SUMMED_COST:
            self._cost_added[self.model] = self._cost_added.get(self.model, 0.0) + number
        elif key in FALLBACK_TOKENS:
            slot = (self.model, FALLBACK_TOKENS[key])
            self._fallback[slot] = self._fallback.get(slot, 0) + round(number)
        elif key.startswith("models."):
            m = GEMINI_MODEL_TOKENS.fullmatch(key)
            if m is not None:
                model, kind = m.groups()
                self._latest[(_GEMINI_KINDS[kind], model)] = (model, round(number))

    # ---- reading ------------------------------------------------------------------

    def totals(self) -> dict[str, ModelUsage]:
        """The run's usage so far, by model (only models with a figure)."""
        out: dict[str, ModelUsage] = {}

        def of(model: str) -> ModelUsage:
            usage = out.get(model)
            if usage is None:
                usage = out[model] = ModelUsage()
            return usage

        counted: set[str] = set()
        for (kind, _slot), (model, value) in self._latest.items():
            of(model).tokens[kind] += value
            counted.add(kind)
        for (model, kind), value in self._added.items():
            of(model).tokens[kind] += value
            counted.add(kind)
        for (model, kind), value in self._fallback.items():
            if kind not in counted:
                of(model).tokens[kind] += value
        if self._latest_cost is not None:
            model, cost = self._latest_cost
            of(model).add_cost(cost)
        else:
            for model, cost in self._cost_added.items():
                of(model).add_cost(cost)
        return out


def tally_events(data: bytes, default_model: str | None = None) -> UsageTally:
    """The usage and files of a run from its events file's content."""
    tally = UsageTally(default_model)
    tally.add_events_file(data)
    return tally


def tally_lines(lines: Iterable[bytes], default_model: str | None = None) -> UsageTally:
    """The same from record lines (each one JSON object)."""
    tally = UsageTally(default_model)
    for line in lines:
        tally.add_json(line)
    return tally


def usage_growth(
    before: dict[str, ModelUsage], after: dict[str, ModelUsage]
) -> tuple[list[tuple[str, str, int]], list[tuple[str, float]]]:
    """What a run's usage grew by between two ``totals()``: (model, type, tokens) and
    (model, usd), positive amounts only. A cumulative figure repeated adds nothing; one
    that went down (a CLI starting a new session) is never taken back."""
    tokens: list[tuple[str, str, int]] = []
    costs: list[tuple[str, float]] = []
    for model, usage in after.items():
        old = before.get(model)
        for kind, value in usage.tokens.items():
            grown = value - (old.tokens[kind] if old is not None else 0)
            if grown > 0:
                tokens.append((model, kind, grown))
        if usage.cost_usd is not None:
            old_cost = old.cost_usd if old is not None and old.cost_usd is not None else 0.0
            if usage.cost_usd > old_cost:
                costs.append((model, usage.cost_usd - old_cost))
    return tokens, costs
