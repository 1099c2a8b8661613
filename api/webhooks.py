"""Stripe webhooks: verified, deduplicated, turned into ledger movements."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this module's routes (filled in by its feature)."""
