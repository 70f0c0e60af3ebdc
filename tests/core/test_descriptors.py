"""The descriptor budget (pure): admissions add up from the last sample, refusals name
what to do, a new sample replaces the estimate."""

from __future__ import annotations

import pytest

from trio_wrapper.core.descriptors import DescriptorBudget
from trio_wrapper.core.errors import Refusal


def test_admits_up_to_the_ceiling_then_refuses() -> None:
    budget = DescriptorBudget(limit=100, reserve=20, in_use=60)
    budget.admit("agent 'a'", 8)
    budget.admit("agent 'b'", 8)
    assert budget.estimate == 76
    budget.admit("SSE client", 4)  # exactly the ceiling: still fits
    with pytest.raises(Refusal) as refused:
        budget.admit("SSE client", 1)
    assert refused.value.code == "too_many_open_files"
    assert "80 of 100 file descriptors" in refused.value.message
    assert "limits.fd_reserve" in refused.value.message
    assert budget.estimate == 80  # a refusal counts nothing


def test_a_sample_replaces_what_was_added() -> None:
    budget = DescriptorBudget(limit=100, reserve=20, in_use=75)
    budget.admit("x", 5)
    with pytest.raises(Refusal):
        budget.admit("x", 1)
    budget.sampled(40)  # streams closed meanwhile
    assert budget.estimate == 40
    budget.admit("x", 1)
    assert budget.added == 1


def test_tight_past_half_the_ceiling() -> None:
    budget = DescriptorBudget(limit=100, reserve=20, in_use=39)
    assert not budget.is_tight()
    budget.admit("x", 1)
    assert budget.is_tight()


def test_a_reserve_above_the_limit_refuses_everything() -> None:
    budget = DescriptorBudget(limit=10, reserve=64)
    assert budget.ceiling == 0
    with pytest.raises(Refusal):
        budget.admit("agent", 1)
