"""Time formats of the contract: RFC 3339 stamps, Go-style durations, log file stamps."""

from __future__ import annotations

from datetime import datetime
from typing import overload

LOG_STAMP_FORMAT = "%Y-%m-%d-%H-%M-%S"  # the seed's file layout: 2026-02-10-05-44-30


def now_local() -> datetime:
    """An aware datetime in the daemon's local zone (the seed shows local offsets)."""
    return datetime.now().astimezone()


@overload
def rfc3339(moment: datetime) -> str: ...
@overload
def rfc3339(moment: None) -> None: ...
@overload
def rfc3339(moment: datetime | None) -> str | None: ...
def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat(timespec="milliseconds")


def parse_rfc3339(value: str | None) -> datetime | None:
    """A stamp written by :func:`rfc3339` read back; None if absent or unreadable."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def log_stamp(moment: datetime) -> str:
    return moment.strftime(LOG_STAMP_FORMAT)


def go_duration(seconds: float) -> str:
    """Like Go's ``time.Duration.Round(time.Second).String()``: 15h23m45s, 8m15s, 45s, 0s."""
    total = round(max(seconds, 0.0))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
