"""Wallet withdrawals: a client's unused balance back to the cards it came from.

Two steps, like a payout:

1. :func:`start` — in one database transaction, after the limits (:func:`billing.payout_policy.check_withdrawal`):
   the ``withdrawals`` row (unique per client and ``requestId``: a retry is the same withdrawal), one
   ``withdrawal_parts`` row per card payment refunded (the newest first, the last one partially), and for each
   a ledger ``stripe_refund`` of that deposit (wallet -> stripe). The client's card deposits are locked first,
   then the wallet: the order the Stripe webhooks take them in, so neither waits on the other in a cycle.
2. :func:`send` — each part's Refund, asked of Stripe with the idempotency key ``withdrawal-part:{id}``. A
   refusal undoes that part exactly (``withdrawal_failed``: the money is back in the wallet); no answer leaves
   it pending, for :func:`send` again (the client's retry or the resume sweep) with the same key.

Stripe's ``charge.refunded`` for these refunds then finds them already taken (billing/stripe_events.py counts
every ``stripe_refund`` of a deposit), so nothing is taken twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from billing import ledger
from billing.errors import IdempotencyConflict, PaymentsUnavailable, StripeRefused
from billing.ledger import Db, Txn, atomic
from billing.payout_policy import Deposit, allocate, check_withdrawal

log = logging.getLogger(__name__)


class RefundSender(Protocol):
    async def create_refund(self, *, payment_intent: str, cents: int, key: str, metadata: dict[str, str]) -> str:
        """The Refund's id; raises :class:`StripeRefused` (definitive) or :class:`PaymentsUnavailable`."""
        ...


@dataclass(frozen=True)
class Limits:
    min_cents: int
    max_per_day_cents: int


@dataclass(frozen=True)
class Withdrawal:
    id: str
    client_id: str
    request_id: str
    cents: int
    status: str  # pending | done | failed | partial
    created_at: datetime
    parts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def refunded_cents(self) -> int:
        return sum(p["cents"] for p in self.parts if p["status"] == "succeeded")

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "requestId": self.request_id, "amountCents": self.cents, "status": self.status,
                "refundedCents": self.refunded_cents,
                "createdAt": self.created_at.isoformat().replace("+00:00", "Z"),
                "parts": [{"amountCents": p["cents"], "status": p["status"]} for p in self.parts]}


async def get(db: Db, withdrawal_id: str) -> Withdrawal | None:
    async with ledger.connection(db) as conn:
        row = await conn.fetchrow("SELECT id::text, client_id::text, request_id, cents, status, created_at"
                                  " FROM withdrawals WHERE id = $1", withdrawal_id)
        if row is None:
            return None
        parts = await conn.fetch("SELECT id::text, payment_intent, cents, txn_key, status FROM withdrawal_parts"
                                 " WHERE withdrawal_id = $1 ORDER BY cents DESC, id", withdrawal_id)
    return Withdrawal(**dict(row), parts=[dict(p) for p in parts])


async def start(db: Db, *, client_id: str, cents: int, request_id: str, limits: Limits,
                now: datetime) -> tuple[Withdrawal, list[Txn]]:
    """Reserve a withdrawal (step 1), or :class:`WithdrawalRefused`; the same ``request_id`` again returns
    the first one (and :class:`IdempotencyConflict` for another amount)."""

    async def work(conn: asyncpg.Connection) -> tuple[str, list[Txn]]:
        # Serializes one client's withdrawals (also a first one, before any row exists to lock).
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('withdrawal:' || $1::text, 0))", client_id)
        existing = await conn.fetchrow("SELECT id::text, cents FROM withdrawals WHERE client_id = $1"
                                       " AND request_id = $2", client_id, request_id)
        if existing is not None:
            if existing["cents"] != cents:
                raise IdempotencyConflict("this requestId was used for another amount")
            return existing["id"], []
        deposits = await conn.fetch(
            "SELECT id, key, ref, amount_cents FROM ledger_transactions WHERE client_id = $1 AND kind = 'deposit'"
            " AND source = 'stripe' AND ref IS NOT NULL ORDER BY created_at DESC, id FOR NO KEY UPDATE", client_id)
        balance = await conn.fetchval("SELECT balance_cents FROM client_balances WHERE client_id = $1 FOR UPDATE",
                                      client_id)
        check_withdrawal(
            cents=cents, balance_cents=int(balance or 0), min_cents=limits.min_cents,
            withdrawn_today_cents=int(await conn.fetchval(
                "SELECT coalesce(sum(cents), 0)::bigint FROM withdrawals WHERE client_id = $1"
                " AND created_at > $2::timestamptz - interval '1 day' AND status <> 'failed'", client_id, now)),
            max_per_day_cents=limits.max_per_day_cents,
            open_disputes=int(await conn.fetchval(
                "SELECT count(*) FROM disputes WHERE client_id = $1 AND status = 'open'", client_id)))
        refundable = []
        for d in deposits:
            refunded = await conn.fetchval("SELECT refunded_cents FROM stripe_refund_totals WHERE deposit_id = $1",
                                           d["id"]) or 0
            taken = await ledger.withdrawn(conn, d["id"])
            # What Stripe refunded on its own and the wallet has not given back yet is not refundable again.
            gone = max(sum(taken.values()), refunded)
            refundable.append(Deposit(key=d["key"], payment_intent=d["ref"], remaining_cents=d["amount_cents"] - gone))
        parts = allocate(cents, refundable)
        withdrawal_id = await conn.fetchval(
            "INSERT INTO withdrawals (client_id, request_id, cents) VALUES ($1, $2, $3) RETURNING id::text",
            client_id, request_id, cents)
        txns = []
        for n, (deposit, part_cents) in enumerate(parts):
            txn_key = f"withdrawal:{withdrawal_id}:{n}"
            txn = await ledger.withdraw_deposit(conn, client_id=client_id, cents=part_cents, key=txn_key,
                                                kind="stripe_refund", ref=deposit.payment_intent,
                                                original_key=deposit.key, memo="withdrawal to card")
            assert txn.loss_cents == 0  # the wallet covered it: checked above under its lock
            await conn.execute(
                "INSERT INTO withdrawal_parts (withdrawal_id, deposit_id, payment_intent, cents, txn_key)"
                " SELECT $1, id, $2, $3, $4 FROM ledger_transactions WHERE key = $5",
                withdrawal_id, deposit.payment_intent, part_cents, txn_key, deposit.key)
            txns.append(txn)
        return withdrawal_id, txns

    withdrawal_id, txns = await atomic(db, work)
    withdrawal = await get(db, withdrawal_id)
    assert withdrawal is not None
    if txns:
        log.info("withdrawal started", extra={"clientId": client_id, "withdrawalId": withdrawal_id, "cents": cents,
                                              "parts": len(txns)})
    return withdrawal, txns


