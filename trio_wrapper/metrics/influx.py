"""InfluxDB line protocol, as InfluxDB 1.x ``/write`` (and 2.x, Telegraf) reads it. Pure.

One point is ``measurement[,tag=value...] field=value[,field=value...] timestamp``.
Each part has its own escaping rules; getting one wrong makes InfluxDB reject the whole
batch or, worse, store a different name:

- measurement: ``,`` and space are escaped;
- tag keys, tag values and field keys: ``,``, ``=`` and space are escaped;
- string field values are double-quoted, with ``"`` and ``\\`` escaped;
- integers carry an ``i`` suffix (else they are stored as floats, and a later integer
  write to the same field is refused); booleans are ``true``/``false``.

What the format cannot carry (checked against a real InfluxDB 1.6 in the tests):

- a line break in a name or tag value (no escape exists): it becomes a space;
- a backslash in a name or tag value that ends it or stands right before a character we
  escape: InfluxDB 1.x reads ``\\\\`` there as two backslashes and ``\\`` + ``,`` as an
  escaped comma, so the backslash would swallow our escape. It becomes ``/``. Every other
  backslash is kept as it is, which InfluxDB reads back unchanged;
- an empty tag value (InfluxDB drops it): the tag is left out;
- ``None``, NaN and infinities (InfluxDB has no null and refuses them): the field is left
  out, and a point with no field left is not written at all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

FieldValue = int | float | bool | str | None
Point = tuple[str, Mapping[str, str], Mapping[str, FieldValue]]

# No escape exists for a line break: it becomes an (escaped) space.
_LINE_BREAKS = {"\n": r"\ ", "\r": r"\ "}
_MEASUREMENT = str.maketrans({**_LINE_BREAKS, ",": r"\,", " ": r"\ "})
_KEY = str.maketrans({**_LINE_BREAKS, ",": r"\,", "=": r"\=", " ": r"\ "})
_STRING_FIELD = str.maketrans({'"': r"\"", "\\": "\\\\"})
_LOOSE_BACKSLASH_MEASUREMENT = re.compile(r"\\(?=[, \n\r]|\Z)")
_LOOSE_BACKSLASH_KEY = re.compile(r"\\(?=[,= \n\r]|\Z)")


class LineProtocolError(ValueError):
    """A point that cannot be written: an empty or comment-like name."""


def escape_measurement(name: str) -> str:
    if not name:
        raise LineProtocolError("empty measurement name")
    if name.startswith("#"):
        # InfluxDB reads such a line as a comment, and has no escape for it.
        raise LineProtocolError(f"measurement name {name!r} starts with '#'")
    if "\\" in name:
        name = _LOOSE_BACKSLASH_MEASUREMENT.sub("/", name)
    return name.translate(_MEASUREMENT)


def escape_key(key: str) -> str:
    """Tag keys, tag values and field keys share one rule."""
    if "\\" in key:
        key = _LOOSE_BACKSLASH_KEY.sub("/", key)
    return key.translate(_KEY)


def format_field_value(value: int | float | bool | str) -> str:
    # bool before int: True is an int to Python but a boolean to InfluxDB.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return '"' + value.translate(_STRING_FIELD) + '"'


def format_point(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue],
    timestamp_ns: int | None = None,
) -> str | None:
    """One point as a line without its newline; ``None`` when it has no field to write."""
    field_parts = []
    for key, value in fields.items():
        if not key:
            raise LineProtocolError("empty field key")
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            continue
        field_parts.append(f"{escape_key(key)}={format_field_value(value)}")
    if not field_parts:
        return None
    parts = [escape_measurement(measurement)]
    # Tags sorted by key are how InfluxDB stores a series key: sorting here saves it work.
    for key in sorted(tags):
        if not key:
            raise LineProtocolError("empty tag key")
        tag_value = tags[key]
        if tag_value:
            parts.append(f",{escape_key(key)}={escape_key(tag_value)}")
    parts.append(" ")
    parts.append(",".join(field_parts))
    if timestamp_ns is not None:
        parts.append(f" {timestamp_ns}")
    return "".join(parts)


def format_points(points: Iterable[Point], timestamp_ns: int | None = None) -> str:
    """A batch: one line per point that has fields, each ending in a newline."""
    lines = []
    for measurement, tags, fields in points:
        line = format_point(measurement, tags, fields, timestamp_ns)
        if line is not None:
            lines.append(line)
            lines.append("\n")
    return "".join(lines)
