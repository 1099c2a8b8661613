"""The API's one error family, rendered in one place as ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from typing import Any

from billing.errors import BillingError


class ApiError(Exception):
    """An error an API client is meant to see: an HTTP status, a stable code and a human message."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None,
                 headers: dict[str, str] | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field
        self.headers = headers or {}
        self.details = details or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, **self.details}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class PaymentRequired(ApiError):
    """The wallet cannot pay for this; nothing was charged."""

    status, code = 402, "insufficient_funds"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class Invalid(ApiError):
    """A field failed validation; ``field`` names it."""

    status, code = 422, "invalid"


class TooManyRequests(ApiError):
    status, code = 429, "rate_limited"


class Unavailable(ApiError):
    status, code = 503, "unavailable"


# What aiohttp's own HTTP exceptions mean to an API client, by status.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    402: "insufficient_funds",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


# The HTTP status of each billing refusal; anything not listed is a plain 400.
BILLING_STATUS = {
    "insufficient_funds": 402,
    "unknown_account": 404,
    "unknown_transaction": 404,
    "slot_not_found": 404,
    "idempotency_conflict": 409,
    "price_changed": 409,
    "refund_exceeds_charge": 409,
    "slot_taken": 409,
    "lease_lost": 409,
    "rate_not_set": 409,
    "invalid_amount": 422,
    "payments_unavailable": 503,
    # money out (billing/payout_policy.py)
    "not_connected": 409,
    "account_not_ready": 409,
    "payout_in_transit": 409,
    "nothing_payable": 409,
    "below_minimum": 422,
    "suspended": 403,
    "dispute_open": 409,
    "daily_limit": 409,
    "not_refundable": 409,
    "stripe_refused": 409,
}


def from_billing(exc: BillingError) -> ApiError:
    """The API error a billing refusal is shown as (same code, message and details)."""
    details = exc.details()
    error = ApiError(exc.message, code=exc.code, field=details.pop("field", None), details=details)
    error.status = BILLING_STATUS.get(exc.code, 400)
    return error
