"""Premium messages: threads between a client and a reader, paid per message by the client (replies are free),
the rule for when an unanswered message is refunded, and the sweeper that refunds them."""

from __future__ import annotations

from aiohttp import web

from api.messages import refund_sweeper, routes

__all__ = ["setup"]


def setup(app: web.Application) -> None:
    """The messages routes and the refund sweeper."""
    routes.setup(app)
    refund_sweeper.setup(app)
