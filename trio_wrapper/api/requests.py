"""Request bodies and query strings, decoded into the models of ``core.models``."""

from __future__ import annotations

import re
import types
from itertools import accumulate
from typing import Any, Final, TypeVar, Union, cast, get_args, get_origin

import msgspec
from quart import request

from trio_wrapper.core.choices import with_choices
from trio_wrapper.core.errors import Refusal, invalid_request

T = TypeVar("T")
Q = TypeVar("Q", bound=msgspec.Struct)

# A query integer: ASCII digits only. str.isdigit() and int() also take "²" or "١٢"
# (int("²") even fails after isdigit() said yes); 18 digits keep it below 2**63.
DIGITS: Final = re.compile(r"[0-9]{1,18}\Z")

# JSON strings, to be skipped when counting brackets (unrolled: no backtracking).
_JSON_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")
_STEP: Final = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


def nesting_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether arrays and objects in ``body`` nest deeper than ``limit``. msgspec sets no
    depth limit of its own; our models stop a decode early, but the contract's limit is
    one clear answer whatever the model. Malformed JSON may count too deep: either way
    it is refused."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # the usual case, at the cost of two scans in C
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


async def read_json(model: type[T], max_bytes: int, max_depth: int) -> T:
    if request.mimetype != "application/json":
        raise Refusal("unsupported_media_type", "send the body as application/json")
    if request.content_length is not None and request.content_length > max_bytes:
        raise Refusal("body_too_large", f"request body larger than {max_bytes} bytes")
    # as_text=False: bytes (quart-trio's overloads do not say so).
    body = cast(bytes, await request.get_data(cache=False, as_text=False))
    if nesting_depth_exceeds(body, max_depth):
        raise invalid_request(f"JSON nested deeper than {max_depth} levels (limits.max_json_depth)")
    try:
        return msgspec.json.decode(body, type=model)
    except msgspec.ValidationError as exc:
        raise invalid_request(with_choices(str(exc), model)) from exc
    except msgspec.DecodeError as exc:
        raise invalid_request(f"malformed JSON: {exc}") from exc
    except RecursionError as exc:  # below the depth limit, but a deep stack already
        raise invalid_request("JSON nested too deeply") from exc


def _is_integer(annotation: Any) -> bool:
    if annotation is int:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return int in get_args(annotation)
    return False


def parse_query(model: type[Q]) -> Q:
    """``model`` from the query string. Integers are checked here (ASCII digits, at most
    18) because msgspec's lax conversion accepts more than a client should send."""
    args = dict(request.args)
    for field in msgspec.structs.fields(model):
        raw = args.get(field.encode_name)
        if raw is not None and _is_integer(field.type) and not DIGITS.match(raw):
            raise invalid_request(
                f"bad query string: {field.encode_name} must be a non-negative integer "
                "(ASCII digits, at most 18)"
            )
    try:
        return msgspec.convert(args, model, strict=False)
    except msgspec.ValidationError as exc:
        raise invalid_request(f"bad query string: {with_choices(str(exc), model)}") from exc
