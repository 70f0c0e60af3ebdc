"""What no log line may hold: the bearer token, in ``?access_token=…`` or anywhere else.

``redact`` replaces the query parameter's value; ``Redactor`` also replaces the configured
token itself wherever it appears (a handler that printed a header, a URL, an argv).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

REDACTED: Final = "[redacted]"
# The query parameter, also percent-encoded the way werkzeug still decodes it.
_QUERY_TOKEN: Final = re.compile(r"(access(?:_|%5f)token=)[^&\s\"']*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the value of any ``access_token=`` replaced by ``[redacted]``."""
    if "token" not in text.lower():
        return text
    return _QUERY_TOKEN.sub(rf"\1{REDACTED}", text)


class Redactor:
    """``redact`` plus the literal secrets given (empty ones ignored)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return redact(text)
