"""Every route of the app needs the token (issue 15): a walk over its URL map.

For each rule and each of its methods, and for methods no rule has: without a token, with
a wrong one, and with the right one in ``?access_token=`` (taken on the SSE routes only),
the answer must be 401 unless the route is on ``guards.PUBLIC`` (safe methods) or the
method is safe and reads are not protected. A route added without thought is therefore
guarded; one that escapes the guard (served before Quart's ``before_request``, say) makes
this fail.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from quart.typing import TestClientProtocol as Client
from quart_trio import QuartTrio

from tests.helpers import make_config
from trio_wrapper.api.app import create_app
from trio_wrapper.api.guards import PUBLIC, SAFE_METHODS, TOKEN_IN_QUERY
from trio_wrapper.runtime.supervisor import Supervisor

TOKEN = "walk-s3cret"
# The routes a stranger may read without the token, spelled out here so that a route
# made public in guards.py shows up in review: liveness, the API's description, and the
# dashboard's page and files (which hold no data).
EXPECTED_PUBLIC = {
    "/api/health",
    "/openapi.json",
    "/docs",
    "/docs/assets/<name>",
    "/",
    "/ui/<name>",
}
# Methods no route has: a guard that lists what it protects would let these through.
OTHER_METHODS = ("PUT", "PATCH", "TRACE", "PROPFIND")
# Every request carries a bad ?history=, so that a stream route that lets the request in
# answers 400 at once instead of streaming; other routes ignore it.
QUERY = {"history": "bad"}


def concrete(rule: str) -> str:
    """A path the rule matches: every ``<converter:name>`` becomes a plain word."""
    return re.sub(r"<[^>]+>", "ghost", rule)


@pytest.fixture(params=[False, True], ids=["reads-open", "protect-reads"])
async def app(
    request: pytest.FixtureRequest, tmp_path: Path, nursery: trio.Nursery
) -> AsyncIterator[QuartTrio]:
    config = make_config(tmp_path, auth={"token": TOKEN, "protect_reads": request.param})
    supervisor = Supervisor(config)
    await nursery.start(supervisor.run)
    yield create_app(config, supervisor)
    with trio.fail_after(30):
        await supervisor.shutdown()


def needs_token(app: QuartTrio, rule: str | None, method: str) -> bool:
    protect_reads = app.extensions["trio_wrapper"].config.auth.protect_reads
    if method == "OPTIONS":
        return False
    if method in SAFE_METHODS:
        return protect_reads and rule not in PUBLIC
    return True


async def answers(client: Client, method: str, path: str, query_token: bool = False) -> int:
    query = {**QUERY, "access_token": TOKEN} if query_token else QUERY
    response = await client.open(path, method=method, query_string=query)
    return response.status_code


async def test_every_route_needs_the_token_unless_public(app: QuartTrio) -> None:
    rules = list(app.url_map.iter_rules())
    assert PUBLIC == EXPECTED_PUBLIC
    assert {r.rule for r in rules} >= PUBLIC, "PUBLIC names a route that does not exist"
    assert {r.rule for r in rules} >= TOKEN_IN_QUERY, "TOKEN_IN_QUERY is stale"
    checked = 0
    async with app.test_app() as test_app:
        client = test_app.test_client()
        for rule in rules:
            path = concrete(rule.rule)
            for method in sorted({*(rule.methods or ()), *OTHER_METHODS}):
                guarded = needs_token(app, rule.rule, method)
                status = await answers(client, method, path)
                assert (status == 401) == guarded, (method, rule.rule, status)
                # The query token counts on the SSE routes alone (with their methods).
                by_query = rule.rule in TOKEN_IN_QUERY and method in (rule.methods or ())
                status = await answers(client, method, path, query_token=True)
                assert (status == 401) == (guarded and not by_query), ("query", method, path)
                wrong = await client.open(
                    path, method=method, query_string=QUERY, headers={"Authorization": "Bearer x"}
                )
                assert (wrong.status_code == 401) == guarded, (method, rule.rule)
                right = await client.open(
                    path,
                    method=method,
                    query_string=QUERY,
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
                assert right.status_code != 401, (method, rule.rule)
                checked += 1
    assert checked > 30


async def test_a_route_added_later_is_guarded(app: QuartTrio) -> None:
    @app.route("/api/new-thing", methods=["GET", "POST"])
    async def new_thing() -> str:
        return "unguarded"

    async with app.test_app() as test_app:
        client = test_app.test_client()
        assert (await client.post("/api/new-thing")).status_code == 401
        protect_reads = app.extensions["trio_wrapper"].config.auth.protect_reads
        assert ((await client.get("/api/new-thing")).status_code == 401) == protect_reads


async def test_unknown_paths_need_the_token_too(app: QuartTrio) -> None:
    """No route: the token is still asked for first (a 404 would tell what exists)."""
    async with app.test_app() as test_app:
        client = test_app.test_client()
        assert (await client.post("/api/nothing")).status_code == 401
        assert (await client.delete("/nothing/at/all")).status_code == 401
