"""Reader slots and scheduled-reading money: flat rate paid at booking, never double-booked, refundable."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from billing import ledger, scheduled, slots
from billing.errors import InsufficientFunds, PriceChanged, RateNotSet, RefundTooLarge, SlotNotFound, SlotTaken
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


async def test_booking_a_slot_creates_the_reading_and_charges_the_flat_rate(pool: asyncpg.Pool) -> None:
    reader = await reader_with_rates(pool)
    client = await client_with(pool, 10_000)
    slot = await slots.publish_slot(pool, reader_id=reader, starts_at=SOON, minutes=30)
    session, txn = await slots.book_slot(pool, slot_id=slot.id, client_id=client, session_type="video",
                                         expected_cents=PRICE[slot.minutes])
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
    results = await asyncio.gather(*(slots.book_slot(pool, slot_id=slot.id, client_id=c, session_type="audio",
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
        await slots.book_slot(pool, slot_id=slot.id, client_id=client, session_type="chat", expected_cents=1500)
    assert not (await slots.list_slots(pool, reader, open_only=False))[0].booked
    assert await pool.fetchval("SELECT count(*) FROM rtc_sessions") == 0


async def test_a_slot_whose_price_changed_since_the_client_saw_it_is_not_booked(pool: asyncpg.Pool) -> None:
    reader = await reader_with_rates(pool)
    client = await client_with(pool, 10_000)
    slot = await slots.publish_slot(pool, reader_id=reader, starts_at=SOON, minutes=30)
    await pool.execute("UPDATE reader_rates SET flat_30_cents = 9999 WHERE reader_id = $1", reader)
    with pytest.raises(PriceChanged) as refused:
        await slots.book_slot(pool, slot_id=slot.id, client_id=client, session_type="chat", expected_cents=2800)
    assert (refused.value.expected_cents, refused.value.price_cents) == (2800, 9999)
    assert not (await slots.list_slots(pool, reader, open_only=False))[0].booked
    assert await ledger.balance(pool, client) == 10_000
    assert await pool.fetchval("SELECT count(*) FROM rtc_sessions") == 0


async def test_slots_without_a_price_unknown_slots_and_started_slots_cannot_be_booked(pool: asyncpg.Pool) -> None:
    reader = await reader_with_rates(pool, m45=0)
    client = await client_with(pool, 10_000)
    no_price = await slots.publish_slot(pool, reader_id=reader, starts_at=SOON, minutes=45)
    with pytest.raises(RateNotSet):
        await slots.book_slot(pool, slot_id=no_price.id, client_id=client, session_type="chat", expected_cents=0)
    with pytest.raises(SlotNotFound):
        await slots.book_slot(pool, slot_id="00000000-0000-0000-0000-000000000000", client_id=client,
                              session_type="chat", expected_cents=1500)
    past = await slots.publish_slot(pool, reader_id=reader, starts_at=SOON - timedelta(days=3), minutes=15)
    with pytest.raises(SlotNotFound):
        await slots.book_slot(pool, slot_id=past.id, client_id=client, session_type="chat", expected_cents=1500)
    assert await ledger.balance(pool, client) == 10_000


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
    await slots.book_slot(pool, slot_id=booked.id, client_id=client, session_type="chat", expected_cents=1500)
    with pytest.raises(SlotNotFound):
        await slots.delete_slot(pool, reader_id=client, slot_id=open_slot.id)  # not theirs
    await slots.delete_slot(pool, reader_id=reader, slot_id=open_slot.id)
    with pytest.raises(SlotNotFound):
        await slots.delete_slot(pool, reader_id=reader, slot_id=open_slot.id)
    with pytest.raises(SlotTaken):
        await slots.delete_slot(pool, reader_id=reader, slot_id=booked.id)


async def test_a_scheduled_reading_is_refunded_once_and_its_slot_can_reopen(pool: asyncpg.Pool) -> None:
    reader = await reader_with_rates(pool)
    client = await client_with(pool, 10_000)
    slot = await slots.publish_slot(pool, reader_id=reader, starts_at=SOON, minutes=60)
    session, _ = await slots.book_slot(pool, slot_id=slot.id, client_id=client, session_type="video",
                                         expected_cents=PRICE[slot.minutes])
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
