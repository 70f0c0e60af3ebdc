"""A cgroup (v2) per agent, where the daemon may make one.

A cgroup holds every process its first member starts, whatever they do to their session,
group, parent or environment: it is the one container of an agent's tree that cannot be
left without privileges. With one, a stop ends the whole tree at once
(``cgroup.kill``, Linux ≥ 5.14; else a SIGKILL to each of ``cgroup.procs``), and the
agent's CPU (``cpu.stat``) and, where the memory controller is enabled, memory
(``memory.current``, ``memory.peak``) are reported.

The daemon makes ``trio-wrapper.<pid>`` under its own cgroup, one child per run; each
agent's first process writes itself into its run's cgroup between fork and exec
(``process.spawn``), so nothing it starts is ever outside. Under systemd that needs
``Delegate=yes`` (conf/); the daemon never moves itself. Where nothing of this can be
made (cgroup v1 only, a read-only ``/sys/fs/cgroup``, no rights), agents run without,
and the process-tree tracking of ``runtime.proctree`` is all there is.

Every function is a few syscalls on cgroupfs; the callers run them where they are.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from trio_wrapper.core import cgroups as parse

log = logging.getLogger(__name__)

MOUNTINFO = Path("/proc/self/mountinfo")
PROC_CGROUP = Path("/proc/self/cgroup")


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_seconds: float | None
    memory_bytes: int | None
    memory_peak_bytes: int | None


class AgentCgroups:
    """The daemon's parent cgroup of its agents' cgroups."""

    def __init__(self, base: Path) -> None:
        self.base = base

    @classmethod
    def make(cls) -> tuple[AgentCgroups | None, str]:
        """The parent cgroup made under the daemon's own, or None and why not."""
        try:
            mount = parse.cgroup2_mount(MOUNTINFO.read_text())
            own = parse.own_cgroup(PROC_CGROUP.read_text())
        except OSError as exc:
            return None, f"cannot read /proc: {exc.strerror}"
        if mount is None:
            return None, "no cgroup v2 hierarchy is mounted"
        if own is None:
            return None, "the daemon's own cgroup v2 is unknown"
        parent = Path(mount) / own.lstrip("/")
        base = parent / f"trio-wrapper.{os.getpid()}"
        try:
            base.mkdir(exist_ok=True)
        except OSError as exc:
            return None, f"cannot make {base}: {exc.strerror}"
        return cls(base), ""

    def create(self, name: str) -> Path | None:
        path = self.base / name
        try:
            path.mkdir()
        except OSError as exc:
            log.warning("no cgroup for %s: %s", name, exc.strerror)
            return None
        return path

    def close(self) -> None:
        """At shutdown, once every agent is gone: the parent too (not if any is left)."""
        with contextlib.suppress(OSError):
            self.base.rmdir()


def open_procs(cgroup: Path) -> int | None:
    """``cgroup.procs`` open for the child to write itself into (``process.spawn``)."""
    try:
        return os.open(cgroup / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return None


def members(cgroup: str | Path) -> list[int]:
    try:
        return parse.pids((Path(cgroup) / "cgroup.procs").read_text())
    except OSError:
        return []


def kill(cgroup: str | Path) -> None:
    """SIGKILL every process in the cgroup, at once where the kernel can."""
    path = Path(cgroup)
    try:
        (path / "cgroup.kill").write_text("1")
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EACCES, errno.EPERM, errno.EINVAL):
            return
    for pid in members(path):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def usage(cgroup: str | Path) -> Usage:
    path = Path(cgroup)

    def read(name: str) -> str:
        try:
            return (path / name).read_text()
        except OSError:
            return ""

    return Usage(
        cpu_seconds=parse.cpu_seconds(read("cpu.stat")),
        memory_bytes=parse.memory_bytes(read("memory.current")),
        memory_peak_bytes=parse.memory_bytes(read("memory.peak")),
    )


def remove(cgroup: str | Path) -> bool:
    """Remove an agent's cgroup once empty (its parent too, if that was the last one of a
    daemon that has gone); False while processes are still in it."""
    path = Path(cgroup)
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    parent = path.parent
    if parent.name.startswith("trio-wrapper.") and parent.name != f"trio-wrapper.{os.getpid()}":
        with contextlib.suppress(OSError):
            parent.rmdir()
    return True
