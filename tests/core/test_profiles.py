"""A create request resolved into a spec, without HTTP: the three command forms."""

from __future__ import annotations

from typing import Any

import pytest

from trio_wrapper.config import Profile, load_config
from trio_wrapper.core.errors import Refusal
from trio_wrapper.core.models import AgentCreate
from trio_wrapper.core.profiles import resolve_spec

PROFILES = {
    "echo": Profile(command=["echo", "{prompt}"], format="text"),
    "fixed": Profile(command=["true"]),
    "cli": Profile(
        command=["cli", "-p", "{prompt}", "{permissions}", "--json"],
        permissions=["--allow", "shell"],
    ),
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


def test_permissions_are_the_profiles_unless_the_request_gives_its_own() -> None:
    shipped = resolve_spec(AgentCreate(name="c", profile="cli", prompt="go"), PROFILES, "auto")
    assert shipped.command == ["cli", "-p", "go", "--allow", "shell", "--json"]
    own = resolve_spec(
        AgentCreate(name="c", profile="cli", prompt="go", permissions=["--ask", "{prompt}"]),
        PROFILES,
        "auto",
    )
    # The request's flags replace the profile's, as they are ({prompt} is not filled in).
    assert own.command == ["cli", "-p", "go", "--ask", "{prompt}", "--json"]
    none = AgentCreate(name="c", profile="cli", prompt="go", permissions=[])
    assert resolve_spec(none, PROFILES, "auto").command == ["cli", "-p", "go", "--json"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"command": ["ls"], "permissions": ["-y"]}, "'permissions' goes with 'profile'"),
        ({"profile": "fixed", "permissions": ["-y"]}, "takes no 'permissions'"),
        ({"profile": "cli", "prompt": "x", "permissions": ["a\x00b"]}, "must not contain NUL"),
    ],
)
def test_permissions_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(Refusal) as caught:
        resolve(name="c", **fields)
    assert caught.value.code == "invalid_request"
    assert message in str(caught.value)


def test_shipped_profiles_give_unattended_flags() -> None:
    profiles = load_config(None, environ={}).profiles
    argv = {
        name: resolve_spec(
            AgentCreate(name="a", profile=name, prompt="P"), profiles, "auto"
        ).command
        for name in ("claude", "codex", "gemini", "aider")
    }
    assert argv["claude"] == [
        "claude", "-p", "P", "--output-format", "stream-json", "--verbose",
        "--permission-mode", "acceptEdits", "--allowedTools", "Bash",
    ]  # fmt: skip
    assert argv["codex"] == [
        "codex", "exec", "--json", "--skip-git-repo-check", "--sandbox", "workspace-write", "P",
    ]  # fmt: skip
    assert argv["gemini"] == [
        "gemini", "-p", "P", "--output-format", "stream-json", "--skip-trust",
        "--approval-mode", "yolo",
    ]  # fmt: skip
    assert argv["aider"] == [
        "aider", "--message", "P", "--no-pretty", "--no-check-update", "--analytics-disable",
        "--no-show-model-warnings", "--yes-always",
    ]  # fmt: skip


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


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"env": {"A\x00B": "1"}}, "'A\\x00B'"),
        ({"env": {"A=B": "1"}}, "'A=B'"),
        ({"env": {"": "1"}}, "must not be empty"),
        ({"env": {"OK": "1", "HOME": "x\x00y"}}, "'HOME'"),
        ({"env": {"K": "\ud800"}}, "'K'"),
        ({"env": {"\ud800": "v"}}, "surrogate"),
        ({"cwd": "/tmp\x00/x"}, "cwd"),
        ({"command": ["echo", "\ud800"]}, "command"),
        ({"timeout_seconds": float("inf")}, "finite"),
        ({"timeout_seconds": float("nan")}, "finite"),
    ],
)
def test_what_the_os_cannot_take_is_a_400_naming_it(fields: dict[str, Any], needle: str) -> None:
    """These reached subprocess before: ValueError ("embedded null byte", "illegal
    environment variable name") or UnicodeEncodeError, each a 500."""
    with pytest.raises(Refusal) as info:
        resolve(**{"name": "a", "command": ["true"], **fields})
    assert info.value.code == "invalid_request"
    assert needle in info.value.message


def test_a_huge_env_key_is_cut_in_the_message() -> None:
    with pytest.raises(Refusal) as info:
        resolve(name="a", command=["true"], env={"=" * 100_000: "1"})
    assert len(info.value.message) < 200


def test_a_lone_low_surrogate_is_taken_as_the_os_takes_it() -> None:
    # surrogateescape: "\udc80" stands for the byte 0x80 (a non-UTF-8 file name).
    assert resolve_spec(
        AgentCreate(name="a", command=["echo", "\udc80"]), PROFILES, "auto"
    ).command == ["echo", "\udc80"]


def test_name_length_is_the_configured_one() -> None:
    body = AgentCreate(name="n" * 65, command=["true"])
    with pytest.raises(Refusal) as info:
        resolve_spec(body, PROFILES, "auto")
    assert info.value.code == "invalid_name" and "1 to 64" in info.value.message
    assert resolve_spec(body, PROFILES, "auto", max_name_length=65).name == "n" * 65


def test_interactive_settings_from_the_request_or_the_profile() -> None:
    tui = {"tui": Profile(command=["cli"], waiting_pattern="^>$", enter="\n")}
    spec = resolve_spec(AgentCreate(name="t", profile="tui", pty=True, stdin=True), tui, "auto")
    assert (spec.waiting_pattern, spec.enter, spec.pty_size) == ("^>$", "\n", (24, 80))
    own = AgentCreate(name="t", profile="tui", pty=True, waiting_pattern="^\\$ $", pty_size=[9, 20])
    spec = resolve_spec(own, tui, "auto")
    assert (spec.waiting_pattern, spec.pty_size) == ("^\\$ $", (9, 20))
    plain = resolve_spec(AgentCreate(name="p", command=["x"]), tui, "auto")
    assert (plain.waiting_pattern, plain.enter, plain.pty_size) == (None, "\r", None)
    with pytest.raises(Refusal, match="'waiting_pattern' goes with 'pty'"):
        resolve_spec(AgentCreate(name="p", command=["x"], waiting_pattern=">"), tui, "auto")
