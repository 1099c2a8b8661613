"""A client's withdrawals: unused wallet funds back to the cards they came from (billing/withdrawals.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from api.accounts.auth import User, csrf_ok, require
from api.cluster import CLUSTER
from api.cluster.limits import SharedUserAndAddressLimiter
from api.core.client_address import client_address
from api.core.errors import ApiError, TooManyRequests
from api.core.keys import BILLING_METRICS, DATABASE, SETTINGS, STRIPE
from api.core.openapi import operation
from api.core.validation import cents, dollars, read_json, text
from api.pages.rendering import page_auth
from api.pages.wallet import render_wallet
from billing import withdrawals
from billing.errors import BillingError

WINDOW_SECONDS = 600.0
ADDRESS_FACTOR = 4
WITHDRAWAL_LIMITER = web.AppKey("withdrawal_limiter", SharedUserAndAddressLimiter)


@operation(summary="Withdraw unused wallet funds back to the card(s) they came from", roles=("client",),
           request="{amountCents, requestId}", response="{withdrawal: {id, requestId, amountCents, status,"
           " refundedCents, createdAt, parts}}", status=201, tags=("wallet",))
async def withdraw(request: web.Request) -> web.Response:
    """Idempotent by ``requestId``: the same request again is the same withdrawal (and finishes it)."""
    user = await require(request, "client")
    settings = request.app[SETTINGS]
    body = await read_json(request)
    amount = cents(body, "amountCents", low=1, high=settings.withdrawal_max_cents_per_day)
    request_id = text(body, "requestId", max_len=100)
    assert amount is not None
    withdrawal = await _withdraw(request, user, amount, request_id)
    return web.json_response({"withdrawal": withdrawal.as_json()}, status=201)


async def _withdraw(request: web.Request, user: User, amount: int, request_id: str) -> withdrawals.Withdrawal:
    settings = request.app[SETTINGS]
    # A retry of one requestId is one event: it may finish a withdrawal whose answer was lost.
    wait = await request.app[WITHDRAWAL_LIMITER].hit(user.id, client_address(request), token=request_id)
    if wait > 0:
        raise TooManyRequests("too many withdrawals; wait a little", headers={"Retry-After": str(int(wait) + 1)})
    pool = request.app[DATABASE].pool
    metrics = request.app[BILLING_METRICS]
    withdrawal, txns = await withdrawals.start(
        pool, client_id=user.id, cents=amount, request_id=request_id, now=datetime.now(UTC),
        limits=withdrawals.Limits(min_cents=settings.withdrawal_min_cents,
                                  max_per_day_cents=settings.withdrawal_max_cents_per_day))
    metrics.recorded(*txns)
    withdrawal, undone = await withdrawals.send(pool, request.app[STRIPE], withdrawal)
    metrics.recorded(*undone)
    return withdrawal


async def withdraw_form(request: web.Request) -> web.Response:
    """The wallet page's form, amount in dollars: the same withdrawal, then back to the wallet, which says what
    became of it. Its ``requestId`` is rendered with the page, so submitting the same form twice is one
    withdrawal. A refusal renders the page again with the reason (422), so no text travels in a URL."""
    auth = await page_auth(request, "client")
    form = await request.post()
    token = form.get("csrf")
    if not csrf_ok(request, auth, token if isinstance(token, str) else None):
        raise web.HTTPForbidden(text="missing or wrong CSRF token")
    amount, request_id = dollars(str(form.get("amount", ""))), str(form.get("requestId", ""))
    if amount is None or not 0 < amount <= request.app[SETTINGS].withdrawal_max_cents_per_day \
            or not 1 <= len(request_id) <= 100:
        return await render_wallet(request, auth, status=422,
                                   withdrawal_error="Give an amount in dollars and cents, such as 12.50.")
    try:
        withdrawal = await _withdraw(request, auth.user, amount, request_id)
    except (ApiError, BillingError) as exc:
        return await render_wallet(request, auth, status=422, withdrawal_error=exc.message)
    raise web.HTTPSeeOther(f"/wallet?withdrawal={withdrawal.id}")


@operation(summary="The client's withdrawals, newest first", roles=("client",), response="{withdrawals}",
           tags=("wallet",))
async def history(request: web.Request) -> web.Response:
    user = await require(request, "client")
    pool = request.app[DATABASE].pool
    ids = await pool.fetch("SELECT id::text FROM withdrawals WHERE client_id = $1 ORDER BY created_at DESC LIMIT 50",
                           user.id)
    found = [await withdrawals.get(pool, r["id"]) for r in ids]
    return web.json_response({"withdrawals": [w.as_json() for w in found if w is not None]})


def setup(app: web.Application) -> None:
    per_user = app[SETTINGS].withdrawal_rate_limit
    app[WITHDRAWAL_LIMITER] = SharedUserAndAddressLimiter("withdrawals", per_user, ADDRESS_FACTOR * per_user,
                                                          WINDOW_SECONDS, node=app.get(CLUSTER))
    app.router.add_post("/api/wallet/withdrawals", withdraw)
    app.router.add_get("/api/wallet/withdrawals", history)
    app.router.add_post("/wallet/withdraw", withdraw_form)
