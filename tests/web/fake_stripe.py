"""A local stand-in for Stripe's API (Checkout Sessions only) and a Checkout page, for the wallet's browser test.

The app's Stripe client is pointed at it through ``STRIPE_API_BASE``; webhooks to the app are signed the way
Stripe signs them (``t=...,v1=HMAC-SHA256(secret, "t.payload")``) with the test's signing secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


class FakeStripe:
    """Creates Checkout Sessions like Stripe's API and serves a page for each, recording what was asked."""

    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}
        app = web.Application()
        app.router.add_post("/v1/checkout/sessions", self._create)
        app.router.add_get("/pay/{id}", self._page)
        self.server = TestServer(app, host="127.0.0.1")

    async def start(self) -> None:
        await self.server.start_server()

    async def close(self) -> None:
        await self.server.close()

    @property
    def api_base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def _create(self, request: web.Request) -> web.Response:
        form = await request.post()
        checkout_id = f"cs_test_{uuid.uuid4().hex[:16]}"
        session = {
            "id": checkout_id, "object": "checkout.session", "mode": "payment", "payment_status": "unpaid",
            "client_reference_id": form.get("client_reference_id"), "currency": "usd",
            "amount_total": int(str(form.get("line_items[0][price_data][unit_amount]"))),
            "success_url": str(form.get("success_url")).replace("{CHECKOUT_SESSION_ID}", checkout_id),
            "url": f"{self.api_base}/pay/{checkout_id}",
        }
        self.sessions[checkout_id] = session
        return web.json_response(session)

    async def _page(self, request: web.Request) -> web.Response:
        session = self.sessions[request.match_info["id"]]
        return web.Response(content_type="text/html",
                            text=f"<h1>Fake Checkout</h1><p>Pay {session['amount_total']} cents</p>")


def signed_event(secret: str, event_type: str, obj: dict[str, Any]) -> tuple[bytes, str]:
    """A webhook body and its ``Stripe-Signature`` header."""
    payload = json.dumps({"id": f"evt_{uuid.uuid4().hex[:16]}", "object": "event", "type": event_type,
                          "data": {"object": obj}}).encode()
    timestamp = int(time.time())
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={timestamp},v1={signature}"
