"""The child process: spawning it in its own group, its pipes or PTY, signalling the
group, and writing to its stdin.

Everything an :class:`~trio_wrapper.runtime.agent.Agent` needs from the OS besides its
readers, which stay in the agent (they are the hot path).
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import os
import signal
import struct
import subprocess
import termios
from collections.abc import Callable, Collection, Mapping

import trio

from trio_wrapper.core.errors import Refusal, invalid_request
from trio_wrapper.core.interactive import DEFAULT_PTY_SIZE
from trio_wrapper.core.spec import AgentSpec
from trio_wrapper.runtime import proctree

# The daemon's own settings (its auth token among them) never reach an agent.
DAEMON_PREFIX = "TRIO_WRAPPER_"

# The pids of agent leaders trio still waits for: the subreaper's stray reaper must never
# collect one of those (trio's own wait would then fail).
LEADERS: set[int] = set()
# Spawns under way: trio forks in a worker thread, so a leader exists a moment before it
# is in LEADERS.
_spawning = 0


class StdinClosed(Exception):
    pass


class StdinBlocked(Exception):
    pass


def check_request_env(env: Mapping[str, str]) -> None:
    """A request may not set the daemon's own variables: refused, not silently dropped,
    so that the caller learns its setting had no effect."""
    for key in env:
        if key.upper().startswith(DAEMON_PREFIX):
            raise invalid_request(f"env: {key!r}: {DAEMON_PREFIX}* variables are not passed on")


def passes(key: str, passthrough: Collection[str]) -> bool:
    """Whether the daemon's variable ``key`` is on the allow-list (``XDG_*``-style globs)."""
    if key.upper().startswith(DAEMON_PREFIX):
        return False
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in passthrough)


