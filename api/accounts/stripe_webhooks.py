"""Stripe webhooks: verified on the raw body, deduplicated by event id, turned into ledger movements."""

from __future__ import annotations

import logging

from aiohttp import web

from api.core.keys import BILLING_METRICS, DATABASE, STRIPE
from api.core.openapi import operation
from billing.errors import PaymentsUnavailable, WebhookRejected
from billing.stripe_events import handle_event
from billing.stripe_gateway import StripeGateway

log = logging.getLogger(__name__)


@operation(summary="Stripe webhook (authenticated by its Stripe-Signature header, not a login)",
           request="a Stripe event", response="{received, outcome}", tags=("wallet",))
async def webhook(request: web.Request) -> web.Response:
    """No user auth: the Stripe-Signature header is the authentication. A bad signature is a 400 (Stripe
    shows it in its dashboard); a handled or ignored event is a 200; a failure is a 500 so Stripe retries."""
    gateway = request.app[STRIPE]
    metrics = request.app[BILLING_METRICS]
    if not gateway.webhooks_enabled:
        raise PaymentsUnavailable("webhooks are not configured on this server")
    payload = await request.read()
    try:
        event = gateway.verify(payload, request.headers.get("Stripe-Signature"))
    except WebhookRejected:
        metrics.webhook("unverified", "rejected")
        log.warning("webhook rejected", extra={"remote": request.remote})
        raise
    if event["type"].startswith("v2.core.account"):
        event = await _hydrated(gateway, event)
    outcome = await handle_event(request.app[DATABASE].pool, event, metrics=metrics)
    return web.json_response({"received": True, "outcome": outcome})


async def _hydrated(gateway: StripeGateway, event: dict) -> dict:
    """An Accounts v2 (thin) event names its account only: ask Stripe for the account's transfers status now
    (outside the database transaction), so billing records what Stripe says, not what the event implies. If
    Stripe cannot be reached the webhook fails (503) and Stripe delivers it again."""
    related = event.get("related_object")
    account_id = related.get("id") if isinstance(related, dict) else None
    if not isinstance(account_id, str):
        return event
    status = await gateway.transfers_status(account_id)
    return {**event, "data": {"object": {"id": account_id, "transfers_status": status}}}


def setup(app: web.Application) -> None:
    app.router.add_post("/api/webrtc/webhook", webhook)
