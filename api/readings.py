"""Reading endpoints: request, accept, decline, cancel, end, details, history, scheduling."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this module's routes (filled in by its feature)."""
