"""The line-protocol formatter: its rules, and a round trip through a real InfluxDB.

The round trip starts Debian's ``influxdb`` (1.x) server on a loopback port, writes
hostile names and values with our formatter and reads them back with InfluxQL; it is
skipped with a reason when ``influxd`` is not installed.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.metrics.support import agent_figures, snapshot
from tests.metrics.test_formatters import scrapes, unused_model
from trio_wrapper.metrics.influx import (
    LineProtocolError,
    Point,
    escape_key,
    escape_measurement,
    format_point,
    format_points,
)
from trio_wrapper.metrics.influx_view import InfluxView, influx_points, render_influx
from trio_wrapper.metrics.snapshot import AgentRows, MetricsSnapshot, SseFigures

# ---- the rules, without a server ---------------------------------------------------------


def test_escaping_rules_of_each_part() -> None:
    assert escape_measurement("a b,c=d") == r"a\ b\,c=d"  # '=' is plain in a measurement
    assert escape_key("a b,c=d") == r"a\ b\,c\=d"
    line = format_point("m", {"t": 'x"y'}, {"s": 'q"u\\o', "i": 3, "f": 1.5, "b": True}, 17)
    assert line == 'm,t=x"y s="q\\"u\\\\o",i=3i,f=1.5,b=true 17'


def test_empty_tags_none_and_non_finite_fields_are_left_out() -> None:
    fields = {"a": None, "b": float("nan"), "c": float("inf"), "d": 0}
    assert format_point("m", {"host": "", "z": "1"}, fields) == "m,z=1 d=0i"
    assert format_point("m", {}, {"a": None}) is None
    assert format_points([("m", {}, {"a": None}), ("n", {}, {"v": ""})], 5) == 'n v="" 5\n'


def test_tags_are_sorted_and_line_breaks_become_spaces() -> None:
    assert format_point("m\nx", {"b": "2", "a": "1\r\n"}, {"v": 1}) == r"m\ x,a=1\ \ ,b=2 v=1i"


def test_backslashes_that_would_swallow_an_escape_become_slashes() -> None:
    assert escape_key("a\\b") == "a\\b"  # kept: InfluxDB reads it back unchanged
    assert escape_key("a\\") == "a/"
    assert escape_key("a\\,b") == r"a/\,b"
    assert escape_measurement("m\\ x\\=") == r"m/\ x\="


def test_unwritable_names_are_refused() -> None:
    for bad in [("", {}, {"v": 1}), ("m", {"": "x"}, {"v": 1}), ("m", {}, {"": 1})]:
        with pytest.raises(LineProtocolError):
            format_point(*bad)
    with pytest.raises(LineProtocolError, match="#"):
        format_point("#m", {}, {"v": 1})


def test_contract_measurements_and_types() -> None:
    text = render_influx(snapshot(), "trio_wrapper", "box 1")
    lines = text.splitlines()
    assert lines[0].startswith("trio_wrapper,host=box\\ 1 uptime_seconds=54098.21,total_agents=2i,")
    assert lines[0].endswith(" 1770731070123456789")
    assert "trio_wrapper_extractions,host=box\\ 1,type=code_block count=8i 1770731070123456789" in (
        lines
    )
    agent = next(line for line in lines if line.startswith("trio_wrapper_agent,agent=codex-1,"))
    assert agent.startswith("trio_wrapper_agent,agent=codex-1,host=box\\ 1,status=running ")
    assert "exit_code" not in agent  # running: no value yet, and InfluxDB has no null
    assert ",sse_clients=2i " in agent
    assert text.endswith("\n")


names = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=10)


@given(
    name=names,
    host=st.text(alphabet=st.characters(codec="utf-8"), max_size=6),
    exit_code=st.none() | st.integers(-1000, 1000),
    duration=st.floats(min_value=0, allow_infinity=False),
)
def test_fast_agent_lines_equal_the_generic_formatter(
    name: str, host: str, exit_code: int | None, duration: float
) -> None:
    snap = snapshot(
        agents=[agent_figures(name, exit_code=exit_code, duration_seconds=duration)],
        sse=SseFigures({name: 3}),
    )
    generic = format_points(influx_points(snap, "ns", host), snap.timestamp_ns)
    assert render_influx(snap, "ns", host) == generic


@given(snaps=scrapes(), host=st.sampled_from(["h", "", "a b,c=d\\", "50%s"]))
def test_view_writes_what_the_generic_formatter_writes(
    snaps: list[MetricsSnapshot], host: str
) -> None:
    """The view keeps the per-agent format string while the layout holds: successive
    scrapes (agents coming, going, finishing, NaN durations) still read as a fresh
    generic render."""
    view = InfluxView(unused_model(), "ns%", host)
    for snap in snaps:
        generic = format_points(influx_points(snap, "ns%", host), snap.timestamp_ns)
        assert view.render_snapshot(snap) == generic
        # As the model hands the agents over: flat.
        flat = AgentRows(tuple(itertools.chain.from_iterable(snap.agents)))
        assert view.render_snapshot(dataclasses.replace(snap, agents=flat)) == generic


# ---- round trip through InfluxDB ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    influxd = shutil.which("influxd")
    if influxd is None:
        reason = "influxd not installed (Debian package 'influxdb'): no real parser to check"
        print(reason)
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("influxdb")
    http_port = _free_port()
    conf = home / "influxdb.conf"
    conf.write_text(
        f'reporting-enabled = false\nbind-address = "127.0.0.1:{_free_port()}"\n'
        f'[meta]\n  dir = "{home}/meta"\n'
        f'[data]\n  dir = "{home}/data"\n  wal-dir = "{home}/wal"\n  query-log-enabled = false\n'
        "[monitor]\n  store-enabled = false\n"
        f'[http]\n  bind-address = "127.0.0.1:{http_port}"\n  log-enabled = false\n'
        '[logging]\n  level = "error"\n'
    )
    log = (home / "influxd.log").open("wb")
    process = subprocess.Popen([influxd, "run", "-config", str(conf)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/ping", timeout=1).status_code == 204:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"influxd did not start: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _query(url: str, db: str, q: str) -> Any:
    response = httpx.get(f"{url}/query", params={"db": db, "q": q}, timeout=10)
    response.raise_for_status()
    return response.json()["results"][0]


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


HOSTILE = [
    "plain",
    "with space",
    "com,ma",
    "equ=als",
    'dou"ble',
    "back\\slash",
    'both \\ kinds, = and " of trouble',
    "unicode é ü ✓ 日本",
    "trailing space ",
    " leading",
    "ends in a backslash\\",
    "new\nline",
]


def stored_as(text: str, specials: str = ",= ") -> str:
    """What InfluxDB keeps of a name or tag value, by the module's documented rules."""
    text = text.replace("\n", " ").replace("\r", " ")
    return re.sub(r"\\(?=[" + specials + r"]|\Z)", "/", text)


