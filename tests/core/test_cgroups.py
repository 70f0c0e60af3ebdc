"""The cgroup texts the kernel writes, read (pure)."""

from __future__ import annotations

from trio_wrapper.core import cgroups

HYBRID = """\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
32 31 0:27 / /sys/fs/cgroup/unified rw,nosuid,relatime shared:10 - cgroup2 cgroup2 rw
35 31 0:30 / /sys/fs/cgroup/memory rw,nosuid,relatime shared:14 - cgroup cgroup rw,memory
"""
PURE_V2 = "35 24 0:30 / /sys/fs/cgroup rw,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n"
V1_ONLY = "35 31 0:30 / /sys/fs/cgroup/memory rw,relatime shared:14 - cgroup cgroup rw,memory\n"


def test_finds_the_v2_mount_on_hybrid_and_pure_systems() -> None:
    assert cgroups.cgroup2_mount(HYBRID) == "/sys/fs/cgroup/unified"
    assert cgroups.cgroup2_mount(PURE_V2) == "/sys/fs/cgroup"
    assert cgroups.cgroup2_mount(V1_ONLY) is None
    escaped = "40 24 0:40 / /mnt/my\\040cgroups rw - cgroup2 none rw\n"
    assert cgroups.cgroup2_mount(escaped) == "/mnt/my cgroups"


def test_own_cgroup_is_the_v2_line() -> None:
    text = "4:memory:/x/y\n1:name=systemd:/user.slice\n0::/system.slice/tw.service\n"
    assert cgroups.own_cgroup(text) == "/system.slice/tw.service"
    assert cgroups.own_cgroup("0::/\n") == "/"
    assert cgroups.own_cgroup("4:memory:/x\n") is None
    assert cgroups.own_cgroup("0::/gone (deleted)\n") is None


def test_figures() -> None:
    stat = "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n"
    assert cgroups.cpu_seconds(stat) == 1.5
    assert cgroups.cpu_seconds("") is None
    assert cgroups.memory_bytes("4096\n") == 4096
    assert cgroups.memory_bytes("max\n") is None
    assert cgroups.memory_bytes("") is None
    assert cgroups.pids("12\n13\n") == [12, 13]


def test_names_are_one_safe_path_component() -> None:
    name = cgroups.agent_cgroup_name("my agent/../x", "2026-12-06-10-00-00-2", "0123456789abcdef")
    assert name == "my_agent_.._x.2026-12-06-10-00-00-2.01234567"
    assert "/" not in name
