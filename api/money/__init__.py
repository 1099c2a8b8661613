"""Money out: reader payouts over Stripe Connect (account onboarding, on-demand and scheduled payouts, the
earnings statement), client withdrawals back to the card, and the worker that finishes and schedules them."""

from __future__ import annotations

from aiohttp import web

from api.money import payout_routes, withdrawal_routes, worker

__all__ = ["setup"]


def setup(app: web.Application) -> None:
    payout_routes.setup(app)
    withdrawal_routes.setup(app)
    worker.setup(app)
