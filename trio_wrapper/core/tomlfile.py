"""Reading a TOML file the user wrote, with a one-line reason when it cannot be read."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


class TomlFileError(Exception):
    """Why a TOML file could not be read; the message names the file."""


def read_toml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise TomlFileError(f"{path}: cannot read: file not found") from None
    except OSError as exc:
        raise TomlFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TomlFileError(f"{path}: invalid TOML: {exc}") from None