def child_env(
    request_env: Mapping[str, str],
    passthrough: Collection[str],
    cookie: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The agent's environment: the allow-listed part of the daemon's, the request's,
    unbuffered Python output, and the run's cookie (how its processes are found again)."""
    base = os.environ if environ is None else environ
    env = {key: value for key, value in base.items() if passes(key, passthrough)}
    env.update((k, v) for k, v in request_env.items() if not k.upper().startswith(DAEMON_PREFIX))
    env["PYTHONUNBUFFERED"] = "1"
    if cookie is not None:
        env[proctree.COOKIE_VAR] = cookie
    return env


def _join_cgroup(procs_fd: int) -> Callable[[], None]:
    """Run in the child between fork and exec: it enters its cgroup before it can start
    anything. Only a write to a descriptor opened by the parent: no import, no lock."""

    def join() -> None:
        with contextlib.suppress(OSError):  # the run goes on without (tracked by proctree)
            os.write(procs_fd, b"0")

    return join


async def spawn(
    spec: AgentSpec,
    passthrough: Collection[str],
    cookie: str | None = None,
    cgroup_procs: int | None = None,
) -> tuple[trio.Process, int | None]:
    """Start ``spec``'s command in a new session (its own process group), never through a
    shell. Returns the process and, with ``pty``, the terminal's master side.
    ``cgroup_procs``: an open ``cgroup.procs`` the child writes itself into before its exec.

    Raises ``Refusal("spawn_failed")`` when the working directory or the executable is
    missing (or cannot be run).
    """
    global _spawning
    if spec.cwd is not None and not await trio.Path(spec.cwd).is_dir():
        raise Refusal("spawn_failed", f"working directory {spec.cwd!r} does not exist")
    env = child_env(spec.env, passthrough, cookie)
    master: int | None = None
    stdin: int = subprocess.PIPE if spec.stdin else subprocess.DEVNULL
    stdout: int = subprocess.PIPE
    stderr: int = subprocess.PIPE
    slave: int | None = None
    if spec.pty:
        master, slave = os.openpty()
        os.set_inheritable(master, False)
        rows, cols = spec.pty_size or DEFAULT_PTY_SIZE
        # A fresh PTY is 0x0: a terminal UI would draw nothing (or fail) in it.
        with contextlib.suppress(OSError):
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        stdout = stderr = slave
        if spec.stdin:
            stdin = slave
    _spawning += 1
    try:
        process = await trio.lowlevel.open_process(
            spec.command,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            cwd=spec.cwd,
            env=env,
            start_new_session=True,
            preexec_fn=None if cgroup_procs is None else _join_cgroup(cgroup_procs),
        )
        LEADERS.add(process.pid)
    except OSError as exc:
        if master is not None:
            os.close(master)
        reason = exc.strerror or str(exc)
        raise Refusal("spawn_failed", f"cannot start {spec.command[0]!r}: {reason}") from exc
    finally:
        _spawning -= 1
        if slave is not None:
            os.close(slave)
    return process, master


def nothing_left_behind() -> bool:
    """True when, right now, no agent can have a process alive outside its leader: the
    daemon is a child subreaper (so whatever a leader that has exited left running was
    re-parented here, at its exit, however it left the session), no spawn is under way,
    and every child of the daemon is a live run's leader or in the daemon's own session
    (the extraction worker). A few small reads of ``/proc/self``, where a full look at a
    run's tree reads every process's. False says nothing: look at the tree."""
    if _spawning or not proctree.is_subreaper():
        return False
    return not any(not info.dead for info in proctree.strays(LEADERS, spawning=False))


async def wait_leader(process: trio.Process) -> int:
    """Wait for the leader's exit (trio reaps it), then forget it as ours to wait for."""
    try:
        return await process.wait()
    finally:
        if process.returncode is not None:
            LEADERS.discard(process.pid)


def child_streams(
    process: trio.Process, pty_master: int | None, *, stdin: bool
) -> tuple[dict[str, trio.abc.ReceiveStream], trio.abc.SendStream | None]:
    """The child's output streams by name, and its stdin (None unless asked for).

    A PTY has one output, ``stdout``, and the same descriptor is its input.
    """
    if pty_master is not None:
        pty_stream = trio.lowlevel.FdStream(pty_master)
        return {"stdout": pty_stream}, pty_stream if stdin else None
    assert process.stdout is not None and process.stderr is not None
    return {"stdout": process.stdout, "stderr": process.stderr}, process.stdin


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Signal the whole process group; a group already gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def reap_orphan(process: trio.Process) -> None:
    """A child spawned but never registered (its files could not be created): end it."""
    signal_group(process.pid, signal.SIGKILL)
    await wait_leader(process)
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            await pipe.aclose()


class StdinWriter:
    """The child's stdin: one writer at a time, a deadline per write, EOF on request."""

    __slots__ = ("_lock", "_pty", "stream")

    def __init__(self, stream: trio.abc.SendStream, *, pty: bool) -> None:
        self.stream: trio.abc.SendStream | None = stream
        self._lock = trio.Lock()
        self._pty = pty

    @property
    def is_open(self) -> bool:
        return self.stream is not None

    async def write(self, data: bytes, *, eof: bool, write_timeout: float) -> None:
        """Write ``data``, then close (or, on a terminal, send VEOF) if ``eof``.

        Raises ``StdinClosed`` (closed, or the child closed its end) or ``StdinBlocked``
        (the child did not read within ``write_timeout``).
        """
        async with self._lock:
            stdin = self.stream
            if stdin is None:
                raise StdinClosed
            try:
                if data:
                    with trio.fail_after(write_timeout):
                        await stdin.send_all(data)
                if eof:
                    if self._pty:
                        # A terminal has no half-close: EOF is the VEOF character.
                        with trio.fail_after(write_timeout):
                            await stdin.send_all(b"\x04")
                    else:
                        await stdin.aclose()
                        self.stream = None
            except trio.TooSlowError as exc:
                raise StdinBlocked from exc
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self.stream = None
                raise StdinClosed from exc

    def detach(self) -> trio.abc.SendStream | None:
        """Give up the stream (to be closed by the caller); writes from now on are refused."""
        stream, self.stream = self.stream, None
        return stream


# ---- the subreaper's strays -----------------------------------------------------------------

STRAY_SWEEP_SECONDS = 5.0


def reap_strays_now() -> list[int]:
    """Collect the re-parented descendants that have ended (never a leader trio waits for).
    Synchronous, in the event loop: no spawn can register a leader meanwhile."""
    return proctree.reap(proctree.strays(LEADERS, spawning=_spawning > 0))


async def reap_strays_forever() -> None:
    """The subreaper's duty: a re-parented process that ends is our zombie until we
    collect it. Woken by SIGCHLD, with a slow sweep for what a spawn made us skip. A
    ``waitpid(-1)`` would steal trio's own results: only strays are waited for."""
    with trio.open_signal_receiver(signal.SIGCHLD) as sigchld:
        while True:
            reap_strays_now()
            with trio.move_on_after(STRAY_SWEEP_SECONDS):
                async for _ in sigchld:
                    break


async def kill_strays() -> list[proctree.ProcInfo]:
    """After every agent stopped: SIGKILL what is left of their trees (re-parented to the
    subreaper) and reap it."""
    return await trio.to_thread.run_sync(proctree.kill_strays, frozenset(LEADERS))
