"""Request bodies and query strings, decoded into the models of ``core.models``."""

from __future__ import annotations

from typing import TypeVar

import msgspec
from quart import request

from trio_wrapper.core.errors import Refusal, invalid_request

T = TypeVar("T")


async def read_json(model: type[T], max_bytes: int) -> T:
    if request.mimetype != "application/json":
        raise Refusal("unsupported_media_type", "send the body as application/json")
    if request.content_length is not None and request.content_length > max_bytes:
        raise Refusal("body_too_large", f"request body larger than {max_bytes} bytes")
    body = await request.get_data(cache=False, as_text=False)
    try:
        return msgspec.json.decode(body, type=model)
    except msgspec.ValidationError as exc:
        raise invalid_request(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise invalid_request(f"malformed JSON: {exc}") from exc


def parse_query(model: type[T]) -> T:
    try:
        return msgspec.convert(dict(request.args), model, strict=False)
    except msgspec.ValidationError as exc:
        raise invalid_request(f"bad query string: {exc}") from exc
