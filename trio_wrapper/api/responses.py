"""JSON responses of the contract, shared by every route module."""

from __future__ import annotations

from typing import Any

import msgspec
from quart import Response

from trio_wrapper.api.errors import http_status
from trio_wrapper.core.errors import Refusal

JSON_TYPE = "application/json; charset=utf-8"
_encoder = msgspec.json.Encoder()


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(_encoder.encode(payload), status=status, content_type=JSON_TYPE)


def error_response(err: Refusal) -> Response:
    status = http_status(err)
    response = json_response(err.body(), status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="trio_wrapper"'
    return response
