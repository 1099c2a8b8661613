"""Reader payouts: payable earnings sent to the reader's Stripe connected account as Transfers.

Separate charges and transfers: clients pay the platform (Checkout), and the platform transfers each reader's
share to the reader's connected account later. A payout is two steps, each crash-safe:

1. :func:`start` — in one database transaction: the ``payouts`` row and the ledger movement ``payout:{id}``
   (earnings -> payouts in transit), after the rules (:mod:`billing.payout_policy`) and with the reader's
   connected-account row locked, so a schedule and a click (or two nodes) never pay twice; a unique index
   keeps one payout of a reader in transit.
2. :func:`send` — the Transfer, asked of Stripe with the idempotency key ``payout:{id}``. Stripe's answer
   books ``payout:{id}:paid`` (in transit -> paid out) or, when it refuses, ``payout:{id}:failed`` (in transit
   -> earnings). No answer (a crash, a timeout) leaves the payout in transit; :func:`resume` asks again with the
   same key, and Stripe answers with the same Transfer. A ``transfer.created`` webhook confirms it too.

A reversal (``transfer.reversed``, ``amount_reversed`` cumulative) moves what was reversed back from paid out
to earnings, once per step of that total.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import asyncpg

from billing import ledger
from billing.errors import PaymentsUnavailable, StripeRefused
from billing.ledger import CHARGE_KINDS, Db, Txn, atomic
from billing.payout_policy import PayoutRefused, payable_cents, payout_cents

log = logging.getLogger(__name__)


class TransferSender(Protocol):
    """What a payout needs of Stripe (billing/stripe_gateway.py; a fake in tests)."""

    async def create_transfer(self, *, cents: int, destination: str, key: str, metadata: dict[str, str]) -> str:
        """The Transfer's id; raises :class:`StripeRefused` (definitive) or :class:`PaymentsUnavailable`."""
        ...


@dataclass(frozen=True)
class Payout:
    id: str
    reader_id: str
    cents: int
    status: str  # in_transit | paid | failed
    trigger: str
    stripe_account_id: str
    stripe_transfer_id: str | None
    reversed_cents: int
    failure: str | None
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "amountCents": self.cents, "status": self.status, "trigger": self.trigger,
                "transferId": self.stripe_transfer_id, "reversedCents": self.reversed_cents,
                "failure": self.failure, "createdAt": self.created_at.isoformat().replace("+00:00", "Z")}


_COLUMNS = ("id::text, reader_id::text, cents, status, trigger, stripe_account_id, stripe_transfer_id,"
            " reversed_cents, failure, created_at")


def _payout(row: asyncpg.Record) -> Payout:
    return Payout(**dict(row))


def payout_key(payout_id: str) -> str:
    return f"payout:{payout_id}"


async def payable(db: Db, reader_id: str, *, hold: timedelta, now: datetime) -> int:
    """The reader's payable earnings now (:func:`billing.payout_policy.payable_cents`)."""
    async with ledger.connection(db) as conn:
        row = await conn.fetchrow(
            "SELECT coalesce(sum(e.amount_cents), 0)::bigint AS balance,"
            " coalesce(sum(e.amount_cents) FILTER (WHERE e.amount_cents > 0 AND t.kind = ANY($3::text[])"
            "          AND t.created_at > $2), 0)::bigint AS maturing"
            " FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.txn_id"
            " WHERE e.owner_id = $1 AND e.account = 'earnings'", reader_id, now - hold, sorted(CHARGE_KINDS))
    return payable_cents(int(row["balance"]), int(row["maturing"]))


