"""Shared fixtures: a real supervisor in the test's nursery and the app over it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from quart.typing import TestClientProtocol as Client

from tests.helpers import make_config
from trio_wrapper.api.app import create_app
from trio_wrapper.config import Config
from trio_wrapper.runtime.supervisor import Supervisor


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
async def supervisor(nursery: trio.Nursery, config: Config) -> AsyncIterator[Supervisor]:
    sup = Supervisor(config)
    await nursery.start(sup.run)
    yield sup
    with trio.fail_after(30):
        await sup.shutdown()


@pytest.fixture
async def client(config: Config, supervisor: Supervisor) -> AsyncIterator[Client]:
    app = create_app(config, supervisor)
    async with app.test_app() as test_app:
        yield test_app.test_client()
