"""``trio-wrapper serve``: the root nursery that owns everything.

daemon (root nursery)
├── hub              SSE timers (flush, ping, sweep)
├── supervisor       agents, each in its own nursery
├── run index        SQLite off the event loop: runs, usage, retention (runtime.runindex)
├── stray reaper     collects agents' descendants re-parented here (the daemon is a subreaper)
├── heap trimmer     gives back what floods left in the heap once all is quiet
├── hypercorn        hypercorn.trio.serve(app, shutdown_trigger=…)
└── signal watcher   SIGTERM/SIGINT → orderly shutdown

The order of start and stop is ``runtime.lifecycle``'s, shared with the app served by a
plain ``hypercorn -k trio``.
"""

from __future__ import annotations

import gc
import logging
import os
import resource
import signal
from collections.abc import Sequence
from typing import TypeVar, cast

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.middleware import ProxyFixMiddleware
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope

from trio_wrapper.api.app import create_app
from trio_wrapper.api.sse import TRANSPORT_PEER
from trio_wrapper.config import Config
from trio_wrapper.extract import Rule
from trio_wrapper.runtime.connections import abort_server_connections
from trio_wrapper.runtime.deadlines import sweep_stale_deadlines_sooner
from trio_wrapper.runtime.descriptors import Descriptors
from trio_wrapper.runtime.garbage import RunGarbage
from trio_wrapper.runtime.heap import QuietTrim, keep_freed_heap
from trio_wrapper.runtime.hub import Hub
from trio_wrapper.runtime.lifecycle import Lifecycle, hub_limits
from trio_wrapper.runtime.process import kill_strays, reap_strays_forever
from trio_wrapper.runtime.proctree import become_subreaper
from trio_wrapper.runtime.runindex import IndexService
from trio_wrapper.runtime.supervisor import Supervisor

log = logging.getLogger("trio_wrapper")

GC_THRESHOLD = 50_000
IDLE_CONNECTION_GRACE = 0.2  # after the agents stopped, before idle connections are closed


def raise_open_file_limit() -> int:
    """Agents and clients each hold several descriptors: use all the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def hypercorn_config(config: Config) -> HypercornConfig:
    hc = HypercornConfig()
    host = config.server.host
    hc.bind = [f"[{host}]:{config.server.port}" if ":" in host else f"{host}:{config.server.port}"]
    hc.root_path = config.server.root_path
    hc.graceful_timeout = config.server.graceful_timeout_seconds
    hc.backlog = config.server.backlog
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.include_server_header = False
    # A request head larger than this is refused before it is all buffered (431, made
    # JSON by api.protocol_errors); the app checks the same limit on heads that arrive
    # whole in one read.
    hc.h11_max_incomplete_size = config.limits.max_header_bytes
    hc.h2_max_header_list_size = config.limits.max_header_bytes
    return hc


def served_app(app: ASGIFramework, config: Config) -> ASGIFramework:
    """The app as hypercorn serves it: behind ``forwarded_hops`` proxies, with the client
    address taken from X-Forwarded-For, and the TCP peer kept under ``TRANSPORT_PEER``
    (the hub's sweep finds a stalled client's socket by it)."""
    if not config.server.forwarded_hops:
        return app
    proxied = ProxyFixMiddleware(app, mode="legacy", trusted_hops=config.server.forwarded_hops)

    async def keep_transport_peer(
        scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http" or scope["type"] == "websocket":
            # An extra key the ASGI scope types do not name (only our own code reads it).
            scope = cast(Scope, {**scope, TRANSPORT_PEER: scope.get("client")})
        await proxied(scope, receive, send)

    return keep_transport_peer


class ListenError(Exception):
    """The server could not bind its address: a start-up failure, said in one line."""


E = TypeVar("E", bound=BaseException)


def first_leaf(exc: BaseException, kind: type[E]) -> E | None:
    """The first exception of ``kind`` in ``exc``, looking inside exception groups."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = first_leaf(inner, kind)
            if found is not None:
                return found
    return None