async def send(db: Db, gateway: RefundSender, withdrawal: Withdrawal) -> tuple[Withdrawal, list[Txn]]:
    """Ask Stripe for each pending part's Refund (step 2) and book the answers. Safe to call again."""
    undone: list[Txn] = []
    for part in withdrawal.parts:
        if part["status"] != "pending":
            continue
        try:
            refund_id = await gateway.create_refund(
                payment_intent=part["payment_intent"], cents=part["cents"], key=f"withdrawal-part:{part['id']}",
                metadata={"withdrawal_id": withdrawal.id, "client_id": withdrawal.client_id})
        except StripeRefused as exc:
            txn = await _fail_part(db, part, exc.message)
            if txn is not None:
                undone.append(txn)
            continue
        except PaymentsUnavailable:
            log.warning("withdrawal refund not answered; it stays pending", extra={"withdrawalId": withdrawal.id})
            continue
        async with ledger.connection(db) as conn:
            await conn.execute("UPDATE withdrawal_parts SET status = 'succeeded', stripe_refund_id = $2,"
                               " updated_at = now() WHERE id = $1 AND status = 'pending'", part["id"], refund_id)
    await _settle(db, withdrawal.id)
    fresh = await get(db, withdrawal.id)
    assert fresh is not None
    return fresh, undone


async def _undo_part(conn: asyncpg.Connection, part_id: str, txn_key: str, reason: str, *, was: str) -> Txn | None:
    """Put a part back in the wallet and mark it failed, if it still is ``was`` (under its row lock); None when
    it is not (another node or an earlier webhook did it)."""
    status = await conn.fetchval("SELECT status FROM withdrawal_parts WHERE id = $1 FOR UPDATE", part_id)
    if status != was:
        return None
    txn = await ledger.reverse(conn, original_key=txn_key, key=f"{txn_key}:failed", kind="withdrawal_failed",
                               memo=reason[:200])
    await conn.execute("UPDATE withdrawal_parts SET status = 'failed', failure = $2, updated_at = now()"
                       " WHERE id = $1", part_id, reason[:500])
    return txn


async def _fail_part(db: Db, part: dict[str, Any], reason: str) -> Txn | None:
    txn = await atomic(db, lambda conn: _undo_part(conn, part["id"], part["txn_key"], reason, was="pending"))
    log.warning("withdrawal refund refused; the part is back in the wallet",
                extra={"partId": part["id"], "reason": reason[:200]})
    return txn


async def _settle(db: Db, withdrawal_id: str) -> None:
    """The withdrawal's status from its parts', once none is pending."""
    async with ledger.connection(db) as conn:
        await conn.execute(
            "UPDATE withdrawals w SET status = CASE WHEN s.failed = 0 THEN 'done' WHEN s.ok = 0 THEN 'failed'"
            " ELSE 'partial' END, updated_at = now()"
            " FROM (SELECT count(*) FILTER (WHERE status = 'pending') AS pending,"
            "              count(*) FILTER (WHERE status = 'failed') AS failed,"
            "              count(*) FILTER (WHERE status = 'succeeded') AS ok"
            "       FROM withdrawal_parts WHERE withdrawal_id = $1) s"
            " WHERE w.id = $1 AND w.status = 'pending' AND s.pending = 0", withdrawal_id)


async def pending(db: Db, *, older_than: datetime) -> list[Withdrawal]:
    """Withdrawals with a refund Stripe has not answered since before ``older_than``: for :func:`send`."""
    async with ledger.connection(db) as conn:
        ids = await conn.fetch("SELECT id::text FROM withdrawals WHERE status = 'pending' AND created_at < $1"
                               " ORDER BY created_at LIMIT 100", older_than)
    found = [await get(db, r["id"]) for r in ids]
    return [w for w in found if w is not None]


async def refund_failed(db: Db, refund_id: str, reason: str) -> Txn | None:
    """Stripe says a refund failed after accepting it (``refund.failed``): undo that part, if it is ours."""
    async with ledger.connection(db) as conn:
        row = await conn.fetchrow("SELECT id::text, withdrawal_id::text, txn_key FROM withdrawal_parts"
                                  " WHERE stripe_refund_id = $1", refund_id)
    if row is None:
        return None

    async def work(conn: asyncpg.Connection) -> Txn | None:
        txn = await _undo_part(conn, row["id"], row["txn_key"], reason, was="succeeded")
        if txn is None:
            return None
        await conn.execute("UPDATE withdrawals SET status = 'partial', updated_at = now() WHERE id = $1"
                           " AND status = 'done'", row["withdrawal_id"])
        return txn

    return await atomic(db, work)
