"""Numbers as agents print them: ``5,244``, ``15k``, ``2.4k``, ``1.2M``, ``$0.04``."""

from __future__ import annotations

import re

_NUMBER = re.compile(r"\$?([0-9][0-9,_]*(?:\.[0-9]+)?|\.[0-9]+)\s*([kKmMbB]?)")
_SCALE = {"": 1, "k": 1_000, "m": 1_000_000, "b": 1_000_000_000}


def parse_number(text: str) -> int | float | None:
    """``"5,244"`` → 5244, ``"15k"`` → 15000, ``"2.4k"`` → 2400, ``"0.04"`` → 0.04.

    Whole results are ints so a token count stays an integer in JSON; anything that is
    not entirely a number gives None (the caller then emits nothing).
    """
    m = _NUMBER.fullmatch(text.strip())
    if m is None:
        return None
    digits, suffix = m.groups()
    digits = digits.replace(",", "").replace("_", "")
    scale = _SCALE[suffix.lower()]
    if "." in digits:
        value = float(digits) * scale
        return int(value) if suffix and value.is_integer() else value
    return int(digits) * scale
