"""Accounts: who a user is and what they hold. Registration and login (sessions by cookie or bearer, CSRF,
roles), passwords, the login throttle, reader profiles, reader rates and availability, the wallet and the
Stripe webhooks that fill it."""

from __future__ import annotations

from aiohttp import web

from api.accounts import login, profiles, readers, stripe_webhooks, wallet

__all__ = ["setup"]


def setup(app: web.Application) -> None:
    """The accounts routes: login, rates and availability, the wallet, Stripe webhooks, profiles."""
    login.setup(app)
    readers.setup(app)
    wallet.setup(app)
    stripe_webhooks.setup(app)
    profiles.setup(app)
