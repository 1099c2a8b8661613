"""Live streams: a reader broadcasts to many viewers. Who is on a stream (audience) and who gave most
(leaderboard), the hub that fans events out to sockets, the stream rows, REST, the streams channel of
``/ws``, the gift catalogue and sending gifts."""

from __future__ import annotations

from aiohttp import web

from api.streams import gift_catalogue, gift_sending, routes, signaling

__all__ = ["setup"]


def setup(app: web.Application) -> None:
    """The streams routes and channel (after :func:`api.realtime.setup`)."""
    routes.setup(app)
    gift_catalogue.setup(app)
    gift_sending.setup(app)
    signaling.setup(app)
