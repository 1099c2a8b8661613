"""A local stand-in for Stripe's HTTP API (Checkout Sessions only), and webhook signing with a test secret.

The app's ``stripe.StripeClient`` is pointed at it through ``STRIPE_API_BASE``; nothing leaves the machine.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import stripe
from aiohttp import web
from aiohttp.test_utils import TestServer

WEBHOOK_SECRET = "whsec_test_secret_for_soulseer_tests"
SECRET_KEY = "sk_test_soulseer_fake"


class FakeStripe:
    """Answers ``POST /v1/checkout/sessions`` like Stripe does, remembering each request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_with: int | None = None
        self._count = 0

    async def create_session(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.requests.append({"form": form, "authorization": request.headers.get("Authorization"),
                              "idempotency": request.headers.get("Idempotency-Key")})
        if self.fail_with is not None:
            return web.json_response({"error": {"type": "api_error", "message": "down"}}, status=self.fail_with)
        self._count += 1
        session_id = f"cs_test_{self._count:04d}"
        return web.json_response({
            "id": session_id, "object": "checkout.session", "mode": form.get("mode"),
            "url": f"https://checkout.stripe.test/c/pay/{session_id}",
            "amount_total": int(str(form["line_items[0][price_data][unit_amount]"])),
            "client_reference_id": form.get("client_reference_id"), "payment_status": "unpaid",
        })

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        app = web.Application()
        app.router.add_post("/v1/checkout/sessions", self.create_session)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            yield str(server.make_url("")).rstrip("/")
        finally:
            await server.close()


def signed(event: dict[str, Any], *, secret: str = WEBHOOK_SECRET, at: float | None = None) -> tuple[bytes, str]:
    """The body and Stripe-Signature header Stripe would send for ``event``."""
    payload = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, int(at or time.time()))
    return payload.encode(), header


def checkout_completed(event_id: str, checkout_id: str, client_id: str, cents: int, *, paid: bool = True,
                       payment_intent: str = "pi_1", event_type: str = "checkout.session.completed") -> dict:
    return {"id": event_id, "object": "event", "type": event_type, "data": {"object": {
        "id": checkout_id, "object": "checkout.session", "mode": "payment", "currency": "usd",
        "payment_status": "paid" if paid else "unpaid", "amount_total": cents, "client_reference_id": client_id,
        "metadata": {"client_id": client_id}, "payment_intent": payment_intent}}}
