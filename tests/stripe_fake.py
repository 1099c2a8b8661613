"""The one local stand-in for Stripe: its HTTP API (Checkout Sessions and, through ``connect``, the Connect
accounts, transfers and refunds of money out: tests/billing/connect_fake.py) and a Checkout page, a real local
HTTP server; and webhooks signed the way Stripe signs them, with a test secret.

The app's ``stripe.StripeClient`` is pointed at it through ``STRIPE_API_BASE``; nothing leaves the machine.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import stripe
from aiohttp import web
from aiohttp.test_utils import TestServer

from config import Settings
from tests.billing.connect_fake import FakeConnect

WEBHOOK_SECRET = "whsec_test_secret_for_soulseer_tests"
SECRET_KEY = "sk_test_soulseer_fake"


def with_stripe(settings: Settings, api_base: str, **changes: Any) -> Settings:
    """``settings`` with payments configured against a fake at ``api_base`` (the test keys, a public URL)."""
    return replace(settings, stripe_secret_key=SECRET_KEY, stripe_webhook_secret=WEBHOOK_SECRET,
                   stripe_api_base=api_base, public_url="https://soulseer.test", **changes)


class FakeStripe:
    """Answers ``POST /v1/checkout/sessions`` like Stripe does, remembering each request and session, and serves
    a Checkout page for each session at its ``url``. ``fail_with`` makes the API answer that HTTP status."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        self.fail_with: int | None = None
        self._server: TestServer | None = None
        self.connect = FakeConnect()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/checkout/sessions", self._create)
        app.router.add_get("/c/pay/{id}", self._page)
        app.add_routes(self.connect.routes())
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    @property
    def api_base(self) -> str:
        assert self._server is not None, "start() first"
        return str(self._server.make_url("")).rstrip("/")

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """The fake, started, for the length of a ``with``: yields its API base URL."""
        await self.start()
        try:
            yield self.api_base
        finally:
            await self.close()

    async def _create(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.requests.append({"form": form, "authorization": request.headers.get("Authorization"),
                              "idempotency": request.headers.get("Idempotency-Key")})
        if self.fail_with is not None:
            return web.json_response({"error": {"type": "api_error", "message": "down"}}, status=self.fail_with)
        checkout_id = f"cs_test_{len(self.sessions) + 1:04d}"
        session = {
            "id": checkout_id, "object": "checkout.session", "mode": form.get("mode"), "currency": "usd",
            "url": f"{self.api_base}/c/pay/{checkout_id}", "payment_status": "unpaid",
            "amount_total": int(str(form["line_items[0][price_data][unit_amount]"])),
            "client_reference_id": form.get("client_reference_id"),
            "success_url": str(form.get("success_url")).replace("{CHECKOUT_SESSION_ID}", checkout_id),
        }
        self.sessions[checkout_id] = session
        return web.json_response(session)

    async def _page(self, request: web.Request) -> web.Response:
        session = self.sessions[request.match_info["id"]]
        return web.Response(content_type="text/html",
                            text=f"<h1>Fake Checkout</h1><p>Pay {session['amount_total']} cents</p>")


def signed(event: dict[str, Any], *, secret: str = WEBHOOK_SECRET, at: float | None = None) -> tuple[bytes, str]:
    """The body and Stripe-Signature header Stripe would send for ``event``."""
    payload = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, int(at or time.time()))
    return payload.encode(), header


def event(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    """A Stripe event of ``event_type`` about ``obj``, with a fresh id."""
    return {"id": f"evt_{uuid.uuid4().hex[:16]}", "object": "event", "type": event_type, "data": {"object": obj}}


def checkout_completed(event_id: str, checkout_id: str, client_id: str, cents: int, *, paid: bool = True,
                       payment_intent: str = "pi_1", event_type: str = "checkout.session.completed") -> dict:
    return {"id": event_id, "object": "event", "type": event_type, "data": {"object": {
        "id": checkout_id, "object": "checkout.session", "mode": "payment", "currency": "usd",
        "payment_status": "paid" if paid else "unpaid", "amount_total": cents, "client_reference_id": client_id,
        "metadata": {"client_id": client_id}, "payment_intent": payment_intent}}}
