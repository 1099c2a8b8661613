"""Verified Stripe events turned into ledger movements, each event handled exactly once.

The event id is recorded in ``stripe_events`` in the same database transaction as the money it moves: a
redelivery (or two nodes receiving one delivery) finds the id and does nothing, and a failure records
nothing, so Stripe's retry handles it again.

- ``checkout.session.completed`` / ``checkout.session.async_payment_succeeded`` with ``payment_status ==
  "paid"``: deposit ``amount_total`` into the wallet of ``client_reference_id``, key
  ``stripe:checkout:{session id}`` (so the two events of one checkout credit once), ref = the PaymentIntent.
- ``charge.refunded``: take back what Stripe refunded and we have not yet taken back (``amount_refunded``
  is cumulative), key ``stripe:refund:{charge}:{amount_refunded}``.
- ``charge.dispute.created``: withdraw the disputed amount, key ``stripe:dispute:{dispute}``;
  ``charge.dispute.closed`` with status ``won`` (or ``charge.dispute.funds_reinstated``) reverses it.
A withdrawal never makes a wallet negative; what it cannot take is booked as platform loss (see
:func:`billing.ledger.withdraw_deposit`).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg

from billing import ledger
from billing.errors import BillingError
from billing.ledger import Db, atomic
from billing.metrics import BillingMetrics

log = logging.getLogger(__name__)

CHECKOUT_PAID = ("checkout.session.completed", "checkout.session.async_payment_succeeded")


def checkout_key(checkout_id: str) -> str:
    return f"stripe:checkout:{checkout_id}"


def dispute_key(dispute_id: str) -> str:
    return f"stripe:dispute:{dispute_id}"


async def record_checkout(db: Db, *, checkout_id: str, client_id: str, amount_cents: int) -> None:
    """Remember a Checkout Session we created, to match its payment to the wallet that asked for it."""
    async with ledger.connection(db) as conn:
        await conn.execute("INSERT INTO stripe_checkouts (id, client_id, amount_cents) VALUES ($1, $2, $3)"
                           " ON CONFLICT (id) DO NOTHING", checkout_id, client_id, amount_cents)


async def handle_event(db: Db, event: dict[str, Any], *, metrics: BillingMetrics | None = None) -> str:
    """Apply one verified event; returns its outcome (``credited``, ``duplicate``, ``ignored``, ...)."""
    event_id, event_type = str(event["id"]), str(event["type"])
    obj = event["data"].get("object")
    if not isinstance(obj, dict):
        obj = {}

    async def work(conn: asyncpg.Connection) -> str:
        fresh = await conn.fetchval(
            "INSERT INTO stripe_events (id, type, outcome) VALUES ($1, $2, 'processing')"
            " ON CONFLICT (id) DO NOTHING RETURNING true", event_id, event_type)
        if not fresh:
            return "duplicate"
        outcome = await _apply(conn, event_type, obj, metrics)
        await conn.execute("UPDATE stripe_events SET outcome = $2 WHERE id = $1", event_id, outcome)
        return outcome

    outcome = await atomic(db, work)
    if metrics is not None:
        metrics.webhook(event_type, outcome)
    log.info("stripe event", extra={"eventId": event_id, "type": event_type, "outcome": outcome})
    return outcome


async def _apply(conn: asyncpg.Connection, event_type: str, obj: dict[str, Any],
                 metrics: BillingMetrics | None) -> str:
    if event_type in CHECKOUT_PAID:
        return await _checkout_paid(conn, obj, metrics)
    if event_type == "charge.refunded":
        return await _charge_refunded(conn, obj, metrics)
    if event_type == "charge.dispute.created":
        return await _dispute_created(conn, obj, metrics)
    if event_type in ("charge.dispute.closed", "charge.dispute.funds_reinstated"):
        return await _dispute_closed(conn, event_type, obj)
    return "ignored"


def _str(value: Any) -> str | None:
    """An id field, which Stripe sends as a string or (when expanded) as an object with an id."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _cents(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


