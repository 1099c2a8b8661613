"""Booking a slot (api/readings/booking.py): the scheduled reading, the slot and the payment in one transaction."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from api.readings import booking
from billing import ledger, slots
from billing.errors import InsufficientFunds, PriceChanged, RateNotSet, SlotNotFound, SlotTaken
from tests.billing.invariants import assert_ledger_invariants
from tests.billing.test_slots import SOON, booked, client_with, reader_with_rates


async def test_booking_a_slot_creates_the_reading_and_charges_the_flat_rate(pool: asyncpg.Pool) -> None:
    reader, client, _, session, txn = await booked(pool, 30)
    assert (session["mode"], session["status"], session["rate_cents"], session["scheduled_minutes"]) == (
        "scheduled", "accepted", 2800, 30)
    assert session["scheduled_start"] == SOON and session["charged_cents"] == 2800
    assert (txn.kind, txn.key, txn.amount_cents, txn.reader_cents) == (
        "scheduled_reading", f"scheduled:{session['id']}", 2800, 1960)
    assert await ledger.balance(pool, client) == 7200
    [listed] = await slots.list_slots(pool, reader, open_only=False)
    assert listed.booked and listed.session_id == str(session["id"])
    assert await slots.list_slots(pool, reader, open_only=True) == []
    await assert_ledger_invariants(pool)


async def test_a_slot_is_never_booked_twice_even_at_the_same_moment(pool: asyncpg.Pool) -> None:
    reader = await reader_with_rates(pool)
    clients = [await client_with(pool, 10_000) for _ in range(5)]
    slot = await slots.publish_slot(pool, reader_id=reader, starts_at=SOON, minutes=60)
    results = await asyncio.gather(*(booking.book_slot(pool, slot_id=slot.id, client_id=c, session_type="audio",
                                                     expected_cents=5000)
                                     for c in clients), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, SlotTaken) for r in results if isinstance(r, BaseException))
    assert await pool.fetchval("SELECT count(*) FROM rtc_sessions WHERE mode = 'scheduled'") == 1
    assert sorted([await ledger.balance(pool, c) for c in clients]) == [5000] + [10_000] * 4
    await assert_ledger_invariants(pool)


async def test_booking_without_the_money_leaves_the_slot_open_and_writes_nothing(pool: asyncpg.Pool) -> None:
    reader = await reader_with_rates(pool)
    client = await client_with(pool, 1000)
    slot = await slots.publish_slot(pool, reader_id=reader, starts_at=SOON, minutes=15)
    with pytest.raises(InsufficientFunds):
        await booking.book_slot(pool, slot_id=slot.id, client_id=client, session_type="chat", expected_cents=1500)
    assert not (await slots.list_slots(pool, reader, open_only=False))[0].booked
    assert await pool.fetchval("SELECT count(*) FROM rtc_sessions") == 0


async def test_a_slot_whose_price_changed_since_the_client_saw_it_is_not_booked(pool: asyncpg.Pool) -> None:
    reader = await reader_with_rates(pool)
    client = await client_with(pool, 10_000)
    slot = await slots.publish_slot(pool, reader_id=reader, starts_at=SOON, minutes=30)
    await pool.execute("UPDATE reader_rates SET flat_30_cents = 9999 WHERE reader_id = $1", reader)
    with pytest.raises(PriceChanged) as refused:
        await booking.book_slot(pool, slot_id=slot.id, client_id=client, session_type="chat", expected_cents=2800)
    assert (refused.value.expected_cents, refused.value.price_cents) == (2800, 9999)
    assert not (await slots.list_slots(pool, reader, open_only=False))[0].booked
    assert await ledger.balance(pool, client) == 10_000
    assert await pool.fetchval("SELECT count(*) FROM rtc_sessions") == 0


async def test_slots_without_a_price_unknown_slots_and_started_slots_cannot_be_booked(pool: asyncpg.Pool) -> None:
    reader = await reader_with_rates(pool, m45=0)
    client = await client_with(pool, 10_000)
    no_price = await slots.publish_slot(pool, reader_id=reader, starts_at=SOON, minutes=45)
    with pytest.raises(RateNotSet):
        await booking.book_slot(pool, slot_id=no_price.id, client_id=client, session_type="chat", expected_cents=0)
    with pytest.raises(SlotNotFound):
        await booking.book_slot(pool, slot_id="00000000-0000-0000-0000-000000000000", client_id=client,
                              session_type="chat", expected_cents=1500)
    past = await slots.publish_slot(pool, reader_id=reader, starts_at=SOON - timedelta(days=3), minutes=15)
    with pytest.raises(SlotNotFound):
        await booking.book_slot(pool, slot_id=past.id, client_id=client, session_type="chat", expected_cents=1500)
    assert await ledger.balance(pool, client) == 10_000
