"""Notifications: stored for later, pushed live when the user is connected."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this module's routes (filled in by its feature)."""
