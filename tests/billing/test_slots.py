"""Reader slots and scheduled-reading money: flat rate paid at booking, never double-booked, refundable."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from api.readings import booking
from billing import ledger, scheduled, slots
from billing.errors import RefundTooLarge, SlotNotFound, SlotTaken
from tests.billing.invariants import assert_ledger_invariants
from tests.billing.people import make_pair, make_user

SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
PRICE = {15: 1500, 30: 2800, 45: 0, 60: 5000}  # reader_with_rates' flat prices, as a client is shown them


async def reader_with_rates(pool: asyncpg.Pool, **flat: int) -> str:
    reader = await make_user(pool, "reader")
    await pool.execute(
        "INSERT INTO reader_rates (reader_id, flat_15_cents, flat_30_cents, flat_45_cents, flat_60_cents)"
        " VALUES ($1, $2, $3, $4, $5)", reader, flat.get("m15", 1500), flat.get("m30", 2800), flat.get("m45", 0),
        flat.get("m60", 5000))
    return reader


async def client_with(pool: asyncpg.Pool, cents: int) -> str:
    client = await make_user(pool, "client")
    await ledger.deposit(pool, client_id=client, cents=cents, key=f"seed:{client}")
    return client


async def booked(pool: asyncpg.Pool, minutes: int) -> tuple[str, str, slots.Slot, dict[str, Any], ledger.Txn]:
    """A video reading booked at the shown price in a new reader's slot of ``minutes``, by a client with $100:
    (reader, client, slot, the reading's row, the charge)."""
    reader = await reader_with_rates(pool)
    client = await client_with(pool, 10_000)
    slot = await slots.publish_slot(pool, reader_id=reader, starts_at=SOON, minutes=minutes)
    session, txn = await booking.book_slot(pool, slot_id=slot.id, client_id=client, session_type="video",
                                           expected_cents=PRICE[slot.minutes])
    return reader, client, slot, session, txn


async def test_a_readers_slots_never_overlap(pool: asyncpg.Pool) -> None:
    reader = await reader_with_rates(pool)
    other = await reader_with_rates(pool)
    await slots.publish_slot(pool, reader_id=reader, starts_at=SOON, minutes=30)
    with pytest.raises(SlotTaken):
        await slots.publish_slot(pool, reader_id=reader, starts_at=SOON + timedelta(minutes=15), minutes=15)
    with pytest.raises(SlotTaken):
        await slots.publish_slot(pool, reader_id=reader, starts_at=SOON - timedelta(minutes=30), minutes=45)
    # Back to back is fine, and another reader's time is theirs.
    await slots.publish_slot(pool, reader_id=reader, starts_at=SOON + timedelta(minutes=30), minutes=60)
    await slots.publish_slot(pool, reader_id=other, starts_at=SOON, minutes=30)
    # Even when published at the same moment.
    results = await asyncio.gather(*(slots.publish_slot(pool, reader_id=other, starts_at=SOON + timedelta(hours=5),
                                                        minutes=15) for _ in range(4)), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1


async def test_only_open_slots_can_be_withdrawn(pool: asyncpg.Pool) -> None:
    reader = await reader_with_rates(pool)
    client = await client_with(pool, 10_000)
    open_slot = await slots.publish_slot(pool, reader_id=reader, starts_at=SOON, minutes=15)
    booked = await slots.publish_slot(pool, reader_id=reader, starts_at=SOON + timedelta(hours=1), minutes=15)
    await booking.book_slot(pool, slot_id=booked.id, client_id=client, session_type="chat", expected_cents=1500)
    with pytest.raises(SlotNotFound):
        await slots.delete_slot(pool, reader_id=client, slot_id=open_slot.id)  # not theirs
    await slots.delete_slot(pool, reader_id=reader, slot_id=open_slot.id)
    with pytest.raises(SlotNotFound):
        await slots.delete_slot(pool, reader_id=reader, slot_id=open_slot.id)
    with pytest.raises(SlotTaken):
        await slots.delete_slot(pool, reader_id=reader, slot_id=booked.id)


async def test_a_scheduled_reading_is_refunded_once_and_its_slot_can_reopen(pool: asyncpg.Pool) -> None:
    reader, client, slot, session, _ = await booked(pool, 60)
    session_id = str(session["id"])
    for _ in range(2):
        txn = await scheduled.refund_scheduled(pool, session_id=session_id, cents=5000, reason="cancelled by client")
    assert txn.replayed and txn.reader_cents == 3500
    with pytest.raises(RefundTooLarge):  # nothing of the payment is left to give back
        await ledger.refund_charge(pool, original_key=f"scheduled:{session_id}", cents=1, key="more")
    assert await ledger.balance(pool, client) == 10_000 and await ledger.earnings(pool, reader) == 0
    assert await pool.fetchval("SELECT charged_cents FROM rtc_sessions WHERE id = $1", session_id) == 0
    assert await slots.release_slot(pool, session_id=session_id)
    assert [s.id for s in await slots.list_slots(pool, reader, open_only=True)] == [slot.id]
    await assert_ledger_invariants(pool)


async def test_book_scheduled_charges_an_existing_reading_once(pool: asyncpg.Pool) -> None:
    client, reader = await make_pair(pool)
    await ledger.deposit(pool, client_id=client, cents=3000, key="seed")
    session = await pool.fetchval(
        "INSERT INTO rtc_sessions (client_id, reader_id, session_type, mode, status, rate_cents, scheduled_minutes)"
        " VALUES ($1, $2, 'audio', 'scheduled', 'accepted', 2500, 30) RETURNING id::text", client, reader)
    first = await scheduled.book_scheduled(pool, session_id=session, client_id=client, reader_id=reader, cents=2500)
    again = await scheduled.book_scheduled(pool, session_id=session, client_id=client, reader_id=reader, cents=2500)
    assert again.replayed and again.id == first.id
    assert await pool.fetchval("SELECT charged_cents FROM rtc_sessions WHERE id = $1", session) == 2500
    assert await ledger.balance(pool, client) == 500
