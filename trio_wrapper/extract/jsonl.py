"""Shared machinery of the JSON-lines extractors (Codex, Claude, Gemini).

Each line is decoded on its own with msgspec; anything that is not a JSON object —
plain text, a truncated line, binary junk — is skipped (stderr lines still get the
plain error-line check, since CLIs print fatal errors there as text).

Two ways to read a line. As a dict (:func:`decode_object`): handlers read fields
through the helpers below, which return an empty value for a missing key or a value
of the wrong type. Or as a typed msgspec Struct (:class:`LineDecoder`): only the
fields the extractor uses are built, the rest is skipped unbuilt, which is several
times cheaper on long lines; a value of the wrong type is dropped (its field keeps
its default) by :func:`drop_invalid`. Either way format drift never raises.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any, ClassVar, Generic, TypeVar, cast

import msgspec

from trio_wrapper.core.lines import Lines
from trio_wrapper.extract.base import count_unknown, decode_batch, error_line, with_rules
from trio_wrapper.extract.fences import code_blocks_in
from trio_wrapper.extract.records import MAX_LONG_TEXT, Metric, Record, Response, short
from trio_wrapper.extract.rules import Rule

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
# JSON's whitespace: what the typed fast path skips before a ``{`` too.
_BLANK = frozenset(b" \t\r\n")
# A line wrong in more places than this is not worth mending: it yields nothing.
MAX_REPAIRS = 32
# A broken line is searched for at most this many objects spliced into it (below).
MAX_SPLICE_TRIES = 8
# A fragment waiting for the rest of its line is kept up to this size.
MAX_FRAGMENT_BYTES = 1024 * 1024
_SPLICE_MARK = b'{"type":'
_raw_decode = json.JSONDecoder().raw_decode

LineT = TypeVar("LineT")


def _object_text(raw: bytes) -> bytes | None:
    """The line if it can be a JSON object (starts with ``{``, blanks aside), else None."""
    head = raw[:1]
    if head != b"{":
        if not head or head[0] not in _BLANK:
            return None
        raw = raw.strip()
        if raw[:1] != b"{":
            return None
    return raw


def decode_object(raw: bytes) -> dict[str, Any] | None:
    """The JSON object on this line, or None."""
    text = _object_text(raw)
    if text is None:
        return None
    raw = text
    try:
        obj = _decode(raw)
    except msgspec.DecodeError:
        # A JSON line with invalid UTF-8 inside a string is still worth reading.
        try:
            obj = _decode(raw.decode("utf-8", "replace"))
        except msgspec.DecodeError:
            return None
    return obj if type(obj) is dict else None


class LineDecoder(Generic[LineT]):
    """A line as a ``line_type`` Struct, or None when it is not a JSON object.

    The fast path is one typed decode. A line that is JSON but has a value of the
    wrong type somewhere (a CLI changed a field) takes the slow path: decoded as
    builtins, the offending values dropped one by one, then decoded again.
    """

    __slots__ = ("_decode", "strict")

    def __init__(self, line_type: type[LineT]) -> None:
        self._decode: Callable[[bytes | str], LineT] = msgspec.json.Decoder(line_type).decode
        # The typed decode alone, raising ``msgspec.DecodeError`` on anything else: the
        # first try for every line, in the extractor's loop without a call of ours.
        self.strict: Callable[[bytes], LineT] = self._decode

    def __call__(self, raw: bytes) -> LineT | None:
        text = _object_text(raw)
        if text is None:
            return None
        try:
            return self._decode(text)
        except msgspec.ValidationError:
            return self._mended(text)
        except msgspec.DecodeError:
            pass
        # A JSON line with invalid UTF-8 inside a string is still worth reading.
        replaced = text.decode("utf-8", "replace").encode()
        try:
            return self._decode(replaced)
        except msgspec.ValidationError:
            return self._mended(replaced)
        except msgspec.DecodeError:
            return None

    def _mended(self, text: bytes) -> LineT | None:
        obj = decode_object(text)
        if obj is None:
            return None
        for _ in range(MAX_REPAIRS):
            try:
                return self._decode(_encode(obj))
            except msgspec.ValidationError as exc:
                if not drop_invalid(obj, str(exc)):
                    return None
        return None


_ERROR_PATH = re.compile(r" - at `\$((?:\.[^.\[`]+|\[\d+\])+)`$")
_PATH_STEP = re.compile(r"\.([^.\[`]+)|\[(\d+)\]")


def drop_invalid(obj: dict[str, Any], message: str) -> bool:
    """Remove from ``obj`` the value a msgspec ValidationError ``message`` points at
    (``Expected `str`, got `int` - at `$.message.content[0].text```). False when the
    message names no removable place (the whole line is of the wrong shape).

    Only the fields a line type declares can be wrong, and their names are plain
    identifiers, so the path reads unambiguously.
    """
    m = _ERROR_PATH.search(message)
    if m is None:
        return False
    steps = [(key, int(index) if index else None) for key, index in _PATH_STEP.findall(m[1])]
    parent: Any = obj
    for key, index in steps[:-1]:
        try:
            parent = parent[key] if index is None else parent[index]
        except (KeyError, IndexError, TypeError):
            return False
    key, index = steps[-1]
    try:
        if index is None:
            del parent[key]
        else:
            del parent[index]
    except (KeyError, IndexError, TypeError):
        return False
    return True


class JsonLinesExtractor(Generic[LineT]):
    FORMAT: ClassVar[str] = ""

    def __init__(
        self,
        rules: Sequence[Rule] = (),
        decode_line: Callable[[bytes], LineT | None] = decode_object,  # type: ignore[assignment]
    ) -> None:
        self._rules = tuple(rules)
        self._decode_line = decode_line
        # The typed decode to try first (``LineDecoder.strict``), where there is one.
        self._strict: Callable[[bytes], LineT] | None = getattr(decode_line, "strict", None)
        # True while a subclass collects raw lines itself (a multi-line JSON document).
        self._capturing = False
        # Event types not known to the subclass, since the last ``take_unknown``.
        self._unknown: dict[str, int] = {}
        # The head of a line another line was spliced into: (its line number, its bytes),
        # waiting for the rest on the next line.
        self._fragment: tuple[int, bytes] | None = None

    @property
    def format(self) -> str:
        return self.FORMAT

    @property
    def in_code_block(self) -> bool:
        return False  # code blocks arrive inside complete messages

    def feed(self, lines: Sequence[bytes], first_line_num: int, stream: str) -> list[Record]:
        out: list[Record] = []
        handle = self._handle
        decode_line = self._decode_line
        strict = self._strict
        if strict is not None and not self._capturing:
            # Typed lines: one C call per well-formed line, on a view of the batch's
            # buffer; the rest take the full path (blank or not an object, invalid UTF-8,
            # a value to mend) as ``bytes``.
            views = lines.views() if type(lines) is Lines else lines
            for line_num, view in enumerate(views, first_line_num):
                try:
                    line = strict(view)
                except msgspec.DecodeError:  # ValidationError included
                    raw = bytes(view)
                    found = decode_line(raw)
                    if found is None:
                        if raw:
                            self._broken(raw, line_num, stream, out)
                        continue
                    line = found
                mark = len(out)
                try:
                    handle(line, line_num, out)
                except Exception:
                    del out[mark:]  # as below
            if self._rules:
                out = with_rules(out, self._rules, decode_batch(lines), first_line_num)
            return out
        line_num = first_line_num
        for raw in lines:
            if self._capturing:
                self._capture(raw, line_num, out)
                line_num += 1
                continue
            obj = decode_line(raw)
            if obj is not None:
                mark = len(out)
                try:
                    handle(obj, line_num, out)
                except Exception:
                    # Helpers make this unreachable for any input we know of; if a new
                    # shape still trips a handler, lose that line, never the stream.
                    del out[mark:]
            elif raw:
                self._broken(raw, line_num, stream, out)
            line_num += 1
        if self._rules:
            out = with_rules(out, self._rules, decode_batch(lines), first_line_num)
        return out

    def finish(self) -> list[Record]:
        return []

    def take_unknown(self) -> dict[str, int]:
        unknown = self._unknown
        if unknown:
            self._unknown = {}
        return unknown

    def _note_unknown(self, kind: str) -> None:
        """An event of a type this format does not know (see ``base.count_unknown``)."""
        count_unknown(self._unknown, kind)

    def _handle(self, obj: LineT, line_num: int, out: list[Record]) -> None:
        raise NotImplementedError

    def _handle_safely(self, obj: LineT, line_num: int, out: list[Record]) -> None:
        mark = len(out)
        try:
            self._handle(obj, line_num, out)
        except Exception:
            del out[mark:]

    def _broken(self, raw: bytes, line_num: int, stream: str, out: list[Record]) -> None:
        """A line that is not one JSON object. Two ways a CLI breaks its lines are mended:
        an event written into the middle of another (Claude Code's ``rate_limit_event``,
        claude-code #49640) whose own newline split that line in two, and the like on one
        line. The spliced object is read on its own, and the line around it is read again
        once whole: its head from this line and its tail from the next. Anything else is
        a plain line (``_other``)."""
        fragment, self._fragment = self._fragment, None
        if fragment is not None and fragment[0] == line_num - 1:
            whole = self._decode_line(fragment[1] + raw)
            if whole is not None:
                self._handle_safely(whole, fragment[0], out)
                return
        if raw[:1] == b"{" and len(raw) <= MAX_FRAGMENT_BYTES and self._spliced(raw, line_num, out):
            return
        self._other(raw, line_num, stream, out)

    def _spliced(self, raw: bytes, line_num: int, out: list[Record]) -> bool:
        """Find an object spliced into ``raw`` (from its end backwards) and handle it, after
        the rest of the line when that then reads as an object; else keep the rest for the
        next line. False when no spliced object is found."""
        text = raw.decode("utf-8", "replace")
        end_at = len(text)
        mark = _SPLICE_MARK.decode()
        for _ in range(MAX_SPLICE_TRIES):
            start = text.rfind(mark, 1, end_at)
            if start < 0:
                return False
            end_at = start
            try:
                _, end = _raw_decode(text, start)
            except ValueError:
                continue
            inner = self._decode_line(text[start:end].encode())
            if inner is None:
                continue
            rest = (text[:start] + text[end:]).encode()
            outer = self._decode_line(rest)
            if outer is not None:  # two objects on one line, or one inside the other
                self._handle_safely(outer, line_num, out)
                self._handle_safely(inner, line_num, out)
            else:
                self._handle_safely(inner, line_num, out)
                self._fragment = (line_num, rest)
            return True
        return False

    def _feed_one(self, raw: bytes, line_num: int, stream: str, out: list[Record]) -> None:
        """One line, outside the fast loop of :meth:`feed`."""
        obj = self._decode_line(raw)
        if obj is None:
            if raw:
                self._other(raw, line_num, stream, out)
            return
        mark = len(out)
        try:
            self._handle(obj, line_num, out)
        except Exception:
            del out[mark:]

    def _capture(self, raw: bytes, line_num: int, out: list[Record]) -> None:
        raise NotImplementedError

    def _other(self, raw: bytes, line_num: int, stream: str, out: list[Record]) -> None:
        """A line that is not a JSON object."""
        if stream == "stderr":
            rec = error_line(raw.decode("utf-8", "replace").strip(), line_num, "stderr")
            if rec is not None:
                out.append(rec)


def get_str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if type(value) is str else ""


def get_dict(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if type(value) is dict else {}


def get_list(obj: dict[str, Any], key: str) -> list[Any]:
    value = obj.get(key)
    return value if type(value) is list else []


def as_dict(value: object) -> dict[str, Any]:
    return value if type(value) is dict else {}


def get_int(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    return value if type(value) is int else None


def compact(value: object) -> str:
    """Short one-line text for a tool's input: a string as is, anything else as JSON."""
    if type(value) is str:
        return short(value)
    try:
        return short(_encode(value).decode())
    except (TypeError, msgspec.EncodeError):
        return short(str(value))


def response_records(text: str, line_num: int, out: list[Record]) -> None:
    """A response and the code blocks fenced inside it."""
    if not text.strip():
        return
    out.append(Response(line_num, text[:MAX_LONG_TEXT]))
    out.extend(code_blocks_in(text, line_num))


def add_metric(out: list[Record], line_num: int, key: str, value: object, unit: str) -> None:
    """A metric for a JSON number; anything else (a bool, a string, null, NaN) is skipped.
    Exact types, as a JSON decoder gives them: ``type(True)`` is bool, not int."""
    kind = type(value)
    if (kind is int or kind is float) and value == value:
        out.append(Metric(line_num, key, value, unit))  # type: ignore[arg-type]


def add_metrics(
    out: list[Record],
    line_num: int,
    keys: Sequence[str],
    units: Sequence[str],
    values: Sequence[int | float | None],
) -> None:
    """A metric for each key of ``keys`` (its unit the same place in ``units``) whose
    value in ``values`` is not None: a Claude ``result`` line has eight, and there is
    one per turn. The values are a typed line's fields (``int | float | None`` as
    msgspec decoded them: never a bool, a string or NaN, which JSON cannot write), so
    None is all there is to skip. When none is, the records are made by one ``map`` in
    C: half the time of a Python loop, on a fifth of what a Claude stream costs."""
    if None not in values:
        out += map(Metric, repeat(line_num), keys, cast("Sequence[int | float]", values), units)
        return
    append = out.append
    for key, unit, value in zip(keys, units, values, strict=True):
        if value is not None:
            append(Metric(line_num, key, value, unit))


def unit_for(key: str) -> str:
    """A unit guessed from a metric's name (``duration_ms`` → ms, ``*_tokens`` → tokens)."""
    lowered = key.lower()
    if key.endswith(("_ms", "Ms")) or key == "ms":
        return "ms"
    if "token" in lowered or lowered in ("prompt", "candidates", "cached", "thoughts", "tool"):
        return "tokens"
    if lowered.endswith("usd"):
        return "usd"
    return ""
