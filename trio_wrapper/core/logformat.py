"""The daemon's own log: one line per event, as text with ``key=value`` pairs or as JSON.

A line carries ``ts`` (local time with offset, milliseconds, like every stamp of the
contract), ``level``, ``logger``, ``event``, ``message`` and the event's own fields: the
``extra={...}`` of the logging call, whatever logger made it (so another module's fields
need no change here). A record without an ``event`` field is ``event=message``.

Text::

    2026-12-06T10:57:13.123+01:00 INFO trio_wrapper.agents: agent demo started (pid 42)
      event=agent_started agent=demo run=demo/2026-12-06-10-57-13 pid=42 argv0=sh format=auto

(one line; cut here to fit).

JSON (``--log-format json``)::

    {"ts":"2026-12-06T10:57:13.123+01:00","level":"info","logger":"trio_wrapper.agents",
     "event":"agent_started","message":"agent demo started (pid 42)","agent":"demo",
     "run":"demo/2026-12-06-10-57-13","pid":42,"argv0":"sh","format":"auto"}

Every string that goes out (message, fields, traceback) passes the ``Redactor``: no
``access_token=`` value and no configured token is ever written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Final, Literal, TextIO

import msgspec

from trio_wrapper.core.redact import Redactor

LogFormat = Literal["text", "json"]
LOG_FORMATS: Final = ("text", "json")
LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
DEFAULT_EVENT: Final = "message"
# The keys every line has; an event field of the same name is dropped.
BASE_KEYS: Final = frozenset({"ts", "level", "logger", "event", "message", "exc"})
# The attributes every LogRecord has: anything else on a record came from ``extra``.
_RECORD_ATTRS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
# A text value written bare; anything else is written as a JSON string.
_BARE: Final = re.compile(r"[A-Za-z0-9_.,:/@+\-\[\]]+")
_encoder = msgspec.json.Encoder(enc_hook=str)


def event_fields(record: logging.LogRecord) -> dict[str, object]:
    """The fields a logging call added with ``extra``, but ``event``, in their order."""
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _RECORD_ATTRS and key not in BASE_KEYS and not key.startswith("_")
    }


def timestamp(created: float) -> str:
    return datetime.fromtimestamp(created).astimezone().isoformat(timespec="milliseconds")


class StructuredFormatter(logging.Formatter):
    """One record, one line: ``text`` (message, then ``key=value``) or ``json``."""

    def __init__(self, fmt: LogFormat = "text", secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.json = fmt == "json"
        self.redact = Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        message = self.redact(record.getMessage())
        event = getattr(record, "event", None)
        fields = {key: self._clean(value) for key, value in event_fields(record).items()}
        trace = self._trace(record)
        if self.json:
            line: dict[str, object] = {
                "ts": timestamp(record.created),
                "level": record.levelname.lower(),
                "logger": record.name,
                "event": str(event) if event is not None else DEFAULT_EVENT,
                "message": message,
                **fields,
            }
            if trace:
                line["exc"] = trace
            return _encoder.encode(line).decode()
        head = f"{timestamp(record.created)} {record.levelname} {record.name}: "
        # One line per event: a newline in a message cannot start a forged line.
        text = head + message.replace("\r", "\\r").replace("\n", "\\n")
        if event is not None:
            text += f" event={text_value(str(event))}"
        if fields:
            text += " " + pairs(fields)
        if trace:
            text += "\n" + trace
        return text

    def _clean(self, value: object) -> object:
        """Strings redacted, containers walked; anything else as it is."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {str(k): self._clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self._clean(v) for v in value]
        if value is None or isinstance(value, (bool, int, float)):
            return value
        return self.redact(str(value))

    def _trace(self, record: logging.LogRecord) -> str:
        parts = []
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return self.redact("\n".join(parts))


def text_value(value: object) -> str:
    """A value of a ``key=value`` pair: bare when it is one plain word, else JSON."""
    if isinstance(value, str):
        return value if _BARE.fullmatch(value) else _encoder.encode(value).decode()
    if isinstance(value, bool) or value is None:
        return _encoder.encode(value).decode()
    if isinstance(value, (int, float)):
        return repr(value)
    return _encoder.encode(value).decode()


def pairs(fields: Mapping[str, object]) -> str:
    return " ".join(f"{key}={text_value(value)}" for key, value in fields.items())


def configure(
    level: str,
    fmt: LogFormat,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
    logger: str = "",
) -> logging.Handler:
    """``logger`` (the root logger by default) writes to ``stream`` (stderr) through a
    ``StructuredFormatter`` at ``level``; the handlers it had are replaced. Returns the
    new handler."""
    handler: logging.Handler = logging.StreamHandler(stream)
    handler.setFormatter(StructuredFormatter(fmt, secrets))
    target = logging.getLogger(logger or None)
    for old in list(target.handlers):
        target.removeHandler(old)
    target.addHandler(handler)
    target.setLevel(level.upper())
    return handler


def log_format(name: str) -> LogFormat:
    """A checked ``logging.format`` (anything but ``json`` is text)."""
    return "json" if name == "json" else "text"
