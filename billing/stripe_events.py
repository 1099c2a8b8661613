"""Verified Stripe events turned into ledger movements, each event handled exactly once.

The event id is recorded in ``stripe_events`` in the same database transaction as the money it moves: a
redelivery (or two nodes receiving one delivery) finds the id and does nothing, and a failure records
nothing, so Stripe's retry handles it again.

- ``checkout.session.completed`` / ``checkout.session.async_payment_succeeded`` with ``payment_status ==
  "paid"``: credit a Checkout Session *we created* (``stripe_checkouts``, written by add-funds), for the
  amount we created it for, to the client who opened it; key ``stripe:checkout:{session id}`` (so the two
  events of one checkout credit once), ref = the PaymentIntent. A paid checkout we do not know, or whose
  amount, currency or client differ from ours, is never credited: it is logged at error level and counted in
  ``soulseer_billing_checkouts_refused_total{reason}`` for an operator to look at (the money is at Stripe).
- ``charge.refunded``: ``amount_refunded`` is cumulative; what it says is kept per deposit
  (``stripe_refund_totals``) and the wallet gives back what is owed and not yet taken back.
- ``charge.dispute.created``: hold (withdraw) the disputed amount, key ``stripe:dispute:{dispute}``, from
  the wallet as far as it still holds it; the rest the platform carries (booked to ``loss``) and the client
  is flagged for an operator. The dispute's lifecycle is its ``disputes`` row: open, then ``won`` or ``lost``.
  ``charge.dispute.closed`` with status ``won`` (or ``charge.dispute.funds_reinstated``) reverses the hold;
  ``lost`` keeps it and books the dispute's fee (``balance_transactions[].fee``) to loss. A client with an open
  dispute cannot withdraw (billing/withdrawals.py).
- Payouts (billing/payouts.py): ``transfer.created`` confirms a payout's Transfer (metadata ``payout_id``),
  ``transfer.reversed`` moves what was reversed back to earnings; ``payout.failed`` / ``payout.paid`` of a
  connected account mark its bank payouts failing or working; ``refund.failed`` undoes a withdrawal's refund;
  an Accounts v2 event about a connected account (``v2.core.account...``, a thin event the API hydrates with
  the account's transfers capability status) records that status.

Refunds and disputes of one payment take back, in all, never more than it paid in: a dispute holds at most
what is not refunded, a refund takes only what no dispute holds (the card refund and the dispute are the same
money), and when a dispute is won a refund its hold covered is taken back after all. The ledger enforces the
cap too (:func:`billing.ledger.withdraw_deposit`). A withdrawal never makes a wallet negative; what it cannot
take is booked as platform loss.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import asyncpg

from billing import connect, ledger, payouts, withdrawals
from billing.errors import BillingError
from billing.ledger import Db, Txn, atomic
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
    """Apply one verified event; returns its outcome (``credited``, ``duplicate``, ``ignored``, ...). Money it
    moved is counted in ``metrics`` once its transaction has committed."""
    event_id, event_type = str(event["id"]), str(event["type"])
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        obj = {}

    async def work(conn: asyncpg.Connection) -> Applied:
        fresh = await conn.fetchval(
            "INSERT INTO stripe_events (id, type, outcome) VALUES ($1, $2, 'processing')"
            " ON CONFLICT (id) DO NOTHING RETURNING true", event_id, event_type)
        if not fresh:
            return Applied("duplicate")
        applied = await _apply(conn, event_type, obj, _str(event.get("account")))
        await conn.execute("UPDATE stripe_events SET outcome = $2 WHERE id = $1", event_id, applied.outcome)
        return applied

    applied = await atomic(db, work)
    if metrics is not None:
        metrics.webhook(event_type, applied.outcome)
        metrics.recorded(*applied.txns)
        if applied.refused:
            metrics.checkout_refused(applied.outcome)
    log.info("stripe event", extra={"eventId": event_id, "type": event_type, "outcome": applied.outcome})
    return applied.outcome


@dataclass(frozen=True)
class Applied:
    """What one event did: its outcome, the ledger movements it wrote, and whether it refused a paid checkout."""

    outcome: str
    txns: tuple[Txn, ...] = ()
    refused: bool = False


async def _apply(conn: asyncpg.Connection, event_type: str, obj: dict[str, Any], account: str | None) -> Applied:
    """``account``: the connected account a Connect event is about (Stripe's top-level ``account``)."""
    if event_type in CHECKOUT_PAID:
        return await _checkout_paid(conn, obj)
    if event_type == "charge.refunded":
        return await _charge_refunded(conn, obj)
    if event_type == "charge.dispute.created":
        return await _dispute_created(conn, obj)
    if event_type in ("charge.dispute.closed", "charge.dispute.funds_reinstated"):
        return await _dispute_closed(conn, event_type, obj)
    if event_type in ("transfer.created", "transfer.reversed", "transfer.updated"):
        return await _transfer(conn, event_type, obj)
    if event_type in ("payout.failed", "payout.paid") and account is not None:
        done = await connect.payouts_failing(conn, account, event_type == "payout.failed")
        return Applied("recorded" if done else "unmatched")
    if event_type == "refund.failed":
        refund_id = _str(obj.get("id"))
        txn = None if refund_id is None else await withdrawals.refund_failed(
            conn, refund_id, str(obj.get("failure_reason") or "refund failed"))
        return Applied("withdrawal_undone", (txn,)) if txn is not None else Applied("unmatched")
    if event_type.startswith("v2.core.account") and isinstance(obj.get("transfers_status"), str):
        done = await connect.set_status(conn, str(_str(obj.get("id"))), transfers_status=obj["transfers_status"])
        return Applied("recorded" if done else "unmatched")
    return Applied("ignored")


async def _transfer(conn: asyncpg.Connection, event_type: str, obj: dict[str, Any]) -> Applied:
    transfer_id = _str(obj.get("id"))
    metadata = obj.get("metadata")
    payout_id = _str(metadata.get("payout_id")) if isinstance(metadata, dict) else None
    if transfer_id is None:
        return Applied("rejected")
    if event_type == "transfer.created":
        found = await conn.fetchval("SELECT id::text FROM payouts WHERE id::text = $1", payout_id)
        if found is None:
            return Applied("unmatched")
        _, txn = await payouts.paid(conn, found, transfer_id)
        return Applied("payout_paid", (txn,)) if txn is not None else Applied("already_paid")
    reversed_cents = _cents(obj.get("amount_reversed"))
    if reversed_cents is None:
        return Applied("rejected")
    result = await payouts.reversed_to(conn, transfer_id=transfer_id, payout_id=payout_id,
                                       amount_reversed=reversed_cents)
    return Applied("payout_reversed", (result[1],)) if result is not None else Applied("nothing_reversed")


def _str(value: Any) -> str | None:
    """An id field, which Stripe sends as a string or (when expanded) as an object with an id."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _cents(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _refuse(reason: str, message: str, **context: Any) -> Applied:
    """A paid checkout we will not credit: an operator must look (the client paid Stripe, or someone tries to
    be credited for what they did not pay)."""
    log.error(message, extra={"reason": reason, **context})
    return Applied(reason, refused=True)


async def _checkout_paid(conn: asyncpg.Connection, obj: dict[str, Any]) -> Applied:
    checkout_id = _str(obj.get("id"))
    if obj.get("payment_status") != "paid":
        return Applied("not_paid")  # e.g. a bank debit still processing: async_payment_succeeded will follow
    amount = _cents(obj.get("amount_total"))
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    said_client = _str(obj.get("client_reference_id")) or _str(metadata.get("client_id"))
    context = {"checkoutId": checkout_id, "amountTotal": obj.get("amount_total"), "clientId": said_client}
    if checkout_id is None or not amount:
        return _refuse("malformed", "paid checkout without an id or an amount", **context)
    ours = await conn.fetchrow("SELECT client_id, amount_cents FROM stripe_checkouts WHERE id = $1", checkout_id)
    if ours is None:
        return _refuse("unknown_checkout", "paid checkout that SoulSeer did not create", **context)
    client_id = str(ours["client_id"])
    context["expectedCents"], context["openedBy"] = ours["amount_cents"], client_id
    if amount != ours["amount_cents"]:
        return _refuse("amount_mismatch", "paid checkout for another amount than the one created", **context)
    if str(obj.get("currency", "usd")).lower() != "usd":
        return _refuse("currency_mismatch", "paid checkout in another currency", **context)
    if said_client is not None and said_client != client_id:
        return _refuse("client_mismatch", "paid checkout for another client than the one who opened it", **context)
    if await conn.fetchval("SELECT role FROM users WHERE id = $1", client_id) != "client":
        return _refuse("unknown_client", "paid checkout of an account that is not a client", **context)
    txn = await ledger.deposit(conn, client_id=client_id, cents=ours["amount_cents"], key=checkout_key(checkout_id),
                               source="stripe", ref=_str(obj.get("payment_intent")), memo="card payment")
    return Applied("already_credited" if txn.replayed else "credited", (txn,))


_DEPOSIT = "SELECT id, key, client_id, amount_cents, ref FROM ledger_transactions WHERE kind = 'deposit'"


async def _deposit_for(conn: asyncpg.Connection, payment_intent: str | None) -> asyncpg.Record | None:
    """The card deposit a PaymentIntent paid, locked so its refunds and disputes are applied one at a time
    (the lock every path below takes first, then the wallet's: no deadlock between them)."""
    if payment_intent is None:
        return None
    return await conn.fetchrow(f"{_DEPOSIT} AND ref = $1 AND source = 'stripe' ORDER BY created_at LIMIT 1"
                               " FOR NO KEY UPDATE", payment_intent)


def _withdrawn_outcome(txn: Txn) -> str:
    if txn.replayed:
        return "already_withdrawn"
    return "withdrawn_with_loss" if txn.loss_cents else "withdrawn"


async def _take_back_refunds(conn: asyncpg.Connection, deposit: asyncpg.Record, ref: str | None) -> Txn | None:
    """Withdraw what Stripe refunded of a deposit and is neither taken back yet nor held by a dispute."""
    refunded = await conn.fetchval("SELECT refunded_cents FROM stripe_refund_totals WHERE deposit_id = $1",
                                   deposit["id"]) or 0
    taken = await ledger.withdrawn(conn, deposit["id"])
    owed = max(0, refunded - taken["dispute"]) - taken["stripe_refund"]
    if owed <= 0:
        return None
    # Keyed by what the deposit's refunds total after this one: each step of that total is taken once.
    return await ledger.withdraw_deposit(
        conn, client_id=str(deposit["client_id"]), cents=owed,
        key=f"stripe:refund:{deposit['ref']}:{taken['stripe_refund'] + owed}", kind="stripe_refund",
        ref=ref or deposit["ref"], original_key=deposit["key"], memo="card refund")


async def _charge_refunded(conn: asyncpg.Connection, obj: dict[str, Any]) -> Applied:
    charge_id = _str(obj.get("id"))
    refunded = _cents(obj.get("amount_refunded"))
    deposit = await _deposit_for(conn, _str(obj.get("payment_intent")))
    if deposit is None or charge_id is None or refunded is None:
        log.warning("refund for a payment we do not know", extra={"chargeId": charge_id})
        return Applied("unmatched")
    # Events may arrive out of order: the largest cumulative amount is the truth.
    await conn.execute(
        "INSERT INTO stripe_refund_totals (deposit_id, refunded_cents) VALUES ($1, $2) ON CONFLICT (deposit_id)"
        " DO UPDATE SET refunded_cents = greatest(stripe_refund_totals.refunded_cents, EXCLUDED.refunded_cents),"
        " updated_at = now()", deposit["id"], min(refunded, deposit["amount_cents"]))
    txn = await _take_back_refunds(conn, deposit, charge_id)
    if txn is None:
        return Applied("nothing_to_take")
    return Applied(_withdrawn_outcome(txn), (txn,))


async def _dispute_created(conn: asyncpg.Connection, obj: dict[str, Any]) -> Applied:
    dispute_id = _str(obj.get("id"))
    amount = _cents(obj.get("amount"))
    deposit = await _deposit_for(conn, _str(obj.get("payment_intent")))
    if deposit is None or dispute_id is None or not amount:
        log.warning("dispute on a payment we do not know", extra={"disputeId": dispute_id})
        return Applied("unmatched")
    if await conn.fetchval("SELECT true FROM ledger_transactions WHERE key = $1", dispute_key(dispute_id)):
        return Applied("already_withdrawn")  # this dispute again (another event about it): held once
    # A dispute cannot hold more than what was paid and is not already taken back.
    held = min(amount, deposit["amount_cents"] - sum((await ledger.withdrawn(conn, deposit["id"])).values()))
    if held <= 0:
        return Applied("nothing_to_take")
    txn = await ledger.withdraw_deposit(
        conn, client_id=str(deposit["client_id"]), cents=held, key=dispute_key(dispute_id), kind="dispute",
        ref=dispute_id, original_key=deposit["key"], memo=f"card dispute ({obj.get('reason') or 'no reason'})")
    await _open_dispute(conn, dispute_id, deposit, amount=amount, held=txn.amount_cents - txn.loss_cents,
                        carried=txn.loss_cents, reason=str(obj.get("reason") or ""))
    return Applied(_withdrawn_outcome(txn), (txn,))


async def _open_dispute(conn: asyncpg.Connection, dispute_id: str, deposit: asyncpg.Record, *, amount: int,
                        held: int, carried: int, reason: str) -> None:
    """The dispute's row (its lifecycle, for operators); a client whose wallet could not cover it is flagged."""
    await conn.execute(
        "INSERT INTO disputes (id, client_id, deposit_id, amount_cents, held_cents, carried_cents, reason)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        dispute_id, deposit["client_id"], deposit["id"], amount, held, carried, reason[:200])
    if carried:
        await conn.execute("UPDATE users SET flagged_at = coalesce(flagged_at, now()), flag_reason = $2"
                           " WHERE id = $1", deposit["client_id"],
                           f"dispute {dispute_id}: the platform carries {carried} cents")
        log.error("dispute the wallet could not cover; the platform carries it",
                  extra={"disputeId": dispute_id, "clientId": str(deposit["client_id"]), "carriedCents": carried})


async def _dispute_closed(conn: asyncpg.Connection, event_type: str, obj: dict[str, Any]) -> Applied:
    dispute_id = _str(obj.get("id"))
    if dispute_id is None:
        return Applied("rejected")
    if event_type == "charge.dispute.closed" and obj.get("status") != "won":
        if obj.get("status") != "lost":
            return Applied("ignored")
        return await _dispute_lost(conn, dispute_id, obj)
    # The deposit the dispute held money of, locked first like every path here.
    deposit = await conn.fetchrow(
        f"{_DEPOSIT} AND id = (SELECT original_id FROM ledger_transactions WHERE key = $1 AND kind = 'dispute')"  # noqa: S608
        " FOR NO KEY UPDATE", dispute_key(dispute_id))
    if deposit is None:
        return Applied("unmatched")
    try:
        txn = await ledger.reverse(conn, original_key=dispute_key(dispute_id),
                                   key=f"{dispute_key(dispute_id)}:reinstated", memo="dispute won")
    except BillingError:
        return Applied("unmatched")
    if txn.replayed:
        return Applied("already_reinstated")
    await conn.execute("UPDATE disputes SET status = 'won', closed_at = now() WHERE id = $1 AND status = 'open'",
                       dispute_id)
    # The funds are back: a card refund this dispute's hold was covering is now taken back after all.
    refund = await _take_back_refunds(conn, deposit, None)
    return Applied("reinstated", (txn,) if refund is None else (txn, refund))


def _fee(obj: dict[str, Any]) -> int:
    """A dispute's fee: the sum of its balance transactions' fees (Stripe debits it when the dispute opens and
    returns it with the funds when it is won; booked here only when it is lost, i.e. final)."""
    total = 0
    for bt in obj.get("balance_transactions") or []:
        fee = _cents(bt.get("fee")) if isinstance(bt, dict) else None
        total += fee or 0
    return total


async def _dispute_lost(conn: asyncpg.Connection, dispute_id: str, obj: dict[str, Any]) -> Applied:
    """The hold stays taken (the money went to the card holder); the fee is the platform's loss."""
    row = await conn.fetchrow("SELECT client_id::text, status FROM disputes WHERE id = $1 FOR UPDATE", dispute_id)
    if row is None or row["status"] != "open":
        return Applied("dispute_lost")
    fee = _fee(obj)
    txn = None
    if fee:
        txn = await ledger.dispute_fee(conn, client_id=row["client_id"], cents=fee,
                                       key=f"{dispute_key(dispute_id)}:fee", ref=dispute_id, memo="dispute lost: fee")
    await conn.execute("UPDATE disputes SET status = 'lost', fee_cents = $2, closed_at = now() WHERE id = $1",
                       dispute_id, fee)
    return Applied("dispute_lost", (txn,) if txn is not None else ())