async def serve(config: Config, rules: Sequence[Rule] = ()) -> None:
    """Run until SIGTERM/SIGINT, then stop every agent and return (exit code 0)."""
    raise_open_file_limit()
    keep_freed_heap()
    sweep_stale_deadlines_sooner()
    # What an agent starts and abandons (setsid, a double fork) is re-parented to the
    # daemon instead of init, so a stop and the shutdown can still find and end it.
    why_not = become_subreaper()
    if why_not is not None:
        log.warning(
            "cannot become a child subreaper (%s): escaped processes go to init",
            why_not,
            extra={"event": "subreaper_refused", "reason": why_not},
        )
    reaper = trio.CancelScope()

    async def reap_strays() -> None:
        with reaper:
            await reap_strays_forever()

    descriptors = Descriptors(config.limits.fd_reserve)
    hub = Hub(hub_limits(config), descriptors)
    supervisor = Supervisor(config, observers=[hub], rules=rules, descriptors=descriptors)
    index = IndexService(config, supervisor.agents)
    supervisor.observers.append(index)
    # A run taken off the list is garbage in a cycle: collected soon, not at a quiet spell.
    run_garbage = RunGarbage()
    supervisor.observers.append(run_garbage)
    lifecycle = Lifecycle(hub, supervisor, index, descriptors)
    # What floods left in the heap is given back once nothing has happened for a while.
    trimmer = QuietTrim(
        lambda: hub.events_total + hub.subscriptions_total + supervisor.started_total
    )
    asgi = served_app(create_app(config, supervisor, hub, index), config)
    stop_serving = trio.Event()
    server_done = trio.Event()

    async def run_server(task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await hypercorn_serve(
                asgi,
                hypercorn_config(config),
                shutdown_trigger=stop_serving.wait,
                task_status=task_status,
            )
        finally:
            server_done.set()

    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            if why_not is None:
                nursery.start_soon(reap_strays)
            await lifecycle.start(nursery)
            nursery.start_soon(trimmer.run)
            nursery.start_soon(run_garbage.run)
            try:
                binds = await nursery.start(run_server)
            except (OSError, BaseExceptionGroup) as exc:
                failure = first_leaf(exc, OSError)
                if failure is None:
                    raise
                where = f"{config.server.host}:{config.server.port}"
                reason = (failure.strerror or str(failure)).lower()
                raise ListenError(f"cannot listen on {where}: {reason}") from None
            ports = [int(bind.rsplit(":", 1)[1]) for bind in binds]
            # Everything built at start lives as long as the daemon: keep the collector
            # from walking it again and again, and let it run less often (SSE fan-out and
            # extraction allocate a lot of short-lived objects; pauses show up as latency).
            gc.freeze()
            gc.set_threshold(GC_THRESHOLD, 20, 20)
            for bind in binds:
                # Tests and scripts read the bound port from this line (port 0 = ephemeral).
                log.info(
                    "trio-wrapper listening on %s",
                    bind,
                    extra={"event": "listening", "url": bind, "pid": os.getpid()},
                )
            async for signum in signals:
                name = signal.Signals(signum).name
                log.info(
                    "received %s: shutting down",
                    name,
                    extra={"event": "shutting_down", "signal": name},
                )
                break
        # Streams end first (with a `shutdown` event), or each would hold hypercorn's
        # graceful stop for its whole timeout; then the server stops, then the agents.
        await lifecycle.stop(stop_serving.set)
        trimmer.close()
        run_garbage.close()
        if why_not is None:
            # Every agent killed its own tree; what no run could claim any more (its
            # environment cleared, its session left) is still below the subreaper.
            strays = await kill_strays()
            if strays:
                log.info(
                    "killed %d stray agent processes",
                    len(strays),
                    extra={"event": "strays_killed", "count": len(strays)},
                )
        reaper.cancel()
        # Requests in flight had the agents' stop time to finish; what is still open now
        # is idle keep-alive, which hypercorn would otherwise wait out for its whole
        # graceful timeout.
        with trio.move_on_after(IDLE_CONNECTION_GRACE):
            await server_done.wait()
        if not server_done.is_set():
            for port in ports:
                abort_server_connections(port)
        log.info("all agents stopped; bye", extra={"event": "stopped"})
