"""A reading's money movements: each billable minute, the heartbeat, and the settlement at the end.

Each function writes the ledger (billing) and the reading's own totals (``rtc_sessions``) in ONE
database transaction, so the reading's ``chargedCents`` can never disagree with the ledger. Keys make
every call idempotent: ``reading:{id}:minute:{index}`` and ``reading:{id}:refund`` (billing's contract),
so a retry, a crash or a second node never charges twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from billing import ledger


def minute_key(session_id: str, index: int) -> str:
    return f"reading:{session_id}:minute:{index}"


def refund_key(session_id: str) -> str:
    return f"reading:{session_id}:refund"


@dataclass(frozen=True)
class Charged:
    """What a minute's charge did: the ledger's amounts, and whether it was a replay of an earlier call."""

    cents: int
    reader_cents: int
    replayed: bool


async def charge_minute(pool: asyncpg.Pool, *, session_id: str, client_id: str, reader_id: str, index: int,
                        cents: int) -> Charged:
    """Charge minute ``index`` (raises billing's ``InsufficientFunds``; nothing moves then)."""
    async with pool.acquire() as conn, conn.transaction():
        txn = await ledger.charge(conn, client_id=client_id, reader_id=reader_id, cents=cents,
                                  key=minute_key(session_id, index), kind="reading_minute", ref=session_id,
                                  memo=f"reading minute {index + 1}")
        if not txn.replayed:
            await conn.execute(
                "UPDATE rtc_sessions SET charged_cents = charged_cents + $2, earned_cents = earned_cents + $3,"
                " minutes_charged = greatest(minutes_charged, $4) WHERE id = $1",
                session_id, txn.amount_cents, txn.reader_cents, index + 1,
            )
    return Charged(txn.amount_cents, txn.reader_cents, txn.replayed)


async def heartbeat(pool: asyncpg.Pool, session_id: str, billable_seconds: int) -> int | None:
    """Record that the reading is alive with this much billable time; returns the client's balance now.

    One round trip per second per reading: the balance read rides on the heartbeat's UPDATE, which is
    how funds added mid-reading (a webhook on any request or node) reach the meter.
    """
    value = await pool.fetchval(
        "UPDATE rtc_sessions s SET heartbeat_at = now(), billable_seconds = greatest(s.billable_seconds, $2)"
        " WHERE s.id = $1 RETURNING (SELECT b.balance_cents FROM client_balances b WHERE b.client_id = s.client_id)",
        session_id, billable_seconds,
    )
    return None if value is None else int(value)


async def refund_unused(conn: asyncpg.Connection, *, session_id: str, minute_index: int, cents: int) -> int:
    """Give back the unused part of the last charged minute; returns the reader's share taken back."""
    if cents <= 0:
        return 0
    txn = await ledger.refund_charge(conn, original_key=minute_key(session_id, minute_index), cents=cents,
                                     key=refund_key(session_id), memo="unused part of the last minute")
    if txn.replayed:
        return 0
    await conn.execute(
        "UPDATE rtc_sessions SET charged_cents = charged_cents - $2, refunded_cents = refunded_cents + $2,"
        " earned_cents = earned_cents - $3 WHERE id = $1",
        session_id, txn.amount_cents, txn.reader_cents,
    )
    return txn.reader_cents


async def balance(db: asyncpg.Pool | asyncpg.Connection, client_id: str) -> int:
    return await ledger.balance(db, client_id)
