"""Booking a reader's slot: the scheduled reading, the slot and the payment, in one transaction.

A slot can never be double-booked: billing holds it under a row lock (:func:`billing.slots.hold_slot`,
``session_id`` unique), and a reader's slots never overlap (a trigger in migration 0002). The reading is
created here, in the state the state machine gives a booked reading (``accepted``: it is paid at booking).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg

from api.readings import reminders, store
from api.readings.states import Mode
from billing import slots
from billing.ledger import Db, Txn, atomic
from billing.scheduled import book_scheduled

log = logging.getLogger(__name__)

SESSION_TYPES = ("chat", "audio", "video")


async def book_slot(db: Db, *, slot_id: str, client_id: str, session_type: str, expected_cents: int,
                    now: datetime | None = None) -> tuple[dict[str, Any], Txn]:
    """Book a slot: in one transaction, create the scheduled reading (at the reader's flat rate for the slot's
    length), mark the slot booked, write its reminders and charge the client; returns the reading's row and the charge.

    ``expected_cents`` is the price the client was shown. Raises what :func:`billing.slots.hold_slot` raises,
    or :class:`billing.errors.InsufficientFunds`; nothing is written then.
    """
    if session_type not in SESSION_TYPES:
        raise ValueError(f"session_type must be one of {SESSION_TYPES}")

    async def work(conn: asyncpg.Connection) -> tuple[dict[str, Any], Txn]:
        slot, price = await slots.hold_slot(conn, slot_id=slot_id, client_id=client_id,
                                            expected_cents=expected_cents, now=now)
        reader_id = str(slot["reader_id"])
        session_id = await store.create(conn, client_id=client_id, reader_id=reader_id, session_type=session_type,
                                        mode=Mode.SCHEDULED, rate_cents=price, scheduled_start=slot["starts_at"],
                                        scheduled_minutes=slot["minutes"])
        await slots.mark_booked(conn, slot_id=slot_id, session_id=session_id)
        await reminders.schedule(conn, session_id, slot["starts_at"], now or datetime.now(UTC))
        txn = await book_scheduled(conn, session_id=session_id, client_id=client_id, reader_id=reader_id,
                                   cents=price)
        row = dict(await conn.fetchrow("SELECT * FROM rtc_sessions WHERE id = $1", session_id))
        log.info("slot booked", extra={"slotId": slot_id, "sessionId": session_id, "clientId": client_id})
        return row, txn

    return await atomic(db, work)
