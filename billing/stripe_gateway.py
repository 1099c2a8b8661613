"""Stripe, as billing sees it: Checkout Sessions to add funds, and webhook signature verification.

One ``stripe.StripeClient`` per app with its own API key and base address (never the library's global
``stripe.api_key``), over aiohttp so no call blocks the event loop. Webhooks are verified on the raw body
with the library's ``WebhookSignature`` (``t=...,v1=HMAC-SHA256(secret, "t.body")``), within 300 s.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import stripe

from billing.errors import PaymentsUnavailable, WebhookRejected

log = logging.getLogger(__name__)

CURRENCY = "usd"
# Stripe's own default: a signed event older than this is refused (a replayed capture of an old delivery).
TOLERANCE_SECONDS = 300
_REQUEST_TIMEOUT_SECONDS = 20


@dataclass(frozen=True)
class Checkout:
    id: str
    url: str
    amount_cents: int


class StripeGateway:
    """Talks to Stripe for one app. Without a secret key, adding funds is unavailable; without a webhook
    signing secret, webhooks are refused (nothing can be credited from an unverifiable request)."""

    def __init__(self, *, secret_key: str | None, webhook_secret: str | None, api_base: str | None,
                 public_url: str) -> None:
        self._webhook_secret = webhook_secret
        self._public_url = public_url.rstrip("/")
        self._http: Any = None
        self._client: stripe.StripeClient | None = None
        if secret_key:
            self._http = stripe.AIOHTTPClient(timeout=_REQUEST_TIMEOUT_SECONDS)
            self._client = stripe.StripeClient(
                secret_key, base_addresses={"api": api_base or stripe.DEFAULT_API_BASE},
                http_client=self._http, max_network_retries=1)

    @property
    def checkout_enabled(self) -> bool:
        return self._client is not None

    @property
    def webhooks_enabled(self) -> bool:
        return bool(self._webhook_secret)

    async def create_checkout(self, *, client_id: str, email: str, amount_cents: int) -> Checkout:
        """A Checkout Session paying ``amount_cents`` into the client's wallet (credited by the webhook)."""
        if self._client is None:
            raise PaymentsUnavailable("card payments are not configured on this server")
        params: dict[str, Any] = {
            "mode": "payment",
            "client_reference_id": client_id,
            "customer_email": email,
            "metadata": {"client_id": client_id},
            "payment_intent_data": {"metadata": {"client_id": client_id}},
            "line_items": [{
                "quantity": 1,
                "price_data": {"currency": CURRENCY, "unit_amount": amount_cents,
                               "product_data": {"name": "SoulSeer wallet funds"}},
            }],
            "success_url": f"{self._public_url}/wallet?checkout=success&session_id={{CHECKOUT_SESSION_ID}}",
            "cancel_url": f"{self._public_url}/wallet?checkout=cancelled",
        }
        try:
            session = await self._client.v1.checkout.sessions.create_async(params)  # type: ignore[arg-type]
        except stripe.StripeError as exc:
            log.error("stripe checkout failed", extra={"clientId": client_id, "error": str(exc)[:300]})
            raise PaymentsUnavailable("the payment provider could not be reached; try again shortly") from None
        if not session.url:
            raise PaymentsUnavailable("the payment provider returned no checkout page")
        log.info("checkout created", extra={"clientId": client_id, "checkoutId": session.id, "cents": amount_cents})
        return Checkout(id=session.id, url=session.url, amount_cents=amount_cents)

    def verify(self, payload: bytes, signature: str | None, *, now: float | None = None) -> dict[str, Any]:
        """The event in a webhook, after checking its signature over the raw body and its timestamp."""
        if not self._webhook_secret:
            raise WebhookRejected("webhooks are not configured on this server")
        try:
            stripe.WebhookSignature.verify_header(payload, signature, self._webhook_secret, TOLERANCE_SECONDS)
            timestamp = int(str(signature).split("t=", 1)[1].split(",", 1)[0])
            event = json.loads(payload)
        except (stripe.SignatureVerificationError, ValueError, IndexError, UnicodeDecodeError):
            raise WebhookRejected("webhook signature does not verify") from None
        # The library refuses old timestamps; one far in the future is as suspicious.
        if timestamp > (time.time() if now is None else now) + TOLERANCE_SECONDS:
            raise WebhookRejected("webhook timestamp is in the future")
        if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(
                event.get("type"), str) or not isinstance(event.get("data"), dict):
            raise WebhookRejected("webhook body is not a Stripe event", code="malformed_event")
        return event

    async def close(self) -> None:
        # The library opens its aiohttp session on the first request only; closing one never opened
        # would open it first.
        if self._http is not None and getattr(self._http, "_cached_session", None) is not None:
            await self._http.close_async()
