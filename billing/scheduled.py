"""Money for scheduled readings: paid once, at the reader's flat rate, when booked; refunded by policy.

The reading itself (its ``rtc_sessions`` row, the window around its start, no-shows, the cancellation
policy) belongs to the readings side; these functions move the money and keep the row's
``charged_cents`` in step, in the caller's transaction when given a connection inside one.
"""

from __future__ import annotations

import logging

import asyncpg

from billing import ledger
from billing.ledger import Db, Txn, atomic

log = logging.getLogger(__name__)


def booking_key(session_id: str) -> str:
    return f"scheduled:{session_id}"


def refund_key(session_id: str) -> str:
    return f"scheduled:{session_id}:refund"


async def book_scheduled(db: Db, *, session_id: str, client_id: str, reader_id: str, cents: int) -> Txn:
    """Charge a scheduled reading in full (70/30 like any charge). Idempotent by ``scheduled:{session_id}``;
    raises :class:`billing.errors.InsufficientFunds` with nothing moved."""

    async def work(conn: asyncpg.Connection) -> Txn:
        txn = await ledger.charge(conn, client_id=client_id, reader_id=reader_id, cents=cents,
                                  key=booking_key(session_id), kind="scheduled_reading", ref=session_id,
                                  memo="scheduled reading")
        if not txn.replayed:
            await conn.execute("UPDATE rtc_sessions SET charged_cents = charged_cents + $2 WHERE id = $1",
                               session_id, cents)
            log.info("scheduled reading paid", extra={"sessionId": session_id, "clientId": client_id,
                                                      "cents": cents})
        return txn

    return await atomic(db, work)


async def refund_scheduled(db: Db, *, session_id: str, cents: int, reason: str) -> Txn:
    """Give back ``cents`` of a scheduled reading's payment (a reader no-show, a cancellation in time).
    One refund per reading, idempotent by ``scheduled:{session_id}:refund``."""

    async def work(conn: asyncpg.Connection) -> Txn:
        txn = await ledger.refund_charge(conn, original_key=booking_key(session_id), cents=cents,
                                         key=refund_key(session_id), memo=reason)
        if not txn.replayed:
            await conn.execute(
                "UPDATE rtc_sessions SET charged_cents = greatest(0, charged_cents - $2) WHERE id = $1",
                session_id, cents)
            log.info("scheduled reading refunded", extra={"sessionId": session_id, "cents": cents,
                                                          "reason": reason})
        return txn

    return await atomic(db, work)