def test_hostile_names_and_values_round_trip_through_influxdb(influxdb: str) -> None:
    db = "roundtrip"
    httpx.post(f"{influxdb}/query", data={"q": f"CREATE DATABASE {db}"}, timeout=10)
    points: list[Point] = []
    for i, text in enumerate(HOSTILE):
        points.append(
            (
                f"m {i},{text}",
                {"tag " + text: text, "i": str(i), "empty": ""},
                {f"f {text}": text, "n": i, "x": i + 0.25, "ok": i % 2 == 0, "none": None},
            )
        )
    points.append(("m empty", {"i": "empty"}, {"s": "", "nl": "line1\nline2"}))
    body = format_points(points, 1_770_731_070_123_456_789)
    response = httpx.post(
        f"{influxdb}/write", params={"db": db, "precision": "ns"}, content=body, timeout=10
    )
    assert response.status_code == 204, response.text

    measurements = {v[0] for v in _query(influxdb, db, "SHOW MEASUREMENTS")["series"][0]["values"]}
    assert measurements == {stored_as(p[0], ", ") for p in points}
    for measurement, tags, fields in points:
        result = _query(influxdb, db, f"SELECT * FROM {_ident(stored_as(measurement, ', '))}")
        (series,) = result["series"]
        row = dict(zip(series["columns"], series["values"][0], strict=True))
        assert row["time"] == "2026-02-10T13:44:30.123456789Z"
        expected: dict[str, Any] = {stored_as(k): stored_as(v) for k, v in tags.items() if v}
        # String field values come back exactly: their escaping loses nothing.
        expected.update({stored_as(k): v for k, v in fields.items() if v is not None})
        got = {k: v for k, v in row.items() if k != "time" and v is not None}
        assert got == expected
    # Integers stayed integers (the 'i' suffix), floats floats, booleans booleans.
    types = _query(influxdb, db, f"SHOW FIELD KEYS FROM {_ident('m 1,' + HOSTILE[1])}")
    kinds = dict(types["series"][0]["values"])
    assert kinds["n"] == "integer"
    assert kinds["x"] == "float"
    assert kinds["ok"] == "boolean"


def test_the_endpoint_output_is_accepted_as_is(influxdb: str) -> None:
    db = "endpoint"
    httpx.post(f"{influxdb}/query", data={"q": f"CREATE DATABASE {db}"}, timeout=10)
    body = render_influx(snapshot(), "trio_wrapper", "host-1")
    response = httpx.post(
        f"{influxdb}/write", params={"db": db, "precision": "ns"}, content=body, timeout=10
    )
    assert response.status_code == 204, response.text
    result = _query(influxdb, db, 'SELECT * FROM "trio_wrapper_agent" WHERE "agent" = \'codex-2\'')
    row = dict(zip(result["series"][0]["columns"], result["series"][0]["values"][0], strict=True))
    assert row["status"] == "completed"
    assert row["host"] == "host-1"
    assert row["exit_code"] == 0
    assert row["bytes_processed"] == 52311
    result = _query(influxdb, db, 'SELECT "count" FROM "trio_wrapper_extractions" GROUP BY "type"')
    counts = {s["tags"]["type"]: s["values"][0][1] for s in result["series"]}
    assert counts == {"session": 16, "code_block": 8, "prompt": 2, "response": 21}
