"""What the kernel says about cgroups, read as text (pure): where cgroup v2 is mounted,
which cgroup a process is in, an agent cgroup's name, and its CPU and memory figures."""

from __future__ import annotations

import re

# A cgroup's name is one path component (at most 255 bytes); agent names are shorter.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def cgroup2_mount(mountinfo: str) -> str | None:
    """The mount point of the cgroup v2 hierarchy in ``/proc/self/mountinfo``: on a pure
    v2 system ``/sys/fs/cgroup``, on a hybrid one usually ``/sys/fs/cgroup/unified``."""
    for line in mountinfo.splitlines():
        before, sep, after = line.partition(" - ")
        if not sep:
            continue
        fields = before.split()
        if len(fields) >= 5 and after.split()[:1] == ["cgroup2"]:
            # Octal escapes (\040 for a space) as the kernel writes them.
            return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
    return None


def own_cgroup(proc_cgroup: str) -> str | None:
    """The process's cgroup v2 path (``0::/…`` in ``/proc/<pid>/cgroup``)."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            path = line[3:].strip()
            if path.endswith(" (deleted)"):
                return None
            return path or "/"
    return None


def agent_cgroup_name(name: str, stamp: str, cookie: str) -> str:
    """One run's cgroup: its name and stamp (readable in ``systemd-cgls``) and a piece of
    its cookie (two daemons may share a parent cgroup and an agent name)."""
    return _UNSAFE.sub("_", f"{name}.{stamp}.{cookie[:8]}")


def cpu_seconds(cpu_stat: str) -> float | None:
    """``usage_usec`` of ``cpu.stat`` (present in every v2 cgroup, with or without the
    cpu controller), in seconds."""
    for line in cpu_stat.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec" and value.strip().isdigit():
            return int(value) / 1_000_000
    return None


def memory_bytes(text: str) -> int | None:
    """``memory.current`` or ``memory.peak``: one number, or None."""
    value = text.strip()
    return int(value) if value.isascii() and value.isdigit() else None


def pids(cgroup_procs: str) -> list[int]:
    return [int(p) for p in cgroup_procs.split() if p.isdigit()]