async def start(db: Db, reader_id: str, *, trigger: str, hold: timedelta, minimum_cents: int,
                now: datetime) -> tuple[Payout, Txn]:
    """Reserve a payout of everything payable (step 1), or :class:`PayoutRefused`."""

    async def work(conn: asyncpg.Connection) -> tuple[Payout, Txn]:
        account = await conn.fetchrow(
            "SELECT stripe_account_id, transfers_status FROM connect_accounts WHERE reader_id = $1 FOR UPDATE",
            reader_id)
        if account is None:
            raise PayoutRefused("connect a payout account first", code="not_connected")
        if account["transfers_status"] != "active":
            raise PayoutRefused("the payout account cannot receive transfers yet (Stripe: "
                                f"{account['transfers_status']})", code="account_not_ready")
        if await conn.fetchval("SELECT suspended_at IS NOT NULL FROM users WHERE id = $1", reader_id):
            raise PayoutRefused("this account is suspended", code="suspended")
        if await conn.fetchval("SELECT true FROM payouts WHERE reader_id = $1 AND status = 'in_transit'", reader_id):
            raise PayoutRefused("a payout is already on its way", code="payout_in_transit")
        cents = payout_cents(payable=await payable(conn, reader_id, hold=hold, now=now),
                             minimum_cents=minimum_cents, on_demand=trigger == "on_demand")
        row = await conn.fetchrow(
            f"INSERT INTO payouts (reader_id, cents, trigger, stripe_account_id) VALUES ($1, $2, $3, $4)"  # noqa: S608
            f" RETURNING {_COLUMNS}", reader_id, cents, trigger, account["stripe_account_id"])
        payout = _payout(row)
        txn = await ledger.move_reader_money(conn, reader_id=reader_id, cents=cents, key=payout_key(payout.id),
                                             kind="payout", ref=payout.id, memo=f"{trigger} payout")
        return payout, txn

    payout, txn = await atomic(db, work)
    log.info("payout started", extra={"readerId": reader_id, "payoutId": payout.id, "cents": payout.cents,
                                      "trigger": trigger})
    return payout, txn


async def get(db: Db, payout_id: str) -> Payout | None:
    async with ledger.connection(db) as conn:
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM payouts WHERE id = $1", payout_id)  # noqa: S608
    return None if row is None else _payout(row)


async def send(db: Db, gateway: TransferSender, payout: Payout) -> tuple[Payout, Txn | None]:
    """Ask Stripe for the payout's Transfer (step 2) and book the answer. Safe to call again: same key."""
    if payout.status != "in_transit":
        return payout, None
    try:
        transfer_id = await gateway.create_transfer(
            cents=payout.cents, destination=payout.stripe_account_id, key=payout_key(payout.id),
            metadata={"payout_id": payout.id, "reader_id": payout.reader_id})
    except StripeRefused as exc:
        return await fail(db, payout.id, exc.message)
    except PaymentsUnavailable:
        log.warning("payout transfer not answered; it stays in transit and is asked again",
                    extra={"payoutId": payout.id})
        return payout, None
    return await paid(db, payout.id, transfer_id)


async def _lock(conn: asyncpg.Connection, payout_id: str) -> Payout | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM payouts WHERE id = $1 FOR UPDATE", payout_id)  # noqa: S608
    return None if row is None else _payout(row)


async def paid(db: Db, payout_id: str, transfer_id: str) -> tuple[Payout, Txn | None]:
    """Stripe created the Transfer: in transit -> paid out (once)."""
    result = await _settle(db, payout_id, outcome="paid", ref=transfer_id, memo="transferred",
                           sets="stripe_transfer_id = $2", value=transfer_id)
    if result[1] is not None:
        log.info("payout paid", extra={"payoutId": payout_id, "transferId": transfer_id})
    return result


async def fail(db: Db, payout_id: str, reason: str) -> tuple[Payout, Txn | None]:
    """Stripe refused the Transfer: in transit -> earnings (once); the money never left."""
    result = await _settle(db, payout_id, outcome="failed", ref=None, memo=reason[:200],
                           sets="failure = $2", value=reason[:500])
    if result[1] is not None:
        log.warning("payout failed", extra={"payoutId": payout_id, "reason": reason[:200]})
    return result


