"""Errors answered below Quart, in the contract's JSON too.

Two places answer a request before any route sees it:

- hypercorn's HTTP/1.1 protocol, when h11 cannot parse a request (a bad request line or
  header, a ``Content-Length`` that is not a number: 400) or its head grows past
  ``h11_max_incomplete_size`` (431). hypercorn sends these with an empty body; its one
  method that does so (``H11Protocol._send_error_response``) is replaced here by one that
  sends ``{"error": {"code", "message"}}``, the same status and headers otherwise.
- ``head_refusal``: a head within h11's buffer (it arrived whole in one read) but above
  ``limits.max_header_bytes`` (and every head over HTTP/2, which h11 never sees).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import h11
import msgspec
from hypercorn.events import RawData
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.typing import ASGISendCallable, HTTPScope, Scope

from trio_wrapper.api.errors import CODE_OF_STATUS, HttpRefusal, http_status
from trio_wrapper.core.errors import Refusal
from trio_wrapper.runtime.eventlog import LIMIT_LOG

JSON_TYPE: Final = b"application/json; charset=utf-8"
HEADERS_TOO_LARGE: Final = "headers_too_large"


def protocol_refusal(status: int, max_head_bytes: int) -> HttpRefusal:
    """What a status h11 chose (``error_status_hint``) means for a client."""
    if status == 431:
        return HttpRefusal(
            431,
            HEADERS_TOO_LARGE,
            f"request line and headers larger than {max_head_bytes} bytes "
            "(limits.max_header_bytes)",
        )
    if status == 400:
        return HttpRefusal(400, "invalid_request", "malformed HTTP request")
    return HttpRefusal(status, CODE_OF_STATUS.get(status, "http_error"), "HTTP protocol error")


def error_body(err: Refusal) -> bytes:
    return msgspec.json.encode(err.body())


async def _send_json_error_response(self: H11Protocol, status_code: int) -> None:
    """``H11Protocol._send_error_response`` with a JSON body (hypercorn 0.18's code, plus
    the body and its type). The three h11 events become bytes at once and go out in one
    write: the app may already be answering the same request (h11 failed on its body),
    and its response must not come between our head and our body."""
    refusal = protocol_refusal(status_code, self.config.h11_max_incomplete_size)
    LIMIT_LOG.refused(refusal)
    body = error_body(refusal)
    headers = [
        (b"content-length", str(len(body)).encode()),
        (b"content-type", JSON_TYPE),
        (b"connection", b"close"),
        *self.config.response_headers("h11"),
    ]
    events = (
        h11.Response(status_code=status_code, headers=headers),
        h11.Data(data=body),
        h11.EndOfMessage(),
    )
    try:
        data = b"".join(self.connection.send(event) or b"" for event in events)
    except h11.LocalProtocolError:
        if self.connection.their_state != h11.ERROR:
            raise
        return  # as hypercorn: an answer h11 no longer allows is not sent
    await self.send(RawData(data=data))


def install_json_protocol_errors() -> None:
    """Make hypercorn's own HTTP/1.1 error answers JSON (idempotent, process-wide: the
    daemon serves one app)."""
    if not hasattr(H11Protocol, "_send_error_response"):
        # A hypercorn without this method answers as it likes; the hostile-request tests
        # then fail and say so, rather than the daemon failing to start.
        return
    H11Protocol._send_error_response = _send_json_error_response  # type: ignore[method-assign]


def head_size(scope: HTTPScope) -> int:
    """The request's head as h11 counts it: request line and header lines with CRLFs."""
    # raw_path may be None (ASGI); the path is then as long, near enough.
    path = scope.get("raw_path") or scope["path"].encode("utf-8", "replace")
    line = len(scope["method"]) + len(path) + len(" HTTP/1.1\r\n ")
    query = scope["query_string"]
    headers = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
    return line + (len(query) + 1 if query else 0) + headers


def head_refusal(scope: Scope, max_head_bytes: int) -> HttpRefusal | None:
    """A 431 for an HTTP request whose head is larger than ``max_head_bytes``."""
    if scope["type"] != "http":
        return None
    size = head_size(scope)
    if size <= max_head_bytes:
        return None
    return HttpRefusal(
        431,
        HEADERS_TOO_LARGE,
        f"request line and headers of {size} bytes, more than {max_head_bytes} "
        "(limits.max_header_bytes)",
    )


async def send_error(
    send: ASGISendCallable, err: Refusal, extra: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """An error answer straight over ASGI (no Quart request behind it); ``extra``
    headers, e.g. ``connection: close`` when the request's body is left unread."""
    body = error_body(err)
    await send(
        {
            "type": "http.response.start",
            "status": http_status(err),
            "headers": [
                (b"content-type", JSON_TYPE),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
