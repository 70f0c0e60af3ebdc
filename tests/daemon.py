"""The real daemon as a subprocess, started as a user starts it: ``trio-wrapper serve --port 0``.

The one launcher of the end-to-end tests and of the benchmarks (bench/common.py puts the
repository root on ``sys.path`` for it, so ``python bench/x.py`` finds it). It needs only
the standard library and httpx.

- ``Daemon`` / ``running_daemon``: the daemon on an ephemeral loopback port. ``start`` waits
  for the ``trio-wrapper listening on http://127.0.0.1:PORT`` line on its stderr (kept in a
  file) and for a healthy ``/api/health``; ``stop`` sends SIGTERM (the daemon stops its
  agents and its extraction worker itself), waits a bounded time, then SIGKILLs.
- ``Child``: any process started here, in its own session so that its whole process group
  can be killed, its output in a file. ``Child.stop`` is the one way they end: a signal to
  the process, a bounded wait, SIGKILL, always reaped, then SIGKILL to what is left of its
  group.
- ``poll``: a bounded wait for a condition, failing with what was last seen.

Every wait is bounded; nothing started here outlives ``stop``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import httpx

# What the daemon logs on stderr once it has bound its port (``--port 0`` = any free one).
LISTENING = re.compile(r"trio-wrapper listening on (http://127\.0\.0\.1:(\d+))")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
POLL_SECONDS = 0.02

T = TypeVar("T")


class LaunchError(Exception):
    """A process started here did not come up as expected."""


def poll(check: Callable[[], T | None], timeout: float, what: str | Callable[[], str]) -> T:
    """Call ``check`` until it returns something true and return that; ``TimeoutError``
    (naming ``what``) once ``timeout`` seconds have passed without."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what if isinstance(what, str) else what()} (after {timeout} s)")
        time.sleep(POLL_SECONDS)


def daemon_command() -> list[str]:
    """The ``trio-wrapper`` console script beside this Python, as a user runs it (else the
    same entry point through ``python -m trio_wrapper``)."""
    script = Path(sys.executable).with_name("trio-wrapper")
    return [str(script)] if script.exists() else [sys.executable, "-m", "trio_wrapper"]