async def _settle(db: Db, payout_id: str, *, outcome: str, ref: str | None, memo: str, sets: str,
                  value: str) -> tuple[Payout, Txn | None]:
    """Move an in-transit payout to ``outcome`` ('paid' or 'failed') with its ledger movement, once: a payout
    already past in transit is returned as it is, with no transaction."""

    async def work(conn: asyncpg.Connection) -> tuple[Payout, Txn | None]:
        payout = await _lock(conn, payout_id)
        if payout is None:
            raise PayoutRefused("no such payout", code="unknown_payout")
        if payout.status != "in_transit":
            return payout, None
        txn = await ledger.move_reader_money(conn, reader_id=payout.reader_id, cents=payout.cents,
                                             key=f"{payout_key(payout.id)}:{outcome}", kind=f"payout_{outcome}",
                                             original_key=payout_key(payout.id), ref=ref, memo=memo)
        row = await conn.fetchrow(
            f"UPDATE payouts SET status = $3, {sets}, updated_at = now() WHERE id = $1"  # noqa: S608
            f" RETURNING {_COLUMNS}", payout_id, value, outcome)
        return _payout(row), txn

    return await atomic(db, work)


async def reversed_to(db: Db, *, transfer_id: str | None, payout_id: str | None,
                      amount_reversed: int) -> tuple[Payout, Txn] | None:
    """A Transfer reversed up to ``amount_reversed`` cents in all (Stripe's cumulative figure): what is newly
    reversed goes back from paid out to earnings. None when nothing new (or a payout we do not know)."""

    async def work(conn: asyncpg.Connection) -> tuple[Payout, Txn] | None:
        row = await conn.fetchrow(
            "SELECT id::text FROM payouts WHERE stripe_transfer_id = $1 OR id::text = $2", transfer_id, payout_id)
        payout = None if row is None else await _lock(conn, row["id"])
        if payout is None or payout.status != "paid":
            return None
        total = min(amount_reversed, payout.cents)
        if total <= payout.reversed_cents:
            return None
        txn = await ledger.move_reader_money(conn, reader_id=payout.reader_id, cents=total - payout.reversed_cents,
                                             key=f"{payout_key(payout.id)}:reversed:{total}", kind="payout_reversed",
                                             original_key=payout_key(payout.id), ref=transfer_id,
                                             memo="transfer reversed")
        row = await conn.fetchrow(
            f"UPDATE payouts SET reversed_cents = $2, updated_at = now() WHERE id = $1"  # noqa: S608
            f" RETURNING {_COLUMNS}", payout.id, total)
        return _payout(row), txn

    return await atomic(db, work)


async def in_transit(db: Db, *, older_than: datetime) -> list[Payout]:
    """Payouts still waiting for Stripe's answer since before ``older_than``: for :func:`send` again."""
    async with ledger.connection(db) as conn:
        rows = await conn.fetch(f"SELECT {_COLUMNS} FROM payouts WHERE status = 'in_transit'"  # noqa: S608
                                " AND created_at < $1 ORDER BY created_at LIMIT 100", older_than)
    return [_payout(r) for r in rows]


async def due_readers(db: Db, *, interval: timedelta, now: datetime) -> list[str]:
    """Readers the schedule pays now: a ready account, nothing in transit, no scheduled payout within the
    interval, and earnings above zero (whether they are payable is :func:`start`'s to decide)."""
    async with ledger.connection(db) as conn:
        rows = await conn.fetch(
            "SELECT c.reader_id::text FROM connect_accounts c"
            " WHERE c.transfers_status = 'active'"
            " AND NOT EXISTS (SELECT 1 FROM payouts p WHERE p.reader_id = c.reader_id AND (p.status = 'in_transit'"
            "                 OR (p.trigger = 'scheduled' AND p.status = 'paid' AND p.created_at > $1)))"
            " AND (SELECT coalesce(sum(amount_cents), 0) FROM ledger_entries e WHERE e.owner_id = c.reader_id"
            "      AND e.account = 'earnings') > 0", now - interval)
    return [r["reader_id"] for r in rows]


async def history(db: Db, reader_id: str, *, limit: int = 50) -> list[Payout]:
    async with ledger.connection(db) as conn:
        rows = await conn.fetch(f"SELECT {_COLUMNS} FROM payouts WHERE reader_id = $1"  # noqa: S608
                                " ORDER BY created_at DESC LIMIT $2", reader_id, max(1, min(limit, 500)))
    return [_payout(r) for r in rows]