async def _checkout_paid(conn: asyncpg.Connection, obj: dict[str, Any], metrics: BillingMetrics | None) -> str:
    checkout_id = _str(obj.get("id"))
    if obj.get("payment_status") != "paid":
        return "not_paid"  # e.g. a bank debit still processing: async_payment_succeeded will follow
    amount = _cents(obj.get("amount_total"))
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    client_id = _str(obj.get("client_reference_id")) or _str(metadata.get("client_id"))
    if checkout_id is None or not amount or client_id is None:
        log.error("paid checkout without id, amount or client", extra={"checkoutId": checkout_id})
        return "rejected"
    if str(obj.get("currency", "usd")).lower() != "usd":
        log.error("paid checkout in another currency", extra={"checkoutId": checkout_id})
        return "rejected"
    try:
        client_id = str(uuid.UUID(client_id))
    except ValueError:
        return "rejected"
    ours = await conn.fetchrow("SELECT client_id FROM stripe_checkouts WHERE id = $1", checkout_id)
    if ours is not None and str(ours["client_id"]) != client_id:
        log.error("checkout paid for another client than the one who opened it",
                  extra={"checkoutId": checkout_id, "clientId": client_id})
        return "rejected"
    role = await conn.fetchval("SELECT role FROM users WHERE id = $1", client_id)
    if role != "client":
        log.error("paid checkout for an unknown client", extra={"checkoutId": checkout_id, "clientId": client_id})
        return "rejected"
    txn = await ledger.deposit(conn, client_id=client_id, cents=amount, key=checkout_key(checkout_id),
                               source="stripe", ref=_str(obj.get("payment_intent")), memo="card payment")
    if txn.replayed:
        return "already_credited"
    if metrics is not None:
        metrics.deposited("stripe", amount)
    return "credited"


async def _deposit_for(conn: asyncpg.Connection, payment_intent: str | None) -> asyncpg.Record | None:
    """The card deposit a PaymentIntent paid, locked so its refunds and disputes are applied one at a time."""
    if payment_intent is None:
        return None
    return await conn.fetchrow(
        "SELECT id, key, client_id, amount_cents FROM ledger_transactions"
        " WHERE ref = $1 AND kind = 'deposit' AND source = 'stripe' ORDER BY created_at LIMIT 1"
        " FOR NO KEY UPDATE", payment_intent)


async def _taken_back(conn: asyncpg.Connection, deposit_id: Any, kind: str) -> int:
    return int(await conn.fetchval(
        "SELECT coalesce(sum(amount_cents), 0)::bigint FROM ledger_transactions WHERE original_id = $1 AND kind = $2",
        deposit_id, kind))


async def _charge_refunded(conn: asyncpg.Connection, obj: dict[str, Any], metrics: BillingMetrics | None) -> str:
    charge_id = _str(obj.get("id"))
    refunded = _cents(obj.get("amount_refunded"))
    deposit = await _deposit_for(conn, _str(obj.get("payment_intent")))
    if deposit is None or charge_id is None or refunded is None:
        log.warning("refund for a payment we do not know", extra={"chargeId": charge_id})
        return "unmatched"
    target = min(refunded, deposit["amount_cents"])
    owed = target - await _taken_back(conn, deposit["id"], "stripe_refund")
    if owed <= 0:
        return "nothing_to_take"
    txn = await ledger.withdraw_deposit(
        conn, client_id=str(deposit["client_id"]), cents=owed, key=f"stripe:refund:{charge_id}:{target}",
        kind="stripe_refund", ref=charge_id, original_key=deposit["key"], memo="card refund")
    if metrics is not None:
        metrics.refunded("stripe_refund", owed)
    return "withdrawn_with_loss" if txn.loss_cents else "withdrawn"


async def _dispute_created(conn: asyncpg.Connection, obj: dict[str, Any], metrics: BillingMetrics | None) -> str:
    dispute_id = _str(obj.get("id"))
    amount = _cents(obj.get("amount"))
    deposit = await _deposit_for(conn, _str(obj.get("payment_intent")))
    if deposit is None or dispute_id is None or not amount:
        log.warning("dispute on a payment we do not know", extra={"disputeId": dispute_id})
        return "unmatched"
    # A dispute cannot take more than what was paid and not already refunded.
    held = min(amount, deposit["amount_cents"] - await _taken_back(conn, deposit["id"], "stripe_refund"))
    if held <= 0:
        return "nothing_to_take"
    txn = await ledger.withdraw_deposit(
        conn, client_id=str(deposit["client_id"]), cents=held, key=dispute_key(dispute_id), kind="dispute",
        ref=dispute_id, original_key=deposit["key"], memo=f"card dispute ({obj.get('reason') or 'no reason'})")
    if metrics is not None:
        metrics.refunded("dispute", held)
    return "withdrawn_with_loss" if txn.loss_cents else "withdrawn"


async def _dispute_closed(conn: asyncpg.Connection, event_type: str, obj: dict[str, Any]) -> str:
    dispute_id = _str(obj.get("id"))
    if dispute_id is None:
        return "rejected"
    if event_type == "charge.dispute.closed" and obj.get("status") != "won":
        return "dispute_lost" if obj.get("status") == "lost" else "ignored"
    try:
        txn = await ledger.reverse(conn, original_key=dispute_key(dispute_id),
                                   key=f"{dispute_key(dispute_id)}:reinstated", memo="dispute won")
    except BillingError:
        return "unmatched"
    return "already_reinstated" if txn.replayed else "reinstated"
