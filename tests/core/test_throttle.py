"""At most one line per kind per interval; the count of those held back."""

from __future__ import annotations

from trio_wrapper.core.throttle import Throttle


def test_first_of_a_kind_goes_through_then_the_rest_are_counted() -> None:
    throttle = Throttle(60.0)
    assert throttle.admit("too_many_agents", 0.0) == 0
    assert throttle.admit("too_many_agents", 1.0) is None
    assert throttle.admit("too_many_agents", 59.9) is None
    assert throttle.held("too_many_agents") == 2
    # The next line after the interval says how many were left out meanwhile.
    assert throttle.admit("too_many_agents", 60.0) == 2
    assert throttle.held("too_many_agents") == 0
    assert throttle.admit("too_many_agents", 61.0) is None
    assert throttle.admit("too_many_agents", 200.0) == 1


def test_kinds_are_counted_apart() -> None:
    throttle = Throttle(10.0)
    assert throttle.admit("a", 0.0) == 0
    assert throttle.admit("b", 1.0) == 0
    assert throttle.admit("a", 2.0) is None
    assert throttle.held("b") == 0
    assert throttle.admit("b", 11.0) == 0
    assert throttle.admit("a", 11.0) == 1


def test_a_flood_costs_one_line_per_interval() -> None:
    throttle = Throttle(1.0)
    let_through = [throttle.admit("k", i / 1000) for i in range(10_000)]  # 10 s of floods
    assert sum(1 for held in let_through if held is not None) == 10
    assert sum(held or 0 for held in let_through) + throttle.held("k") == 10_000 - 10


def test_zero_interval_lets_everything_through() -> None:
    throttle = Throttle(0.0)
    assert [throttle.admit("k", 5.0) for _ in range(3)] == [0, 0, 0]
