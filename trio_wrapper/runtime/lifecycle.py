"""The order in which the daemon's long-lived parts start and stop, in one place.

Both ways of serving use it: ``daemon.serve`` (the root nursery, with hypercorn in it)
and the no-argument ``api.app.create_app()`` for a plain ``hypercorn -k trio`` (the
app's nursery, from ``before_serving`` / ``after_serving``).

Start: the descriptor sampler, the hub's timers, the webhook's sender (``[notify]``),
then the supervisor (history loaded,
agents' nursery open), then the run index (synced in the background, after history has
marked interrupted runs).
Stop: the streams end first (each gets a ``shutdown`` event, or it would hold the HTTP
server's graceful stop for its whole timeout), then the server is told to stop taking
requests, then every agent is stopped (group SIGTERM, grace, SIGKILL), the webhook's
queue gets a few seconds to go out, then the run index writes their ends and closes.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from trio_wrapper.config import Config
from trio_wrapper.runtime.descriptors import Descriptors
from trio_wrapper.runtime.hub import Hub, HubLimits
from trio_wrapper.runtime.runindex import IndexService
from trio_wrapper.runtime.supervisor import Supervisor


def hub_limits(config: Config) -> HubLimits:
    return HubLimits.from_config(config.sse)


class Lifecycle:
    """Starts and stops the parts it owns: a hub, a supervisor, or both.

    A part given as ``None`` belongs to someone else (a test, or the daemon when the app
    is built over its parts), who starts and stops it.
    """

    def __init__(
        self,
        hub: Hub | None,
        supervisor: Supervisor | None,
        index: IndexService | None = None,
        descriptors: Descriptors | None = None,
    ) -> None:
        self.hub = hub
        self.supervisor = supervisor
        self.index = index
        self.descriptors = descriptors

    async def start(self, nursery: trio.Nursery) -> None:
        """Start the owned parts as tasks of ``nursery``; return once they are up."""
        if self.descriptors is not None:
            await nursery.start(self.descriptors.run)
        if self.hub is not None:
            await nursery.start(self.hub.run)
        if self.supervisor is not None:
            if self.supervisor.notifier is not None:
                await nursery.start(self.supervisor.notifier.run)
            await nursery.start(self.supervisor.run)
        if self.index is not None:
            await nursery.start(self.index.run)

    async def stop(self, stop_serving: Callable[[], object] | None = None) -> None:
        """Streams end, then ``stop_serving()`` (if the caller runs the server), then
        every agent stops; returns when they have."""
        if self.hub is not None:
            await self.hub.shutdown()
        if stop_serving is not None:
            stop_serving()
        if self.supervisor is not None:
            await self.supervisor.shutdown()
            if self.supervisor.notifier is not None:
                await self.supervisor.notifier.close()
        if self.index is not None:
            await self.index.stop()
        if self.descriptors is not None:
            self.descriptors.close()
