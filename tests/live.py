"""A real hypercorn on an ephemeral loopback port inside the test's nursery."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio
from hypercorn.trio import serve

from tests.helpers import PY, make_config, wait_for
from trio_wrapper.api.app import create_app, hub_limits
from trio_wrapper.daemon import hypercorn_config, served_app
from trio_wrapper.runtime.agent import AgentSpec
from trio_wrapper.runtime.hub import Hub
from trio_wrapper.runtime.supervisor import Supervisor

# An agent that prints a line per stdin line: the test decides when output happens.
ECHO = [PY, "-c", "import sys\nfor l in sys.stdin: print(l.strip(), flush=True)"]


@dataclass
class Live:
    url: str
    port: int
    hub: Hub
    supervisor: Supervisor


@asynccontextmanager
async def live_server(tmp_path: Path, **sections: dict[str, Any]) -> AsyncIterator[Live]:
    sections["server"] = {"port": 0, **sections.get("server", {})}
    config = make_config(tmp_path, **sections)
    hub = Hub(hub_limits(config))
    supervisor = Supervisor(config, observers=[hub])
    app = served_app(create_app(config, supervisor, hub), config)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        await nursery.start(supervisor.run)
        binds = await nursery.start(
            partial(serve, app, hypercorn_config(config), shutdown_trigger=stop.wait)
        )
        url = binds[0]
        try:
            yield Live(url, int(url.rsplit(":", 1)[1]), hub, supervisor)
        finally:
            with trio.CancelScope(shield=True), trio.fail_after(30):
                await hub.shutdown()
                stop.set()
                await supervisor.shutdown()


async def run_echo(live: Live, name: str, lines: int) -> None:
    """An ``ECHO`` agent fed ``lines`` lines at once, then its end of input; until it ends."""
    agent = await live.supervisor.start(AgentSpec(name, ECHO, stdin=True))
    payload = "".join(f"line {i}\n" for i in range(lines)).encode()
    await agent.write_input(payload, eof=True, write_timeout=5)
    await wait_for(lambda: not agent.is_live)
