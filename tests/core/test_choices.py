"""core.choices: the valid values added to msgspec's enum messages."""

from __future__ import annotations

from typing import Literal

import msgspec
import pytest

from trio_wrapper.core.choices import field_choices, literal_values, with_choices


class Model(msgspec.Struct):
    color: Literal["red", "green"] = "red"
    size: Literal["s", "m"] | None = None
    count: int = 0
    tag: str = msgspec.field(default="", name="tag-name")


def refusal(body: bytes) -> str:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(body, type=Model)
    return str(caught.value)


def test_literal_values_also_inside_an_optional() -> None:
    assert literal_values(Literal["a", "b"]) == ("a", "b")
    assert literal_values(Literal["a"] | None) == ("a",)
    assert literal_values(int) == ()


def test_field_choices_by_wire_name() -> None:
    assert field_choices(Model, "color") == ("red", "green")
    assert field_choices(Model, "size") == ("s", "m")
    assert field_choices(Model, "count") == ()
    assert field_choices(Model, "missing") == ()


def test_an_enum_refusal_gets_the_values() -> None:
    message = refusal(b'{"color": "blue"}')
    assert with_choices(message, Model) == f"{message} (one of: red, green)"
    message = refusal(b'{"size": "xl"}')
    assert with_choices(message, Model).endswith("(one of: s, m)")


def test_other_refusals_are_left_alone() -> None:
    message = refusal(b'{"count": "x"}')
    assert with_choices(message, Model) == message
    assert with_choices("Invalid enum value 'x' - at `$.count`", Model).endswith("`$.count`")
    assert with_choices("Invalid enum value 'x' - at `$.color`", dict) == (
        "Invalid enum value 'x' - at `$.color`"
    )
