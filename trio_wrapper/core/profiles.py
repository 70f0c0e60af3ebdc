"""A create request becomes an argv: the three command forms of the contract. Pure.

``command`` as an argv list; the original's string ``command`` with ``args``; or a
``profile`` from the config whose ``{prompt}`` placeholders take the request's ``prompt``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from trio_wrapper.core.errors import Refusal, invalid_request
from trio_wrapper.core.models import AgentCreate
from trio_wrapper.core.names import check_name
from trio_wrapper.core.spec import AgentSpec


class CommandProfile(Protocol):
    """What resolution reads of a configured profile (``config.Profile``)."""

    @property
    def command(self) -> Sequence[str]: ...

    @property
    def format(self) -> str: ...


def resolve_spec(
    body: AgentCreate, profiles: Mapping[str, CommandProfile], default_format: str
) -> AgentSpec:
    """The spec a create request asks for; a ``Refusal`` says why it cannot be run."""
    check_name(body.name)
    if body.timeout_seconds is not None and body.timeout_seconds <= 0:
        raise invalid_request("timeout_seconds must be positive")
    fmt: str | None = body.format
    if body.profile is not None:
        if body.command is not None or body.args is not None:
            raise invalid_request("give either 'profile' or 'command', not both")
        profile = profiles.get(body.profile)
        if profile is None:
            raise Refusal("unknown_profile", f"no profile named {body.profile!r}")
        if any("{prompt}" in arg for arg in profile.command) and body.prompt is None:
            raise invalid_request(f"profile {body.profile!r} needs a 'prompt'")
        argv = [arg.replace("{prompt}", body.prompt or "") for arg in profile.command]
        fmt = fmt or profile.format
    else:
        if body.prompt is not None:
            raise invalid_request("'prompt' goes with 'profile'")
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
    if any("\x00" in arg for arg in argv):
        raise invalid_request("command arguments must not contain NUL")
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
    )
