"""Agent names: what the contract allows. Pure."""

from __future__ import annotations

import re

from trio_wrapper.core.errors import Refusal

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise Refusal(
            "invalid_name",
            "name must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ (letters, digits, '.', '_', '-')",
        )
