"""What the client prints: aligned tables, records and stream events as one line each,
colour only when asked (a terminal, and no ``NO_COLOR``). Pure: strings in, strings out."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from trio_wrapper.client.sse import SseEvent
from trio_wrapper.core.status import Status

RESET = "\x1b[0m"
STATUS_COLOURS: Mapping[str, str] = {
    "starting": "\x1b[36m",  # cyan
    "running": "\x1b[32m",  # green
    "stopping": "\x1b[33m",  # yellow
    "completed": "\x1b[34m",  # blue
    "failed": "\x1b[31m",  # red
    "stopped": "\x1b[33m",  # yellow
    "interrupted": "\x1b[35m",  # magenta
}
RED, CYAN, DIM, BOLD = "\x1b[31m", "\x1b[36m", "\x1b[2m", "\x1b[1m"
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")

# How a stream event is marked when colour is off (and after the colour when on).
STDERR_MARK = "stderr| "
RECORD_MARK = "» "
STATE_MARK = "-- "

TERMINAL_STATES = frozenset(status.value for status in Status if status.is_terminal)
SHORT = 100  # characters of a record's text shown on one line


class Style:
    """Colour on or off."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def paint(self, text: str, code: str) -> str:
        return f"{code}{text}{RESET}" if self.colour and code and text else text

    def status(self, status: str) -> str:
        return self.paint(status, STATUS_COLOURS.get(status, ""))


def visible_len(text: str) -> int:
    return len(ANSI.sub("", text))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """Columns padded to their widest cell (colour codes not counted), two spaces apart;
    columns whose index is in ``right`` are right-aligned (numbers)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], visible_len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = []
        for i, cell in enumerate(row):
            pad = " " * (widths[i] - visible_len(cell))
            cells.append(pad + cell if i in right else cell + pad)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def one_line(text: str, limit: int = SHORT) -> str:
    """``text`` on one line (newlines shown as ``⏎``), cut to ``limit`` characters."""
    flat = text.replace("\r\n", "\n").replace("\n", " ⏎ ").strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def dash(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def number(value: object) -> str:
    """Integers with thousands separators, other numbers as they are, None as ``-``."""
    if isinstance(value, bool) or value is None:
        return dash(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return str(value)


def cost(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"${value:,.4f}"
    return "-"


def size(n: object) -> str:
    """Bytes for people: ``512 B``, ``1.5 KiB``, ``3.2 MiB``."""
    if not isinstance(n, int):
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # unreachable


def seconds(value: object) -> str:
    """A duration in seconds as ``1h02m03s`` / ``4m05s`` / ``2.5s``."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    if value < 60:
        return f"{value:.1f}s" if value % 1 else f"{int(value)}s"
    whole = int(value)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def when(timestamp: object) -> str:
    """An RFC 3339 time of the daemon as ``2026-12-06 08:26:09`` (its own local time,
    without milliseconds and offset): short enough for a table."""
    if not isinstance(timestamp, str) or len(timestamp) < 19:
        return dash(timestamp)
    return timestamp[:10] + " " + timestamp[11:19]


def command_line(argv: object) -> str:
    if isinstance(argv, list):
        return shlex.join(str(a) for a in argv)
    return dash(argv)


def ended(agent: Mapping[str, Any]) -> str:
    """How a run ended, in a few words: ``exit 0``, ``SIGTERM``, ``-``."""
    if agent.get("exit_code") is not None:
        return f"exit {agent['exit_code']}"
    if agent.get("signal"):
        return str(agent["signal"])
    return "-"


def record(rec: Mapping[str, Any]) -> str:
    """An extraction record (docs/api.md, section 6) as ``type: what``."""
    kind = str(rec.get("type", "?"))
    if kind == "session":
        what = f"{rec.get('key')} = {one_line(str(rec.get('value', '')))}"
    elif kind in ("prompt", "response"):
        what = one_line(str(rec.get("text", "")))
    elif kind == "code_block":
        lang = rec.get("language") or "text"
        content = one_line(str(rec.get("content", "")), 60)
        what = f"{lang}, {rec.get('line_count', 0)} line(s): {content}"
    elif kind == "tool_call":
        status = str(rec.get("status") or "")
        if rec.get("exit_code") is not None:
            status = f"{status}, exit {rec['exit_code']}" if status else f"exit {rec['exit_code']}"
        what = f"{rec.get('tool')}: {one_line(str(rec.get('input', '')))}"
        what += f" [{status}]" if status else ""
    elif kind == "file_op":
        what = f"{rec.get('op')} {rec.get('path')}"
    elif kind == "metric":
        unit = f" {rec['unit']}" if rec.get("unit") else ""
        what = f"{rec.get('key')} = {number(rec.get('value'))}{unit}"
    elif kind == "error":
        what = f"{one_line(str(rec.get('message', '')))} ({rec.get('source')})"
    elif kind == "state":
        detail = one_line(str(rec.get("detail") or ""))
        what = f"{rec.get('state')}" + (f": {detail}" if detail else "")
    else:
        what = one_line(str({k: v for k, v in rec.items() if k not in ("type", "line_num")}))
    return f"{kind}: {what}"


def stream_event(event: SseEvent, style: Style, *, prefix: str = "") -> str | None:
    """A stream event as the one line ``tail -f`` prints, or None for those it does not
    show (``connected``, ``ping``). stdout lines are printed as they are; the rest is
    marked (and coloured on a terminal). ``prefix`` (the agent's name on ``/api/events``)
    goes in front."""
    data = event.payload
    if event.event == "log":
        line = str(data.get("line", ""))
        if data.get("stream") == "stderr":
            return prefix + style.paint(STDERR_MARK, RED) + line
        return prefix + line
    if event.event == "extraction":
        return prefix + style.paint(RECORD_MARK + record(data), CYAN)
    if event.event == "state":
        if data.get("state") in TERMINAL_STATES:
            return None  # its `complete` follows, and says the same and more
        detail = f" ({data['detail']})" if data.get("detail") else ""
        state = str(data.get("state", "?"))
        return prefix + style.paint(STATE_MARK, BOLD) + style.status(state) + detail
    if event.event == "complete":
        how = f"exit {data['exit_code']}" if data.get("exit_code") is not None else "no exit code"
        took = seconds(data.get("duration_seconds"))
        status = style.status(str(data.get("status")))
        return prefix + style.paint(STATE_MARK, BOLD) + f"{status} ({how}, after {took})"
    if event.event == "gap":
        return prefix + style.paint(
            f"{STATE_MARK}{data.get('missed')} event(s) lost (the client fell behind)", DIM
        )
    if event.event == "shutdown":
        return prefix + style.paint(f"{STATE_MARK}the daemon is shutting down", DIM)
    return None