def clean_environ(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any ``TRIO_WRAPPER_*`` setting, plus ``env``: the
    daemon's configuration is what the caller gives, never what the shell happens to hold."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRIO_WRAPPER_")}
    return {**base, **(env or {})}


class Child:
    """A process in its own session (so its group can be killed), stdin from /dev/null,
    stderr, and stdout too unless ``stdout=False``, written to ``output`` (a new file)."""

    def __init__(
        self,
        args: Sequence[str],
        output: Path,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        stdout: bool = True,
    ) -> None:
        self.args = [str(arg) for arg in args]
        self.output = output
        output.parent.mkdir(parents=True, exist_ok=True)
        # The child keeps its own descriptor; ours is closed at once.
        with open(output, "wb") as out:
            self.process = subprocess.Popen(
                self.args,
                cwd=cwd,
                env=None if env is None else dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out if stdout else subprocess.DEVNULL,
                stderr=out,
                start_new_session=True,
            )
        self._stopped = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        """Everything the process wrote so far."""
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def wait_for_output(
        self, pattern: re.Pattern[str], timeout: float, what: str = ""
    ) -> re.Match[str]:
        """The first match of ``pattern`` (``what`` it stands for) in the output;
        ``LaunchError`` if the process exits or ``timeout`` seconds pass first."""
        name = Path(self.args[0]).name
        what = what or repr(pattern.pattern)

        def found() -> re.Match[str] | None:
            match = pattern.search(self.text())
            if match is None and self.process.poll() is not None:
                raise LaunchError(
                    f"{name} exited ({self.process.returncode}) before {what}:\n{self.text()}"
                )
            return match

        try:
            return poll(found, timeout, f"{name} wrote no {what}")
        except TimeoutError as exc:
            raise LaunchError(f"{exc}:\n{self.text()}") from None

    def stop(self, timeout: float = STOP_TIMEOUT, sig: int = signal.SIGTERM) -> int:
        """``sig`` to the process, up to ``timeout`` seconds for it to exit, then SIGKILL;
        always reaped. Then SIGKILL to whatever is left of its process group. Returns its
        exit status (negative: the signal that ended it)."""
        if self._stopped:  # its group id may since belong to someone else
            return self.process.returncode
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._stopped = True
        return self.process.returncode

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class Daemon:
    """One ``trio-wrapper serve --host 127.0.0.1 --port 0 --logs-dir LOGS [--config F] ARGS``.

    ``workdir`` holds its stderr (``daemon.stderr``) and, unless ``logs_dir`` says
    otherwise, its logs (``logs/``); it is also its working directory unless ``cwd`` says
    otherwise (a directory without ``conf/`` means no config file: defaults, plus ``env``).
    The environment is this process's without any ``TRIO_WRAPPER_*``, plus ``env``.
    ``root_path`` mounts the app under that prefix (``server.root_path``); ``url`` then
    includes it, as a client behind a proxy sees it.
    """

    def __init__(
        self,
        workdir: Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        logs_dir: Path | None = None,
        config: Path | None = None,
        cwd: Path | None = None,
        root_path: str = "",
    ) -> None:
        self.workdir = workdir
        self.root_path = root_path
        self.logs_dir = logs_dir if logs_dir is not None else workdir / "logs"
        self.stderr_path = workdir / "daemon.stderr"
        self.cwd = cwd if cwd is not None else workdir
        self.env = clean_environ(env)
        if root_path:
            self.env["TRIO_WRAPPER_SERVER_ROOT_PATH"] = root_path
        self.args = [*daemon_command(), "serve", "--host", "127.0.0.1", "--port", "0"]
        self.args += ["--logs-dir", str(self.logs_dir)]
        if config is not None:
            self.args += ["--config", str(config)]
        self.args += args
        self.child: Child | None = None
        self.url = ""
        self.port = 0

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self.child is None:
            raise LaunchError("the daemon was not started")
        return self.child.process

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log(self) -> str:
        """The daemon's stderr so far."""
        return self.child.text() if self.child is not None else ""

    def start(self, timeout: float = START_TIMEOUT) -> str:
        """Start it; wait for its "listening" line and a healthy /api/health; its base URL."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.child = Child(self.args, self.stderr_path, cwd=self.cwd, env=self.env, stdout=False)
        try:
            match = self.child.wait_for_output(LISTENING, timeout, "its listening line")
            self.url, self.port = match.group(1) + self.root_path, int(match.group(2))
            self._wait_healthy(timeout)
        except BaseException:
            self.child.stop()
            raise
        return self.url

    def _wait_healthy(self, timeout: float) -> None:
        with httpx.Client(base_url=self.url, timeout=5.0) as client:

            def healthy() -> bool:
                if self.process.poll() is not None:
                    raise LaunchError(f"daemon exited ({self.process.returncode}):\n{self.log}")
                with contextlib.suppress(httpx.HTTPError):
                    return client.get("/api/health").status_code == 200
                return False

            try:
                poll(healthy, timeout, f"{self.url}/api/health never answered 200")
            except TimeoutError as exc:
                raise LaunchError(f"{exc}:\n{self.log}") from None

    def client(self, timeout: float = 10.0) -> httpx.Client:
        """An httpx client on the daemon's base URL."""
        return httpx.Client(base_url=self.url, timeout=timeout)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM to the daemon, which stops its agents and its worker itself; SIGKILL to
        its group after ``timeout`` seconds. Its exit status (0 = it stopped by itself).

        The SIGTERM goes to the daemon alone, as ``kill PID`` from a user: its extraction
        worker shares its group and does not ignore SIGTERM, so a group SIGTERM would end
        the worker under a daemon still stopping its agents."""
        return self.child.stop(timeout) if self.child is not None else 0

    def __enter__(self) -> Daemon:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@contextlib.contextmanager
def running_daemon(
    workdir: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    logs_dir: Path | None = None,
    config: Path | None = None,
    cwd: Path | None = None,
    stop_timeout: float = STOP_TIMEOUT,
) -> Iterator[Daemon]:
    """A started ``Daemon`` (see there), stopped on the way out whatever happens."""
    daemon = Daemon(workdir, *args, env=env, logs_dir=logs_dir, config=config, cwd=cwd)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop(stop_timeout)
