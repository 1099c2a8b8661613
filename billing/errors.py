"""Billing's one error family: every refusal to move money has a stable ``code`` and a human ``message``.

The API maps these to its JSON error shape in one place (``api/core/middleware.py``); billing itself knows no HTTP.
"""

from __future__ import annotations

from typing import Any


class BillingError(Exception):
    """Money was not moved, for a reason the caller can act on."""

    code = "billing_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def details(self) -> dict[str, Any]:
        """Fields the caller can act on, beyond code and message (shown next to them in the API's error)."""
        return {}


class InsufficientFunds(BillingError):
    """The wallet cannot pay this charge; nothing was moved."""

    code = "insufficient_funds"

    def __init__(self, message: str = "the wallet balance does not cover this charge", *,
                 balance_cents: int | None = None, needed_cents: int | None = None) -> None:
        super().__init__(message)
        self.balance_cents = balance_cents
        self.needed_cents = needed_cents


class UnknownAccount(BillingError):
    """The user a movement names does not exist (or cannot hold that account)."""

    code = "unknown_account"


class UnknownTransaction(BillingError):
    """A refund or reversal names a transaction the ledger does not have."""

    code = "unknown_transaction"


class IdempotencyConflict(BillingError):
    """An idempotency key was reused for a different movement: refusing rather than guessing."""

    code = "idempotency_conflict"


class RefundTooLarge(BillingError):
    """A refund would give back more than what remains unrefunded of its charge (or a withdrawal take back more
    than what remains of its deposit)."""

    code = "refund_exceeds_charge"


class PriceChanged(BillingError):
    """The price is no longer the one the client was shown and confirmed (``expectedCents``); nothing moved."""

    code = "price_changed"

    def __init__(self, message: str, *, expected_cents: int, price_cents: int) -> None:
        super().__init__(message)
        self.expected_cents = expected_cents
        self.price_cents = price_cents

    def details(self) -> dict[str, Any]:
        return {"field": "expectedCents", "expectedCents": self.expected_cents, "priceCents": self.price_cents}


class InvalidAmount(BillingError):
    """Amounts are positive integer cents (a charge may be zero)."""

    code = "invalid_amount"


class LeaseLost(BillingError):
    """The reading's lease (its fencing epoch) is no longer the caller's, or the reading is no longer open:
    another owner took it over, or it ended. Nothing was written; the caller must stop acting for it."""

    code = "lease_lost"


class SlotNotFound(BillingError):
    code = "slot_not_found"


class SlotTaken(BillingError):
    """The slot is booked already, or it overlaps another of the reader's slots."""

    code = "slot_taken"


class RateNotSet(BillingError):
    """The reader has no price for what was asked (e.g. no flat rate for 45 minutes)."""

    code = "rate_not_set"


class PaymentsUnavailable(BillingError):
    """Card payments are not configured (no Stripe secret key) or Stripe could not be reached."""

    code = "payments_unavailable"


class WebhookRejected(BillingError):
    """A webhook whose signature, timestamp or body does not verify; nothing was done."""

    code = "invalid_signature"


class StripeRefused(BillingError):
    """Stripe answered and refused (a 4xx: no such account, insufficient platform balance, ...): asking again
    will not help, so the money the request was for goes back where it was."""

    code = "stripe_refused"
