"""The retention policy on a scripted history."""

from __future__ import annotations

from trio_wrapper.history.retention import (
    DAY_SECONDS,
    RetentionPolicy,
    RunOnDisk,
    choose_removals,
)

NOW = 1_800_000_000.0


def run(name: str, days_ago: float, size: int = 100, *, protected: bool = False) -> RunOnDisk:
    started = NOW - days_ago * DAY_SECONDS
    return RunOnDisk(f"{name}/{days_ago:06.2f}", name, size, started, protected)


HISTORY = [
    run("a", 10),
    run("a", 5),
    run("a", 1),
    run("a", 0.1, protected=True),  # the listed (newest) run of a
    run("b", 30),
    run("b", 20, size=1000),
    run("c", 2, protected=True),  # live
]


def removed(policy: RetentionPolicy, runs: list[RunOnDisk] = HISTORY) -> list[tuple[str, str]]:
    return [(r.run.id, r.reason) for r in choose_removals(runs, policy, NOW)]


def test_off_removes_nothing() -> None:
    assert not RetentionPolicy().active
    assert removed(RetentionPolicy()) == []


def test_keep_runs_per_name() -> None:
    assert removed(RetentionPolicy(keep_runs=2)) == [
        ("a/010.00", "keep_runs"),
        ("a/005.00", "keep_runs"),
    ]


def test_keep_runs_never_removes_protected() -> None:
    runs = [run("x", 3, protected=True), run("x", 2, protected=True), run("x", 1)]
    # Keep one: the newest is removable, the two older ones are protected.
    assert removed(RetentionPolicy(keep_runs=1), runs) == []
    runs.append(run("x", 0.5))
    assert removed(RetentionPolicy(keep_runs=1), runs) == [("x/001.00", "keep_runs")]


def test_keep_days() -> None:
    assert removed(RetentionPolicy(keep_days=7)) == [
        ("b/030.00", "keep_days"),
        ("b/020.00", "keep_days"),
        ("a/010.00", "keep_days"),
    ]


def test_unknown_start_is_never_too_old() -> None:
    runs = [RunOnDisk("d/x", "d", 10, None)]
    assert removed(RetentionPolicy(keep_days=1), runs) == []


def test_max_total_bytes_oldest_first() -> None:
    # Total 1600; at most 500: b/30 (100) then b/20 (1000) go, leaving 500.
    assert removed(RetentionPolicy(max_total_bytes=500)) == [
        ("b/030.00", "max_total_bytes"),
        ("b/020.00", "max_total_bytes"),
    ]


def test_max_total_bytes_skips_protected_and_may_stay_over() -> None:
    runs = [run("p", 5, size=1000, protected=True), run("q", 1, size=10)]
    assert removed(RetentionPolicy(max_total_bytes=100), runs) == [("q/001.00", "max_total_bytes")]


def test_rules_combine() -> None:
    got = removed(RetentionPolicy(keep_runs=3, keep_days=25, max_total_bytes=350))
    assert got == [
        ("b/030.00", "keep_days"),
        ("b/020.00", "max_total_bytes"),
        ("a/010.00", "keep_runs"),
        ("a/005.00", "max_total_bytes"),
    ]
