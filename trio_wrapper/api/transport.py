"""The TCP peer of a request, as the socket knows it (not as a proxy says)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Scope key for the TCP peer when a proxy-fix layer rewrote ``client`` (daemon.served_app).
TRANSPORT_PEER = "trio_wrapper.transport_peer"


def transport_peer(scope: Mapping[str, Any]) -> tuple[str, int] | None:
    client = scope[TRANSPORT_PEER] if TRANSPORT_PEER in scope else scope.get("client")
    if isinstance(client, tuple) and len(client) == 2:
        return client  # hypercorn's own tuple: nothing more to keep per stream
    return (client[0], client[1]) if client else None


__all__ = ["TRANSPORT_PEER", "transport_peer"]
