"""The child process: spawning it in its own group, its pipes or PTY, signalling the
group, and writing to its stdin.

Everything an :class:`~trio_wrapper.runtime.agent.Agent` needs from the OS besides its
readers, which stay in the agent (they are the hot path).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import trio

from trio_wrapper.core.errors import Refusal
from trio_wrapper.core.spec import AgentSpec


class StdinClosed(Exception):
    pass


class StdinBlocked(Exception):
    pass


async def spawn(spec: AgentSpec) -> tuple[trio.Process, int | None]:
    """Start ``spec``'s command in a new session (its own process group), never through a
    shell. Returns the process and, with ``pty``, the terminal's master side.

    Raises ``Refusal("spawn_failed")`` when the working directory or the executable is
    missing (or cannot be run).
    """
    if spec.cwd is not None and not await trio.Path(spec.cwd).is_dir():
        raise Refusal("spawn_failed", f"working directory {spec.cwd!r} does not exist")
    env = {**os.environ, **spec.env, "PYTHONUNBUFFERED": "1"}
    master: int | None = None
    stdin: int = subprocess.PIPE if spec.stdin else subprocess.DEVNULL
    stdout: int = subprocess.PIPE
    stderr: int = subprocess.PIPE
    slave: int | None = None
    if spec.pty:
        master, slave = os.openpty()
        os.set_inheritable(master, False)
        stdout = stderr = slave
        if spec.stdin:
            stdin = slave
    try:
        process = await trio.lowlevel.open_process(
            spec.command,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            cwd=spec.cwd,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        if master is not None:
            os.close(master)
        reason = exc.strerror or str(exc)
        raise Refusal("spawn_failed", f"cannot start {spec.command[0]!r}: {reason}") from exc
    finally:
        if slave is not None:
            os.close(slave)
    return process, master


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
    await process.wait()
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
