"""Readings: paid 1:1 sessions. The pure state machine (states), the rows (store) and their leases, the runtime
of a running reading and the node's live readings, chat, REST, the readings channel of ``/ws``, scheduled
readings and reader slots."""

from __future__ import annotations

from aiohttp import web

from api.readings import routes, signaling, slots

__all__ = ["setup"]


def setup(app: web.Application) -> None:
    """The readings routes and channel (after :func:`api.realtime.setup`; ``app[LIVE_READINGS]`` is set)."""
    routes.setup(app)
    slots.setup(app)
    signaling.setup(app)
