"""JSON responses of the contract, shared by every route module."""

from __future__ import annotations

from typing import Any

import msgspec
from quart import Response

from trio_wrapper.core.errors import ApiError

JSON_TYPE = "application/json; charset=utf-8"
_encoder = msgspec.json.Encoder()


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(_encoder.encode(payload), status=status, content_type=JSON_TYPE)


def error_response(err: ApiError) -> Response:
    response = json_response(err.body(), err.status)
    if err.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="trio_wrapper"'
    return response
