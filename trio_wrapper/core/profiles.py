"""A create request becomes an argv: the three command forms of the contract. Pure.

``command`` as an argv list; the original's string ``command`` with ``args``; or a
``profile`` from the config whose ``{prompt}`` placeholders take the request's ``prompt``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol

from trio_wrapper.core.errors import Refusal, invalid_request
from trio_wrapper.core.interactive import check_pty_size, compile_pattern
from trio_wrapper.core.models import AgentCreate
from trio_wrapper.core.names import DEFAULT_MAX_NAME_LENGTH, check_name
from trio_wrapper.core.spec import AgentSpec


class CommandProfile(Protocol):
    """What resolution reads of a configured profile (``config.Profile``)."""

    @property
    def command(self) -> Sequence[str]: ...

    @property
    def format(self) -> str: ...

    @property
    def permissions(self) -> Sequence[str]: ...

    @property
    def waiting_pattern(self) -> str: ...

    @property
    def enter(self) -> str: ...


# An argument that is exactly this becomes the profile's permission flags (several
# arguments, or none), or the request's ``permissions`` when it gives them.
PERMISSIONS = "{permissions}"


def resolve_spec(
    body: AgentCreate,
    profiles: Mapping[str, CommandProfile],
    default_format: str,
    *,
    max_name_length: int = DEFAULT_MAX_NAME_LENGTH,
) -> AgentSpec:
    """The spec a create request asks for; a ``Refusal`` says why it cannot be run."""
    check_name(body.name, max_length=max_name_length)
    if body.timeout_seconds is not None and not (
        math.isfinite(body.timeout_seconds) and body.timeout_seconds > 0
    ):
        # JSON's 1e400 decodes to infinity: a timer that never fires is no timeout.
        raise invalid_request("timeout_seconds must be a positive finite number")
    check_env(body.env)
    if body.cwd is not None:
        check_os_text(body.cwd, "cwd")
    fmt: str | None = body.format
    waiting_pattern, enter = body.waiting_pattern, "\r"
    if waiting_pattern is not None:
        if not body.pty:
            raise invalid_request("'waiting_pattern' goes with 'pty': true (a terminal's screen)")
        compile_pattern(waiting_pattern)
    pty_size = check_pty_size(body.pty_size, pty=body.pty)
    if body.profile is not None:
        if body.command is not None or body.args is not None:
            raise invalid_request("give either 'profile' or 'command', not both")
        profile = profiles.get(body.profile)
        if profile is None:
            raise Refusal("unknown_profile", f"no profile named {body.profile!r}")
        if any("{prompt}" in arg for arg in profile.command) and body.prompt is None:
            raise invalid_request(f"profile {body.profile!r} needs a 'prompt'")
        argv = expand(profile, body.prompt or "", body.permissions)
        fmt = fmt or profile.format
        if waiting_pattern is None and profile.waiting_pattern:
            waiting_pattern = profile.waiting_pattern
        enter = profile.enter
    else:
        if body.prompt is not None:
            raise invalid_request("'prompt' goes with 'profile'")
        if body.permissions is not None:
            raise invalid_request("'permissions' goes with 'profile'")
        if body.command is None:
            raise invalid_request("'command' (argv list) or 'profile' is required")
        if isinstance(body.command, str):
            argv = [body.command, *(body.args or [])]
        else:
            if body.args is not None:
                raise invalid_request("'args' goes with a string 'command'")
            argv = list(body.command)
    if not argv or not argv[0]:
        raise invalid_request("'command' must name an executable")
    for arg in argv:
        check_os_text(arg, "command arguments")
    return AgentSpec(
        name=body.name,
        command=argv,
        cwd=body.cwd,
        env=dict(body.env),
        format=fmt or default_format,
        stdin=body.stdin,
        pty=body.pty,
        timeout_seconds=body.timeout_seconds,
        profile=body.profile,
        pty_size=pty_size,
        waiting_pattern=waiting_pattern,
        enter=enter,
    )


def expand(profile: CommandProfile, prompt: str, permissions: Sequence[str] | None) -> list[str]:
    """The profile's argv: ``{prompt}`` substrings replaced by the prompt, an argument
    ``{permissions}`` by the permission flags (the request's, else the profile's)."""
    if permissions is not None and PERMISSIONS not in profile.command:
        raise invalid_request("this profile takes no 'permissions' (no {permissions} argument)")
    flags = list(profile.permissions if permissions is None else permissions)
    argv: list[str] = []
    for arg in profile.command:
        if arg == PERMISSIONS:
            argv.extend(flags)
        else:
            argv.append(arg.replace("{prompt}", prompt))
    return argv


def check_env(env: Mapping[str, str]) -> None:
    """What the OS can take as an environment: ``execve`` gets ``KEY=value`` C strings, so
    a NUL cuts them and a key with ``=`` (or none at all) would set another variable."""
    for key, value in env.items():
        if not key:
            raise invalid_request("env: a variable name must not be empty")
        if "=" in key:
            raise invalid_request(f"env: variable name {_shown(key)} must not contain '='")
        check_os_text(key, f"env: variable name {_shown(key)}")
        check_os_text(value, f"env: the value of {_shown(key)}")


def check_os_text(text: str, what: str) -> None:
    """A ``Refusal`` naming ``what`` unless ``text`` can go to the OS as a C string: no
    NUL (subprocess raises ValueError), and encodable as the file system encoding does it
    (a lone surrogate is not: msgspec refuses them in JSON, but a spec may be built from
    elsewhere)."""
    if "\x00" in text:
        raise invalid_request(f"{what} must not contain NUL")
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise invalid_request(f"{what} must be valid Unicode (no lone surrogates)") from None


def _shown(text: str, limit: int = 64) -> str:
    """``text`` quoted for an error message, cut so a huge key cannot make a huge answer."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}…"
