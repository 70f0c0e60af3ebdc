"""Small pure modules: time formats, the status machine, log tails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_wrapper.core.status import (
    InvalidTransition,
    Status,
    check_transition,
    exit_detail,
    status_after_exit,
    stopping_detail,
)
from trio_wrapper.core.timefmt import go_duration, log_stamp, parse_rfc3339, rfc3339
from trio_wrapper.history.logtail import tail_lines


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.4, "0s"), (45, "45s"), (495, "8m15s"), (3600, "1h0m0s"), (55425.1, "15h23m45s")],
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_rfc3339_keeps_the_offset() -> None:
    moment = datetime(2026, 2, 10, 5, 44, 30, tzinfo=timezone(timedelta(hours=-8)))
    assert rfc3339(moment) == "2026-02-10T05:44:30.000-08:00"
    assert rfc3339(None) is None
    assert log_stamp(moment) == "2026-02-10-05-44-30"


def test_status_machine() -> None:
    check_transition(Status.STARTING, Status.RUNNING)
    check_transition(Status.RUNNING, Status.STOPPING)
    check_transition(Status.STOPPING, Status.STOPPED)
    with pytest.raises(InvalidTransition):
        check_transition(Status.COMPLETED, Status.RUNNING)
    with pytest.raises(InvalidTransition):
        check_transition(Status.RUNNING, Status.STOPPED)
    assert status_after_exit(0, stop_requested=False, timed_out=False) is Status.COMPLETED
    assert status_after_exit(3, stop_requested=False, timed_out=False) is Status.FAILED
    assert status_after_exit(-9, stop_requested=False, timed_out=False) is Status.FAILED
    assert status_after_exit(-15, stop_requested=True, timed_out=False) is Status.STOPPED
    assert status_after_exit(0, stop_requested=True, timed_out=False) is Status.STOPPED
    assert status_after_exit(-15, stop_requested=False, timed_out=True) is Status.FAILED
    assert {s for s in Status if s.is_terminal} == {
        Status.COMPLETED,
        Status.FAILED,
        Status.STOPPED,
        Status.INTERRUPTED,
    }


@given(
    lines=st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=60),
    final_newline=st.booleans(),
    count=st.integers(min_value=1, max_value=80),
)
def test_tail_matches_splitlines(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes], final_newline: bool, count: int
) -> None:
    path = tmp_path_factory.mktemp("tail") / "log"
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    path.write_bytes(data)
    expected_lines = data.split(b"\n")
    if data.endswith(b"\n"):
        expected_lines.pop()
    if not data:
        expected_lines = []
    kept = expected_lines[-count:]
    expected = b"\n".join(kept) + (b"\n" if data.endswith(b"\n") and kept else b"")
    assert tail_lines(path, count) == expected


def test_tail_reads_across_blocks(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"".join(b"%06d\n" % i for i in range(100_000)))
    assert tail_lines(path, 3) == b"099997\n099998\n099999\n"
    assert tail_lines(path, 20_000).count(b"\n") == 20_000


def test_exit_detail_names_how_a_run_ended() -> None:
    assert exit_detail(0, None) == "exit code 0"
    assert exit_detail(3, None) == "exit code 3"
    assert exit_detail(None, "SIGTERM") == "killed by SIGTERM"
    assert exit_detail(None, "SIGKILL", timed_out=1.5) == "timed out after 1.5s"
    assert exit_detail(None, "SIGTERM", timed_out=2) == "timed out after 2s"
    assert stopping_detail("shutdown") == "stop requested (shutdown)"


def test_rfc3339_reads_back() -> None:
    moment = datetime(2026, 2, 10, 5, 44, 30, 123000, tzinfo=UTC)
    assert parse_rfc3339(rfc3339(moment)) == moment
    assert parse_rfc3339(None) is None
    assert parse_rfc3339("yesterday") is None
