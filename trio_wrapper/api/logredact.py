"""No bearer token in a log line: ``?access_token=…`` in any message or argument is
replaced by ``[redacted]``, and so are the token-bearing fields of hypercorn's access-log
atoms (the ``Authorization`` header, the ``TRIO_WRAPPER_AUTH_TOKEN`` environment entry).

Done where every record is made (the log record factory), so it holds for every logger
and handler, hypercorn's access log included when one is configured (``hypercorn -k trio
--access-logfile -`` over ``create_app()``); the daemon itself writes no access log.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any, Final

from trio_wrapper.core.redact import REDACTED, redact

# hypercorn's access-log atoms that hold a token: a request header, an environment entry.
_SECRET_ATOMS: Final = frozenset({"{authorization}i", "{trio_wrapper_auth_token}e"})
_MARK: Final = "_trio_wrapper_redacts"


def _redacted(value: Any) -> Any:
    if isinstance(value, str) and "token" in value.lower():
        return redact(value)
    return value


def redact_record(record: logging.LogRecord) -> None:
    if isinstance(record.msg, str):
        record.msg = _redacted(record.msg)
    args = record.args
    if isinstance(args, tuple):
        record.args = tuple(_redacted(arg) for arg in args)
    elif isinstance(args, MutableMapping):
        # In place: hypercorn's atoms are a dict subclass whose lookups must keep working.
        for key, value in list(args.items()):
            args[key] = REDACTED if key in _SECRET_ATOMS else _redacted(value)


def install_log_redaction() -> None:
    """Redact every log record made from now on in this process (idempotent)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, _MARK, False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redact_record(record)
        return record

    setattr(factory, _MARK, True)
    logging.setLogRecordFactory(factory)


__all__ = ["REDACTED", "install_log_redaction", "redact", "redact_record"]
