"""The fuzz tests run by ``make fuzz`` (FUZZ=1), not by ``make test``: thousands of
examples each, minutes rather than seconds. Plain ``pytest`` lists them as skipped."""

from __future__ import annotations

import os

import pytest

FUZZING = os.environ.get("FUZZ") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if FUZZING:
        return
    skip = pytest.mark.skip(reason="fuzz test: run by `make fuzz` (FUZZ=1)")
    for item in items:
        if "tests/fuzz/" in item.nodeid.replace("\\", "/"):
            item.add_marker(skip)
