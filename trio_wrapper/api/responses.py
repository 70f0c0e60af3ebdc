"""JSON responses of the contract, shared by every route module."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from quart import Response

from trio_wrapper.api.errors import http_status
from trio_wrapper.core.errors import Refusal
from trio_wrapper.core.models import ErrorBody, ErrorResponse

JSON_TYPE = "application/json; charset=utf-8"
_encoder = msgspec.json.Encoder()


def json_response(payload: msgspec.Struct | Mapping[str, object], status: int = 200) -> Response:
    """``payload`` is one of the models of ``core.models`` (a mapping only where another
    module still builds one)."""
    return Response(_encoder.encode(payload), status=status, content_type=JSON_TYPE)


def error_response(err: Refusal) -> Response:
    status = http_status(err)
    response = json_response(ErrorResponse(ErrorBody(err.code, err.message)), status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="trio_wrapper"'
    return response
