"""Server-rendered pages (web/templates) and the static browser module."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this module's routes (filled in by its feature)."""
