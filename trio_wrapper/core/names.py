"""Agent names: what the contract allows. Pure."""

from __future__ import annotations

import re
from typing import Final

from trio_wrapper.core.errors import Refusal

# Letters, digits, '.', '_', '-', not starting with a punctuation mark: never a path
# separator, never '..', never a hidden file, never an option to a command.
NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
DEFAULT_MAX_NAME_LENGTH: Final = 64
# A name is a directory under logs_dir (its files are named by time stamp): well within a
# file system's 255 bytes per name. ``limits.max_name_length`` may not go above it.
MAX_NAME_LENGTH: Final = 200


def check_name(name: str, max_length: int = MAX_NAME_LENGTH) -> None:
    """A ``Refusal`` unless ``name`` is 1..``max_length`` characters of the pattern (the API
    passes ``limits.max_name_length``; without it, only the file system's bound holds)."""
    if len(name) > max_length or not NAME_RE.match(name):
        raise Refusal(
            "invalid_name",
            f"name must be 1 to {max_length} characters matching "
            "^[A-Za-z0-9][A-Za-z0-9._-]*$ (letters, digits, '.', '_', '-')",
        )
