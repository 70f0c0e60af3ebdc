"""An agent's whole process tree, found through ``/proc`` (Linux), and ended.

An agent's first process (the *leader*) starts in its own session, so its session and
group ids are its pid. What it starts can leave both (``setsid``, a double fork) and, once
its parent is gone, be re-parented out of the leader's tree. A process is counted as the
run's (its :class:`TreeMark`) when, started no earlier than the leader, it is

- the leader itself (pid *and* start time: a reused pid is not mistaken for it),
- in the leader's session or process group,
- marked with the run's cookie: ``TW_RUN_COOKIE=<random>`` is put in the leader's
  environment and inherited by everything it starts unless a program clears or replaces
  its environment (the technique of Jenkins' ProcessTreeKiller),
- or a descendant (by parent pid) of any of those,
- or, where the daemon could make one, in the run's own cgroup (``runtime.cgroups``).

What still escapes is in docs/decisions.md. Every function here is synchronous and reads
``/proc`` (a few syscalls per process): callers run them in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from trio_wrapper.runtime import cgroups

PROC = Path("/proc")
# Inherited by all the leader starts; not TRIO_WRAPPER_*: nothing of the daemon's own
# settings is ever passed on.
COOKIE_VAR = "TW_RUN_COOKIE"
# kill_tree: rounds of scan + SIGKILL (a process forking while it is killed shows its new
# children in the next scan), and the pause when only already-killed ones are still seen.
KILL_ROUNDS = 200
KILL_PAUSE_SECONDS = 0.005


@dataclass(frozen=True, slots=True)
class ProcInfo:
    """One line of ``/proc/<pid>/stat``, the fields used here."""

    pid: int
    state: str
    ppid: int
    pgid: int
    sid: int
    start: int  # field 22: clock ticks after boot

    @property
    def dead(self) -> bool:
        return self.state in ("Z", "X", "x")


@dataclass(frozen=True, slots=True)
class TreeMark:
    """How a run's processes are recognised (kept in its meta file, for after a crash)."""

    leader: int
    leader_start: int | None = None
    cookie: str | None = None
    boot_id: str | None = None
    # The run's own cgroup (runtime.cgroups), where the daemon could make one: what is in
    # it is the run's, whatever its session, parent or environment.
    cgroup: str | None = None


