"""Start-up failures as an operator sees them: one line naming the cause, a non-zero exit."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon import running_daemon
from tests.helpers import REPO
from trio_wrapper.cli import logs_dir_problem
from trio_wrapper.daemon import first_leaf

DAEMON = Path(sys.executable).parent / "trio-wrapper"


def start(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the daemon as a user would; each case fails before it serves, so it returns."""
    return subprocess.run(
        [str(DAEMON), "serve", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "cannot start" in line or "error" in line]
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    return lines[0]


def test_a_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = start(tmp_path, "--port", str(port), "--logs-dir", str(tmp_path / "logs"))
    assert result.returncode == 1
    assert one_line(result.stderr) == (
        f"trio-wrapper: cannot start: cannot listen on 127.0.0.1:{port}: address already in use"
    )


def test_a_logs_dir_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    result = start(tmp_path, "--port", "0", "--logs-dir", "/proc/nope")
    assert result.returncode == 1
    assert one_line(result.stderr) == (
        "trio-wrapper: cannot start: logs dir '/proc/nope' is not writable: "
        "no such file or directory"
    )
    assert result.stdout == ""


def test_a_bad_config_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 'eighty'\n")
    result = start(tmp_path, "--config", str(bad))
    assert result.returncode == 2
    assert one_line(result.stderr).startswith("trio-wrapper: config error: ")
    assert "server.port" in result.stderr


def test_a_bad_flag_is_a_usage_error() -> None:
    result = subprocess.run(
        [str(DAEMON), "serve", "--config", str(REPO / "conf" / "trio_wrapper.toml"), "--port", "x"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    # argparse refuses the port before the config is read: usage error, exit 2, no traceback.
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_logs_dir_problem_names_the_cause(tmp_path: Path) -> None:
    assert logs_dir_problem(tmp_path / "new" / "logs") is None
    assert (tmp_path / "new" / "logs").is_dir()
    problem = logs_dir_problem(Path("/proc/nope"))
    assert problem is not None and "/proc/nope" in problem


def test_first_leaf_looks_inside_groups() -> None:
    inner = OSError(98, "Address already in use")
    group = BaseExceptionGroup("outer", [ValueError("x"), ExceptionGroup("in", [inner])])
    assert first_leaf(group, OSError) is inner
    assert first_leaf(ValueError("x"), OSError) is None


def test_the_listen_queue_is_the_configured_backlog(tmp_path: Path) -> None:
    """hypercorn's default queue (100) overflowed under 200 reconnecting clients: connects
    timed out and were reset. The kernel shows a listener's backlog as its Send-Q."""
    ss = shutil.which("ss")
    if ss is None:
        pytest.skip("ss (iproute2) is not installed: cannot read the listen queue")
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    wanted = min(777, somaxconn)
    with running_daemon(tmp_path, env={"TRIO_WRAPPER_SERVER_BACKLOG": "777"}) as daemon:
        shown = subprocess.run(
            [ss, "-ltnH", f"sport = :{daemon.port}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split()
    assert shown[0] == "LISTEN", shown
    assert int(shown[2]) == wanted, shown
