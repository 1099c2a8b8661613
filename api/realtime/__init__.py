"""Realtime: the ``/ws`` signaling transport (liveness, flood control, origin check, routing ``join`` to the
channel of its feature), who is connected (presence), notifications stored and pushed, and TURN credentials."""

from __future__ import annotations

from aiohttp import web

from api.realtime import notifications, transport
from api.realtime.presence import PRESENCE, Presence

__all__ = ["setup"]


def setup(app: web.Application) -> None:
    """Presence, the notifications routes and ``/ws``; features then register their channels on it."""
    app[PRESENCE] = Presence()
    notifications.setup(app)
    transport.setup(app)
