"""Error messages that name the valid values: msgspec says ``Invalid enum value 'xml' - at
`$.format``` without the list; ``with_choices`` adds ``(one of: auto, text, …)`` from the
model's ``Literal`` type, so a client learns what to send instead."""

from __future__ import annotations

import re
import types
from typing import Any, Final, Literal, Union, get_args, get_origin

import msgspec

_ENUM: Final = re.compile(r"Invalid enum value .* - at `\$\.(?P<field>[A-Za-z_][A-Za-z0-9_]*)`")


def literal_values(annotation: Any) -> tuple[str, ...]:
    """The values of the ``Literal`` in ``annotation`` (also inside ``X | None``)."""
    origin = get_origin(annotation)
    if origin is Literal:
        return tuple(str(value) for value in get_args(annotation))
    if origin in (Union, types.UnionType):
        return tuple(v for arg in get_args(annotation) for v in literal_values(arg))
    return ()


def field_choices(model: type[msgspec.Struct], field: str) -> tuple[str, ...]:
    """The valid values of ``model``'s field named ``field`` on the wire, or ()."""
    for info in msgspec.structs.fields(model):
        if info.encode_name == field:
            return literal_values(info.type)
    return ()


def one_of(values: tuple[str, ...] | list[str]) -> str:
    return f"(one of: {', '.join(values)})"


def with_choices(message: str, model: type[Any]) -> str:
    """``message`` (msgspec's, for ``model``) with the valid values added when it refuses
    an enum value of a top-level field; other messages are returned as they are."""
    match = _ENUM.search(message)
    if match is None or not isinstance(model, type) or not issubclass(model, msgspec.Struct):
        return message
    values = field_choices(model, match["field"])
    return f"{message} {one_of(values)}" if values else message
