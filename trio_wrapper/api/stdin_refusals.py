"""What a write to an agent's stdin that could not be made answers (``input``, ``message``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from trio_wrapper.core.errors import Refusal
from trio_wrapper.runtime.process import StdinBlocked, StdinClosed


@contextmanager
def stdin_refusals(name: str, what: str = "stdin") -> Iterator[None]:
    """409 ``stdin_not_open`` / ``stdin_blocked`` for a closed or unread stdin."""
    try:
        yield
    except StdinClosed:
        raise Refusal("stdin_not_open", f"agent {name!r} has no open stdin") from None
    except StdinBlocked:
        raise Refusal("stdin_blocked", f"agent {name!r} did not read its {what} in time") from None


__all__ = ["stdin_refusals"]