def read_stat(pid: int) -> ProcInfo | None:
    try:
        data = (PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return ProcInfo(
            pid=pid,
            state=fields[0].decode(),
            ppid=int(fields[1]),
            pgid=int(fields[2]),
            sid=int(fields[3]),
            start=int(fields[19]),
        )
    except (IndexError, ValueError):
        return None


def start_ticks(pid: int) -> int | None:
    info = read_stat(pid)
    return info.start if info is not None else None


def boot_id() -> str | None:
    """This boot's id: a start time (ticks after boot) means nothing across a reboot."""
    try:
        return (PROC / "sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def snapshot() -> dict[int, ProcInfo]:
    """Every process visible now."""
    out: dict[int, ProcInfo] = {}
    try:
        names = os.listdir(PROC)
    except OSError:
        return out
    for name in names:
        if name.isdigit():
            info = read_stat(int(name))
            if info is not None:
                out[info.pid] = info
    return out


def has_cookie(pid: int, cookie: str) -> bool:
    """Whether the process's environment (as it was at its exec) holds the run's cookie.
    Another user's, or a non-dumpable (setuid) process's, cannot be read: False."""
    try:
        environ = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    return f"{COOKIE_VAR}={cookie}".encode() in environ.split(b"\0")


def argv0(pid: int) -> str:
    try:
        cmdline = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    first = cmdline.split(b"\0", 1)[0]
    if not first:
        with contextlib.suppress(OSError):
            first = (PROC / str(pid) / "comm").read_bytes().strip()
    return first.decode(errors="replace")


def members(
    mark: TreeMark,
    procs: dict[int, ProcInfo] | None = None,
    *,
    other_sessions: Collection[int] = (),
    known: Collection[tuple[int, int]] = (),
) -> list[ProcInfo]:
    """The run's processes still alive (zombies are not: they only wait to be reaped).

    ``other_sessions``: the sessions of other live runs; their members are theirs and
    their environments need not be read. ``known``: (pid, start time) of processes an
    earlier look found to be the run's (found by ancestry, which their parent's death
    breaks).
    """
    if mark.boot_id is not None and mark.boot_id != boot_id():
        return []
    procs = snapshot() if procs is None else procs
    me = os.getpid()
    # A pid number stays taken while its session or group has members: a process now
    # holding the leader's pid with another start time means the run's session is empty
    # and the number reused, so its session and group are someone else's.
    holder = procs.get(mark.leader)
    by_ids = holder is None or mark.leader_start is None or holder.start == mark.leader_start
    found: dict[int, ProcInfo] = {}
    for info in procs.values():
        if info.dead or info.pid == me:
            continue
        if mark.leader_start is not None and info.start < mark.leader_start:
            continue  # older than the run: not started by it (a reused pid or id)
        if info.pid == mark.leader:
            if mark.leader_start is None or info.start == mark.leader_start:
                found[info.pid] = info
        elif (
            (info.pid, info.start) in known
            or (by_ids and (info.sid == mark.leader or info.pgid == mark.leader))
            or (
                mark.cookie is not None
                and info.sid not in other_sessions
                and has_cookie(info.pid, mark.cookie)
            )
        ):
            found[info.pid] = info
    if mark.cgroup is not None:
        for pid in cgroups.members(mark.cgroup):
            member = procs.get(pid)
            if member is not None and not member.dead and pid != me:
                found[pid] = member
    if found:
        children: dict[int, list[ProcInfo]] = {}
        for info in procs.values():
            if not info.dead:
                children.setdefault(info.ppid, []).append(info)
        stack = list(found)
        while stack:
            for child in children.get(stack.pop(), ()):
                if child.pid not in found and child.pid != me:
                    found[child.pid] = child
                    stack.append(child.pid)
    return sorted(found.values(), key=lambda info: info.pid)


def leftovers(marks: Iterable[TreeMark]) -> list[list[tuple[int, int, str]]]:
    """For each mark, its processes alive now as (pid, start time, argv[0]): one scan."""
    procs = snapshot()
    return [
        [(info.pid, info.start, argv0(info.pid)) for info in members(mark, procs)] for mark in marks
    ]


def signal_all(infos: Iterable[ProcInfo], sig: signal.Signals) -> list[int]:
    """Signal each process (if it is still the one seen: same start time); the pids hit."""
    hit: list[int] = []
    for info in infos:
        now = read_stat(info.pid)
        if now is None or now.start != info.start:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(info.pid, sig)
            hit.append(info.pid)
    return hit


def kill_tree(
    mark: TreeMark,
    other_sessions: Collection[int] = (),
    known: Collection[tuple[int, int]] = (),
    rounds: int = KILL_ROUNDS,
) -> list[ProcInfo]:
    """SIGKILL the run's processes until a scan finds none (or ``rounds`` scans were not
    enough: a process in uninterruptible sleep dies when it wakes). The processes killed."""
    killed: dict[tuple[int, int], ProcInfo] = {}
    if mark.cgroup is not None and (mark.boot_id is None or mark.boot_id == boot_id()):
        seen = members(mark, other_sessions=other_sessions, known=known)
        cgroups.kill(mark.cgroup)  # all at once: nothing in it can fork away meanwhile
        killed.update(((info.pid, info.start), info) for info in seen)
    for _ in range(rounds):
        live = members(mark, other_sessions=other_sessions, known=known)
        if not live:
            break
        fresh = [info for info in live if (info.pid, info.start) not in killed]
        signal_all(live, signal.SIGKILL)
        for info in live:
            killed[(info.pid, info.start)] = info
        if not fresh:
            time.sleep(KILL_PAUSE_SECONDS)  # only the dying are left: let the kernel finish
    return list(killed.values())


def alive(pid: int, start: int | None) -> bool:
    info = read_stat(pid)
    return info is not None and not info.dead and (start is None or info.start == start)


# ---- the daemon as a subreaper ------------------------------------------------------------

PR_SET_CHILD_SUBREAPER = 36
_subreaper = False  # become_subreaper succeeded in this process


def is_subreaper() -> bool:
    """Whether :func:`become_subreaper` made this process a child subreaper."""
    return _subreaper


def become_subreaper() -> str | None:
    """Make this process the reaper of its orphaned descendants (Linux ≥ 3.4): what an
    agent leaves behind with setsid or a double fork is re-parented here, not to init.
    None on success, else why not."""
    global _subreaper
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            return os.strerror(ctypes.get_errno())
    except (OSError, AttributeError) as exc:
        return str(exc)
    _subreaper = True
    return None


def own_children() -> list[ProcInfo]:
    """This process's children (of every thread: trio forks from worker threads)."""
    pids: set[int] = set()
    try:
        tasks = os.listdir(PROC / "self" / "task")
        for tid in tasks:
            with contextlib.suppress(OSError):
                text = (PROC / "self" / "task" / tid / "children").read_text()
                pids.update(int(p) for p in text.split())
    except OSError:
        me = os.getpid()
        return [info for info in snapshot().values() if info.ppid == me]
    infos = (read_stat(pid) for pid in pids)
    return [info for info in infos if info is not None]


def strays(in_use: Collection[int], *, spawning: bool) -> list[ProcInfo]:
    """Children of this process that it did not start itself: agents' descendants
    re-parented here (never in the daemon's own session, which no agent process can
    join). ``in_use``: the pids trio still waits for. While a spawn is under way its new
    leader may not be registered yet: a session leader is then left for the next pass."""
    my_sid = os.getsid(0)
    out: list[ProcInfo] = []
    for info in own_children():
        if info.pid in in_use or info.sid == my_sid:
            continue
        if spawning and info.sid == info.pid:
            continue
        out.append(info)
    return out


def reap(infos: Iterable[ProcInfo]) -> list[int]:
    """Collect the exit status of re-parented children that have ended; the pids reaped."""
    reaped: list[int] = []
    for info in infos:
        if not info.dead:
            continue
        with contextlib.suppress(ChildProcessError):
            pid, _ = os.waitpid(info.pid, os.WNOHANG)
            if pid:
                reaped.append(pid)
    return reaped


def kill_strays(in_use: Collection[int], rounds: int = KILL_ROUNDS) -> list[ProcInfo]:
    """At shutdown, after every agent was stopped: SIGKILL whatever re-parented process
    (and its descendants) is left, until none is."""
    killed: dict[tuple[int, int], ProcInfo] = {}
    my_sid = os.getsid(0)
    for _ in range(rounds):
        procs = snapshot()
        roots = [p for p in strays(in_use, spawning=False) if not p.dead]
        live = {p.pid: p for p in roots}
        children: dict[int, list[ProcInfo]] = {}
        for info in procs.values():
            if not info.dead:
                children.setdefault(info.ppid, []).append(info)
        stack = list(live)
        while stack:
            for child in children.get(stack.pop(), ()):
                if child.pid not in live and child.sid != my_sid:
                    live[child.pid] = child
                    stack.append(child.pid)
        if not live:
            break
        fresh = [info for info in live.values() if (info.pid, info.start) not in killed]
        signal_all(live.values(), signal.SIGKILL)
        for info in live.values():
            killed[(info.pid, info.start)] = info
        reap(strays(in_use, spawning=False))
        if not fresh:
            time.sleep(KILL_PAUSE_SECONDS)
    reap(strays(in_use, spawning=False))
    return list(killed.values())
