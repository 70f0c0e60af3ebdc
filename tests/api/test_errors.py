"""Every refusal the code can raise has its HTTP status in the one table."""

from __future__ import annotations

import re

from tests.helpers import REPO
from trio_wrapper.api.errors import HTTP_STATUS, HttpRefusal, http_status
from trio_wrapper.core.errors import Refusal, agent_not_found, invalid_request

_RAISED = re.compile(r'Refusal\(\s*"(\w+)"')


def test_every_code_raised_in_the_package_has_a_status() -> None:
    raised = {
        code
        for path in (REPO / "trio_wrapper").rglob("*.py")
        for code in _RAISED.findall(path.read_text())
    }
    assert raised, "the scan found no refusals at all: the pattern is stale"
    assert raised - HTTP_STATUS.keys() == set()


def test_statuses() -> None:
    assert http_status(agent_not_found("x")) == 404
    assert http_status(invalid_request("bad")) == 400
    assert http_status(Refusal("too_many_clients", "full")) == 503
    assert http_status(HttpRefusal(405, "method_not_allowed", "no")) == 405
    assert http_status(Refusal("no_such_code", "a bug of ours")) == 500
    assert agent_not_found("x").body() == {
        "error": {"code": "agent_not_found", "message": "no agent named 'x'"}
    }
