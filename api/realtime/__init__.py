"""Realtime: the ``/ws`` signaling transport (liveness, flood control, origin check, routing ``join`` to the
channel of its feature), who is connected (presence), notifications stored and pushed, and TURN credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from api.cluster import CLUSTER
from api.realtime import notifications, transport
from api.realtime.bridge import SIGNAL_BRIDGE, SignalBridge
from api.realtime.fanout import FANOUT, Fanout
from api.realtime.presence import PRESENCE, Presence

__all__ = ["setup"]


def setup(app: web.Application) -> None:
    """Presence, the notifications routes and ``/ws`` (with the signal bridge in a cluster); features then
    register their channels on it."""
    app[PRESENCE] = Presence()
    node = app.get(CLUSTER)
    app[FANOUT] = Fanout(app, node)
    notifications.setup(app)
    transport.setup(app)
    if node is not None:
        app[SIGNAL_BRIDGE] = SignalBridge(app, node)
        app.cleanup_ctx.append(_cluster_signaling)


async def _cluster_signaling(app: web.Application) -> AsyncIterator[None]:
    await app[SIGNAL_BRIDGE].start()
    yield
    await app[SIGNAL_BRIDGE].close()
    await app[FANOUT].close()
