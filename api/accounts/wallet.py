"""Wallet endpoints: balance, add funds (Stripe Checkout), transaction history, reader earnings."""

from __future__ import annotations

import logging
import re

from aiohttp import web

from api.accounts.auth import require
from api.cluster import CLUSTER
from api.cluster.limits import SharedUserAndAddressLimiter
from api.core.client_address import client_address
from api.core.errors import NotFound, TooManyRequests
from api.core.keys import DATABASE, SETTINGS, STRIPE
from api.core.openapi import operation
from api.core.times import iso
from api.core.validation import cents, query_int, read_json
from billing import ledger
from billing.stripe_events import checkout_key, record_checkout

log = logging.getLogger(__name__)

# SOULSEER_ADD_FUNDS_RATE_LIMIT checkouts per client per this window, and this many times that per address.
ADD_FUNDS_WINDOW_SECONDS = 600.0
ADD_FUNDS_ADDRESS_FACTOR = 4
ADD_FUNDS_LIMITER = web.AppKey("add_funds_limiter", SharedUserAndAddressLimiter)
DEFAULT_PAGE = 50
MAX_PAGE = 200
PAGE_QUERY = {"limit": "page size, 1 to 200 (default 50)", "before": "the nextCursor of the previous page"}


def _page(request: web.Request) -> tuple[int, int | None]:
    """``?limit=`` (1..200) and ``?before=`` (a cursor from the previous page) of a history request."""
    limit = query_int(request, "limit", default=DEFAULT_PAGE, low=1, high=MAX_PAGE)
    return limit, query_int(request, "before")


def _history_page(items: list[dict], limit: int) -> dict:
    return {"transactions": items, "nextCursor": items[-1]["cursor"] if len(items) == limit else None}


@operation(summary="The client's wallet balance", roles=("client",), response="{balanceCents}", tags=("wallet",))
async def balance(request: web.Request) -> web.Response:
    """``{balanceCents}``: what the client's wallet holds."""
    user = await require(request, "client")
    return web.json_response({"balanceCents": await ledger.balance(request.app[DATABASE].pool, user.id)})


@operation(summary="The wallet's movements, newest first", roles=("client",),
           response="{transactions: [{id, kind, account, amountCents, ref, memo, createdAt, cursor}], nextCursor}",
           query=PAGE_QUERY, tags=("wallet",))
async def transactions(request: web.Request) -> web.Response:
    """``{transactions: [...], nextCursor}``: the wallet's movements, newest first."""
    user = await require(request, "client")
    limit, before = _page(request)
    items = await ledger.history(request.app[DATABASE].pool, user.id, limit=limit, before=before)
    return web.json_response(_history_page(items, limit))


@operation(summary="What the reader has earned, and each movement", roles=("reader",),
           response="{earningsCents, transactions: [...], nextCursor}", query=PAGE_QUERY, tags=("wallet",))
async def earnings(request: web.Request) -> web.Response:
    """``{earningsCents, transactions: [...], nextCursor}``: what the reader has earned, and how."""
    user = await require(request, "reader")
    limit, before = _page(request)
    pool = request.app[DATABASE].pool
    items = await ledger.history(pool, user.id, limit=limit, before=before)
    return web.json_response({"earningsCents": await ledger.earnings(pool, user.id), **_history_page(items, limit)})


@operation(summary="Open a Stripe Checkout page to add funds (credited by the webhook once paid)",
           roles=("client",), request="{amountCents}", response="{checkoutUrl, checkoutId, amountCents}",
           tags=("wallet",))
async def add_funds(request: web.Request) -> web.Response:
    """``{amountCents}`` -> ``{checkoutUrl}``: a Stripe Checkout page; the wallet is credited by the webhook."""
    user = await require(request, "client")
    settings = request.app[SETTINGS]
    body = await read_json(request)
    amount = cents(body, "amountCents", low=settings.add_funds_min_cents, high=settings.add_funds_max_cents)
    assert amount is not None
    # Each call opens a Stripe Checkout Session: counted (per client and per address) before Stripe is asked.
    wait = await request.app[ADD_FUNDS_LIMITER].hit(user.id, client_address(request))
    if wait > 0:
        raise TooManyRequests("too many checkouts opened; finish or wait for the ones you have",
                              headers={"Retry-After": str(int(wait) + 1)})
    checkout = await request.app[STRIPE].create_checkout(client_id=user.id, email=user.email, amount_cents=amount)
    await record_checkout(request.app[DATABASE].pool, checkout_id=checkout.id, client_id=user.id,
                          amount_cents=amount)
    return web.json_response({"checkoutUrl": checkout.url, "checkoutId": checkout.id, "amountCents": amount})


# A Checkout Session id as Stripe writes it (``cs_test_...``, ``cs_live_...``); anything else names no checkout.
_CHECKOUT_ID = re.compile(r"^cs_[A-Za-z0-9_]{1,200}$")


@operation(summary="One checkout the client opened, and whether its payment has been credited", roles=("client",),
           response='{checkout: {id, amountCents, status: "pending" | "credited", creditedAt}}', tags=("wallet",))
async def checkout_status(request: web.Request) -> web.Response:
    """What the wallet's return page says: the checkout named in its URL, credited or not yet (never another one)."""
    user = await require(request, "client")
    checkout_id = request.match_info["checkoutId"]
    row = None
    if _CHECKOUT_ID.match(checkout_id):
        row = await request.app[DATABASE].pool.fetchrow(
            "SELECT c.id, c.amount_cents, t.created_at AS credited_at FROM stripe_checkouts c"
            " LEFT JOIN ledger_transactions t ON t.key = $3 WHERE c.id = $1 AND c.client_id = $2",
            checkout_id, user.id, checkout_key(checkout_id))
    if row is None:  # unknown, malformed or another client's: the same answer
        raise NotFound("no such checkout", code="unknown_checkout")
    credited = row["credited_at"]
    return web.json_response({"checkout": {
        "id": row["id"], "amountCents": row["amount_cents"], "status": "credited" if credited else "pending",
        "creditedAt": iso(credited)}})


async def _close_stripe(app: web.Application) -> None:
    await app[STRIPE].close()


def setup(app: web.Application) -> None:
    per_user = app[SETTINGS].add_funds_rate_limit
    app[ADD_FUNDS_LIMITER] = SharedUserAndAddressLimiter("add-funds", per_user, ADD_FUNDS_ADDRESS_FACTOR * per_user,
                                                         ADD_FUNDS_WINDOW_SECONDS, node=app.get(CLUSTER))
    app.router.add_get("/api/webrtc/client/balance", balance)
    app.router.add_get("/api/webrtc/client/transactions", transactions)
    app.router.add_post("/api/webrtc/client/add-funds", add_funds)
    app.router.add_get("/api/webrtc/client/checkouts/{checkoutId}", checkout_status)
    app.router.add_get("/api/webrtc/reader/earnings", earnings)
    app.on_cleanup.append(_close_stripe)
