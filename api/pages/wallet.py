"""The wallet page: the client's balance, adding funds through Stripe Checkout, withdrawing to the card."""

from __future__ import annotations

import uuid

from aiohttp import web

from api.accounts.auth import AuthContext
from api.core.keys import DATABASE, SETTINGS
from api.pages.format import money
from api.pages.rendering import page_auth, render
from billing import ledger, withdrawals


async def wallet_page(request: web.Request) -> web.Response:
    auth = await page_auth(request, "client")
    return await render_wallet(request, auth, withdrawal_notice=await _withdrawal_notice(request, auth))


async def render_wallet(request: web.Request, auth: AuthContext, *, withdrawal_notice: str = "",
                        withdrawal_error: str = "", status: int = 200) -> web.Response:
    """The page; the withdrawal form's handler (api/money/withdrawal_routes.py) renders it with its error."""
    settings = request.app[SETTINGS]
    balance = await ledger.balance(request.app[DATABASE].pool, auth.user.id)
    return await render(request, "wallet.html", auth, script="wallet", balance=balance, status=status,
                        withdrawal_notice=withdrawal_notice, withdrawal_error=withdrawal_error,
                        withdrawal_request_id=str(uuid.uuid4()), data={
        "balanceCents": balance, "minCents": settings.add_funds_min_cents, "maxCents": settings.add_funds_max_cents,
        "paymentsEnabled": settings.stripe_secret_key is not None,
    })


async def _withdrawal_notice(request: web.Request, auth: AuthContext) -> str:
    """What became of the withdrawal the URL names (``?withdrawal=<id>``, the form's redirect), if it is this
    client's: the page says only what the ledger says, never text from the URL."""
    try:
        withdrawal_id = str(uuid.UUID(request.query.get("withdrawal", "")))
    except ValueError:
        return ""
    withdrawal = await withdrawals.get(request.app[DATABASE].pool, withdrawal_id)
    if withdrawal is None or withdrawal.client_id != auth.user.id:
        return ""
    refunded = money(withdrawal.refunded_cents)
    if withdrawal.status == "done":
        return f"{refunded} is on its way back to your card."
    if withdrawal.status == "failed":
        return "The card refund failed: the money is back in your wallet."
    return f"{refunded} of {money(withdrawal.cents)} refunded so far; the rest stays in your wallet."


def setup(app: web.Application) -> None:
    app.router.add_get("/wallet", wallet_page)
