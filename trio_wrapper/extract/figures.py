"""What a batch of records says about usage, condensed to the few records that say the same.

The usage tally (``history/usage.py``) reads only ``metric``, ``session`` (``model``) and
``file_op`` records, and most of what it reads is overwritten: a Claude stream carries a
metric or two on every line, each a cumulative figure whose latest value is all that
counts. Condensing a batch where it was extracted (in the extraction worker) leaves the
daemon a handful of records to add instead of decoding every one again.

How each figure combines (the CLIs' vocabulary; the tally names what each one means):

- :data:`LATEST_TOKENS`, :data:`LATEST_COST` and Gemini's per-model ``models.<m>.tokens.<k>``
  are cumulative: the latest value of their slot counts. Keys that share a slot (Claude's
  ``cache_read_input_tokens``, Codex's ``cached_input_tokens``) overwrite each other.
- :data:`SUMMED_TOKENS` and :data:`FALLBACK_TOKENS` are per message: each value is
  rounded to a whole token and summed.
- :data:`SUMMED_COST` (Aider's per-message cost) is summed in floating point: those
  records are kept as they are, so that the sum is the same to the last bit.

A figure is booked under the model last named before it, so a ``session`` ``model``
record cuts the batch in two and is kept where it was. Condensing is exact: tallying
``condense(a) + condense(b)`` gives what tallying ``a + b`` gives, from any state.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final, TypeAlias

from trio_wrapper.extract.records import FileOp, Metric, Record, Session

# Cumulative figures, key -> token type: the latest value is the run's (Claude result,
# Codex turn.completed, Gemini result stats, plain codex "tokens used").
LATEST_TOKENS: Final[dict[str, str]] = {
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_input_tokens": "cache_read",
    "cache_creation_input_tokens": "cache_write",
    "cached_input_tokens": "cache_read",
    "reasoning_output_tokens": "reasoning",
    "tokens_used": "other",
}
LATEST_COST: Final = frozenset({"total_cost_usd", "session_cost_usd"})
# Per-message figures: summed (aider).
SUMMED_TOKENS: Final[dict[str, str]] = {
    "tokens_sent": "input",
    "tokens_received": "output",
    "tokens_cache_write": "cache_write",
    "tokens_cache_hit": "cache_read",
}
SUMMED_COST: Final = frozenset({"cost_usd"})
# Claude's per-message usage: only when the run has no cumulative figure of that type.
FALLBACK_TOKENS: Final[dict[str, str]] = {
    "message_input_tokens": "input",
    "message_output_tokens": "output",
}
# Gemini --output-format json: stats.models.<model>.tokens.<kind>, flattened.
GEMINI_MODEL_TOKENS: Final = re.compile(
    r"models\.(.+)\.tokens\.(prompt|candidates|cached|thoughts)"
)

UsageFigure: TypeAlias = Metric | Session | FileOp

# Where a key's value goes: a cumulative slot (the latest value wins), or a sum.
_LATEST_SLOT: Final[dict[str, str]] = {
    **{key: f"tokens:{kind}" for key, kind in LATEST_TOKENS.items()},
    **dict.fromkeys(LATEST_COST, "cost"),
}
_SUMMED: Final = frozenset(SUMMED_TOKENS) | frozenset(FALLBACK_TOKENS)


def usable_number(value: object) -> bool:
    """A figure the tally books: an int or a float (not a bool), neither NaN nor negative."""
    if type(value) is not int and type(value) is not float:
        return False
    return not (value != value or value < 0)  # NaN is the one value unequal to itself


# What ``condense`` does with a metric, by key: its cumulative slot, or a sum (exact, or
# floating-point kept record by record). A key in none (``duration_ms``…) is no usage.
_SUM: Final = "+"
_FLOAT_SUM: Final = "+."
_ROUTE: Final[dict[str, str]] = {
    **_LATEST_SLOT,
    **dict.fromkeys(_SUMMED, _SUM),
    **dict.fromkeys(SUMMED_COST, _FLOAT_SUM),
}


def condense(records: Iterable[Record]) -> list[UsageFigure]:
    """The usage records of ``records``, condensed (above), or an empty list.

    Runs on every record a Claude stream yields (several metrics a line), so the common
    cases come first, and what a call would cost is written out in the loop: a metric
    whose key is no usage costs one dict lookup."""
    out: list[UsageFigure] = []
    latest: dict[str, Metric] = {}  # slot -> its latest record
    sums: dict[str, Metric] = {}  # key -> the sum so far, at its latest record's line
    files: dict[tuple[str, str], FileOp] = {}
    route_of = _ROUTE.get
    for record in records:
        # ``type() is``: msgspec's Struct classes make a failing isinstance slow.
        if type(record) is Metric:
            key = record.key
            route = route_of(key)
            if route is None:
                if not (key.startswith("models.") and GEMINI_MODEL_TOKENS.fullmatch(key)):
                    continue
                route = key
            value = record.value
            # ``usable_number``, inline: an int or a float, neither NaN nor negative.
            number_type = type(value)
            if (number_type is not int and number_type is not float) or not value >= 0:
                continue
            if route is _SUM:
                total = sums.get(key)
                if total is None:  # a record of its own: the batch's records stay as they are
                    sums[key] = Metric(record.line_num, key, round(value), record.unit)
                else:
                    total.line_num = record.line_num
                    total.value += round(value)
            elif route is _FLOAT_SUM:
                out.append(record)  # float sums: one by one, in order
            else:
                # Slots are independent of each other: which record is a slot's latest
                # counts, not where it stands among the others.
                latest[route] = record
        elif type(record) is Session:
            if record.key == "model" and record.value:
                # What came before was the earlier model's.
                out.extend(latest.values())
                out.extend(sums.values())
                latest.clear()
                sums.clear()
                out.append(record)
        elif type(record) is FileOp and record.path:
            files.setdefault((record.path, record.op), record)
    out.extend(latest.values())
    out.extend(sums.values())
    out.extend(files.values())
    return out
