"""The wallet page: the client's balance and adding funds through Stripe Checkout."""

from __future__ import annotations

import uuid

from aiohttp import web

from api.core.keys import DATABASE, SETTINGS
from api.pages.rendering import page_auth, render
from billing import ledger


async def wallet_page(request: web.Request) -> web.Response:
    auth = await page_auth(request, "client")
    settings = request.app[SETTINGS]
    balance = await ledger.balance(request.app[DATABASE].pool, auth.user.id)
    return await render(request, "wallet.html", auth, script="wallet", balance=balance,
                        withdrawal_notice=request.query.get("withdrawal", "")[:200],
                        withdrawal_request_id=str(uuid.uuid4()), data={
        "balanceCents": balance, "minCents": settings.add_funds_min_cents, "maxCents": settings.add_funds_max_cents,
        "paymentsEnabled": settings.stripe_secret_key is not None,
    })


def setup(app: web.Application) -> None:
    app.router.add_get("/wallet", wallet_page)
