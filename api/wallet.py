"""Wallet endpoints: balance, add funds (Stripe Checkout), transaction history, reader earnings."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this module's routes (filled in by its feature)."""
