"""Stripe, as billing sees it: Checkout Sessions to add funds, webhook signature verification, and money out:
readers' connected accounts (Accounts v2 with the recipient configuration, onboarded through Stripe-hosted
account links), Transfers to them, and Refunds of card payments for wallet withdrawals.

Why Accounts v2 with the recipient configuration: SoulSeer charges the client itself and pays the reader later
(separate charges and transfers); the reader is never the merchant of record, which is exactly what the
recipient configuration is for (its ``stripe_balance.stripe_transfers`` capability lets the account receive
``/v1/transfers``). Express accounts (v1) would work as well but carry the merchant capabilities the readers do
not need; only :meth:`StripeGateway.create_connect_account` would change.

Every money-moving call carries an idempotency key, so asking again after a crash or a timeout returns the
first answer instead of moving money twice. A 4xx answer (other than 429) is Stripe's refusal
(:class:`StripeRefused`); anything else (a timeout, a 5xx, a 429) is :class:`PaymentsUnavailable`, and the caller
leaves the movement pending to ask again.

One ``stripe.StripeClient`` per app with its own API key and base address (never the library's global
``stripe.api_key``), over aiohttp so no call blocks the event loop. Webhooks are verified on the raw body
with the library's ``WebhookSignature`` (``t=...,v1=HMAC-SHA256(secret, "t.body")``), within 300 s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import stripe

from billing.errors import PaymentsUnavailable, StripeRefused, WebhookRejected

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
                 connect_webhook_secret: str | None = None,
                 public_url: str) -> None:
        self._webhook_secret = webhook_secret
        # Stripe signs the platform's events, its connected accounts' events (payout.failed, ...) and Accounts v2
        # events each with the secret of the endpoint that receives them; one URL may receive all of them.
        self._webhook_secrets = tuple(s for s in (webhook_secret, connect_webhook_secret) if s)
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

    def _connected(self) -> stripe.StripeClient:
        if self._client is None:
            raise PaymentsUnavailable("payouts are not configured on this server")
        return self._client

    @staticmethod
    @contextlib.contextmanager
    def _asking(what: str, **context: Any) -> Iterator[None]:
        """Around one call to Stripe: its error is logged with ``context`` and raised as ours, a 4xx other than
        429 as a refusal (:class:`StripeRefused`), anything else as an outage (:class:`PaymentsUnavailable`)."""
        try:
            yield
        except stripe.StripeError as exc:
            status = exc.http_status or 0
            log.error(f"stripe {what} failed", extra={**context, "status": status, "error": str(exc)[:300]})
            if 400 <= status < 500 and status != 429:
                raise StripeRefused(f"Stripe refused the {what}: {exc.user_message or str(exc)[:200]}") from None
            raise PaymentsUnavailable("the payment provider could not be reached; try again shortly") from None

    async def create_connect_account(self, *, reader_id: str, email: str, display_name: str) -> str:
        """A new connected account for a reader (Accounts v2, recipient configuration); its id."""
        params: dict[str, Any] = {
            "contact_email": email, "display_name": display_name[:80], "dashboard": "express",
            "identity": {"country": "us"}, "metadata": {"reader_id": reader_id},
            "configuration": {"recipient": {"capabilities": {"stripe_balance": {"stripe_transfers": {
                "requested": True}}}}},
            "include": ["configuration.recipient"],
        }
        with self._asking("account creation", readerId=reader_id):
            account = await self._connected().v2.core.accounts.create_async(
                params, {"idempotency_key": f"connect-account:{reader_id}"})  # type: ignore[arg-type]
        log.info("connect account created", extra={"readerId": reader_id, "accountId": account.id})
        return str(account.id)

    async def create_account_link(self, *, account_id: str, refresh_url: str, return_url: str) -> str:
        """A Stripe-hosted onboarding link for the account (single use, short-lived)."""
        params: dict[str, Any] = {"account": account_id, "use_case": {
            "type": "account_onboarding",
            "account_onboarding": {"refresh_url": refresh_url, "return_url": return_url}}}
        with self._asking("onboarding link", accountId=account_id):
            link = await self._connected().v2.core.account_links.create_async(params)  # type: ignore[arg-type]
        return str(link.url)

    async def transfers_status(self, account_id: str) -> str:
        """The account's ``stripe_transfers`` capability status (``active``, ``pending``, ``restricted``, ...)."""
        with self._asking("account lookup", accountId=account_id):
            account = await self._connected().v2.core.accounts.retrieve_async(
                account_id, {"include": ["configuration.recipient"]})  # type: ignore[arg-type]
        try:
            status = account.configuration.recipient.capabilities.stripe_balance.stripe_transfers.status  # type: ignore[union-attr]
        except AttributeError:
            return "pending"
        return str(status or "pending")

    async def create_transfer(self, *, cents: int, destination: str, key: str, metadata: dict[str, str]) -> str:
        """A Transfer of ``cents`` to a connected account; its id. The same ``key`` again: the same Transfer."""
        params: dict[str, Any] = {"amount": cents, "currency": CURRENCY, "destination": destination,
                                  "metadata": metadata, "description": "SoulSeer earnings"}
        with self._asking("transfer", key=key):
            transfer = await self._connected().v1.transfers.create_async(
                params, {"idempotency_key": key})  # type: ignore[arg-type]
        log.info("transfer created", extra={"key": key, "transferId": transfer.id, "cents": cents})
        return str(transfer.id)

    async def create_refund(self, *, payment_intent: str, cents: int, key: str, metadata: dict[str, str]) -> str:
        """A Refund of ``cents`` of a card payment; its id. The same ``key`` again: the same Refund."""
        params: dict[str, Any] = {"payment_intent": payment_intent, "amount": cents, "metadata": metadata,
                                  "reason": "requested_by_customer"}
        with self._asking("refund", key=key):
            refund = await self._connected().v1.refunds.create_async(
                params, {"idempotency_key": key})  # type: ignore[arg-type]
        log.info("refund created", extra={"key": key, "refundId": refund.id, "cents": cents})
        return str(refund.id)

    def verify(self, payload: bytes, signature: str | None, *, now: float | None = None) -> dict[str, Any]:
        """The event in a webhook, after checking its signature over the raw body and its timestamp."""
        if not self._webhook_secret:
            raise WebhookRejected("webhooks are not configured on this server")
        try:
            self._verify_signature(payload, signature)
            timestamp = int(str(signature).split("t=", 1)[1].split(",", 1)[0])
            event = json.loads(payload)
        except (stripe.SignatureVerificationError, ValueError, IndexError, UnicodeDecodeError):
            raise WebhookRejected("webhook signature does not verify") from None
        # The library refuses old timestamps; one far in the future is as suspicious.
        if timestamp > (time.time() if now is None else now) + TOLERANCE_SECONDS:
            raise WebhookRejected("webhook timestamp is in the future")
        # A snapshot event carries ``data.object``; an Accounts v2 (thin) event only a ``related_object``.
        if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(
                event.get("type"), str) or not isinstance(event.get("data") or event.get("related_object"), dict):
            raise WebhookRejected("webhook body is not a Stripe event", code="malformed_event")
        return event

    def _verify_signature(self, payload: bytes, signature: str | None) -> None:
        """The signature verifies with one of the endpoints' secrets, or SignatureVerificationError."""
        for secret in self._webhook_secrets[:-1]:
            try:
                stripe.WebhookSignature.verify_header(payload, signature, secret, TOLERANCE_SECONDS)
                return
            except stripe.SignatureVerificationError:
                continue
        stripe.WebhookSignature.verify_header(payload, signature, self._webhook_secrets[-1], TOLERANCE_SECONDS)

    async def close(self) -> None:
        # The library opens its aiohttp session on the first request only; closing one never opened
        # would open it first.
        if self._http is not None and getattr(self._http, "_cached_session", None) is not None:
            await self._http.close_async()
