"""A create request resolved into a spec, without HTTP: the three command forms."""

from __future__ import annotations

from typing import Any

import pytest

from trio_wrapper.config import Profile
from trio_wrapper.core.errors import Refusal
from trio_wrapper.core.models import AgentCreate
from trio_wrapper.core.profiles import resolve_spec

PROFILES = {
    "echo": Profile(command=["echo", "{prompt}"], format="text"),
    "fixed": Profile(command=["true"]),
}


def resolve(**fields: Any) -> object:
    return resolve_spec(AgentCreate(**fields), PROFILES, "auto")


def test_argv_list() -> None:
    spec = resolve_spec(
        AgentCreate(name="a", command=["ls", "-l"], env={"X": "1"}, stdin=True),
        PROFILES,
        "auto",
    )
    assert (spec.name, spec.command, spec.env, spec.stdin, spec.format) == (
        "a",
        ["ls", "-l"],
        {"X": "1"},
        True,
        "auto",
    )


def test_string_command_with_args() -> None:
    spec = resolve_spec(AgentCreate(name="a", command="echo", args=["x y"]), PROFILES, "text")
    assert spec.command == ["echo", "x y"] and spec.format == "text"


def test_profile_fills_the_prompt_and_gives_its_format() -> None:
    spec = resolve_spec(AgentCreate(name="p", profile="echo", prompt="hi $HOME"), PROFILES, "auto")
    assert spec.command == ["echo", "hi $HOME"]
    assert spec.format == "text" and spec.profile == "echo"
    explicit = resolve_spec(
        AgentCreate(name="p", profile="echo", prompt="x", format="none"), PROFILES, "auto"
    )
    assert explicit.format == "none"
    # A profile without {prompt} needs none.
    assert resolve_spec(AgentCreate(name="f", profile="fixed"), PROFILES, "auto").command == [
        "true"
    ]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"name": "bad name", "command": ["true"]}, "invalid_name"),
        ({"name": "a"}, "invalid_request"),
        ({"name": "a", "command": []}, "invalid_request"),
        ({"name": "a", "command": [""]}, "invalid_request"),
        ({"name": "a", "command": ["x\x00"]}, "invalid_request"),
        ({"name": "a", "command": ["true"], "args": ["x"]}, "invalid_request"),
        ({"name": "a", "command": ["true"], "prompt": "x"}, "invalid_request"),
        ({"name": "a", "command": ["true"], "profile": "echo"}, "invalid_request"),
        ({"name": "a", "command": ["true"], "timeout_seconds": 0}, "invalid_request"),
        ({"name": "a", "profile": "echo"}, "invalid_request"),
        ({"name": "a", "profile": "missing", "prompt": "x"}, "unknown_profile"),
    ],
)
def test_refusals(fields: dict[str, object], code: str) -> None:
    with pytest.raises(Refusal) as info:
        resolve(**fields)
    assert info.value.code == code
