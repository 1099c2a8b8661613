"""Reader endpoints: rates, availability, and the list of readers clients can book."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this module's routes (filled in by its feature)."""
