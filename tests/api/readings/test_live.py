"""A node's readings across its restarts: shutting down hands every running reading over (state persisted,
lease released), and the next node adopts it. Its parties re-join and it continues, the outage unbilled and no
minute charged twice; parties who do not come back end it, settled by its rules. Two apps on one real
PostgreSQL play the process before and after the restart (tests/api/readings/test_crash.py does it with real
processes and kill -9)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from aiohttp.test_utils import TestClient

from api.readings import booking
from api.readings.live import LIVE_READINGS
from billing import ledger, slots
from billing.meter import net_cents, prorated_refund
from billing.scheduled_policy import Booking, not_given_refund
from config import Settings
from tests.billing.invariants import assert_ledger_invariants
from tests.reading_steps import (
    ManualClock,
    Party,
    Signal,
    reader_and_client,
    running_app,
    session_row,
    started_reading,
)

RATE = 120  # chat cents per minute in reader_and_client
PRICE_15 = 2500


def advance(http: TestClient, clock: ManualClock, seconds: float) -> None:
    clock.advance(seconds)
    http.app[LIVE_READINGS].wake()


async def join_both(http: TestClient, session_id: str, client: Party, reader: Party) -> tuple[Signal, Signal]:
    client_ws, reader_ws = await Signal.open(http, client), await Signal.open(http, reader)
    await client_ws.join(session_id)
    await reader_ws.join(session_id)
    return client_ws, reader_ws


async def test_a_reading_handed_over_at_shutdown_continues_when_both_rejoin_and_the_gap_is_not_billed(
        settings: Settings, pool: asyncpg.Pool) -> None:
    first = ManualClock()
    async with running_app(settings, clock=first) as http:
        session_id, client, reader, client_ws, _ = await started_reading(http, pool)
        advance(http, first, 10)
        await client_ws.expect("session-state", billableSeconds=10)
    handed = await session_row(pool, session_id)
    assert (handed["status"], handed["meter_minutes_charged"], handed["meter_billable_seconds"]) == ("active", 1, 10)
    assert await pool.fetchval("SELECT lease_expires_at <= now() FROM rtc_sessions WHERE id = $1", session_id)

    second = ManualClock(5000)  # another process: its own monotonic clock
    async with running_app(settings, clock=second) as http:
        live = http.app[LIVE_READINGS]
        runtime = live.get(session_id)  # adopted at start-up, before the server answered
        assert runtime is not None and runtime.resumed and runtime.lease.epoch == 2
        advance(http, second, 30)  # the parties take 30 s to come back: not billed
        client_ws, reader_ws = await join_both(http, session_id, client, reader)
        resumed = await reader_ws.expect("session-state", running=True)
        assert resumed["billableSeconds"] == 10 and resumed["chargedCents"] == RATE
        advance(http, second, 49)  # 59 s billable: minute 1 not yet
        await client_ws.expect("session-state", billableSeconds=59, chargedCents=RATE)
        advance(http, second, 1)
        await client_ws.expect("session-state", chargedCents=2 * RATE)
        advance(http, second, 5)
        await client_ws.expect("session-state", billableSeconds=65)
        await client_ws.send("end-session")
        end = await client_ws.expect("end-session")
    assert end["reason"] == "ended_by_client"
    row = await session_row(pool, session_id)
    assert row["billable_seconds"] == 65 and row["charged_cents"] == net_cents(RATE, 65)
    keys = [r["key"] for r in await pool.fetch("SELECT key FROM ledger_transactions WHERE ref = $1 ORDER BY key",
                                               session_id)]
    assert keys == [f"reading:{session_id}:minute:0", f"reading:{session_id}:minute:1", f"reading:{session_id}:refund"]
    assert await ledger.balance(pool, client.id) == 10_000 - net_cents(RATE, 65)
    await assert_ledger_invariants(pool)


async def test_a_resumed_reading_nobody_comes_back_to_ends_as_server_restart_refunded_from_its_last_state(
        settings: Settings, pool: asyncpg.Pool) -> None:
    first = ManualClock()
    async with running_app(settings, clock=first) as http:
        session_id, client, reader, client_ws, _ = await started_reading(http, pool)
        advance(http, first, 20)
        await client_ws.expect("session-state", billableSeconds=20)
    second = ManualClock(5000)
    async with running_app(settings, clock=second, grace_seconds=30) as http:
        notes = await Signal.open(http, client)
        advance(http, second, 31)
        ended = await notes.expect("notification", kind="session-ended")
    assert ended["session"]["endReason"] == "server_restart"
    row = await session_row(pool, session_id)
    assert (row["status"], row["billable_seconds"]) == ("ended", 20)
    assert row["charged_cents"] == net_cents(RATE, 20) == RATE - prorated_refund(RATE, 20, 1)
    assert await pool.fetchval("SELECT status FROM reader_availability WHERE reader_id = $1", reader.id) == "online"
    assert await ledger.balance(pool, client.id) == 10_000 - row["charged_cents"]
    await assert_ledger_invariants(pool)


async def _booked(http: TestClient, pool: asyncpg.Pool, starts_in: timedelta, minutes: int = 15,
                  ) -> tuple[str, Party, Party, datetime]:
    """A chat reading booked (and paid) in one of the reader's slots, starting ``starts_in`` from now (which
    may be in the past: the booking is then made as if just before its start)."""
    reader, client = await reader_and_client(http, pool, rates={"chatCents": 100, "flatCents": {
        "15": PRICE_15, "30": 4500, "45": 6000, "60": 7500}})
    starts_at = (datetime.now(UTC) + starts_in).replace(microsecond=0)
    slot = await slots.publish_slot(pool, reader_id=reader.id, starts_at=starts_at, minutes=minutes)
    booked_at = min(datetime.now(UTC), starts_at - timedelta(minutes=1))
    session, _ = await booking.book_slot(pool, slot_id=slot.id, client_id=client.id, session_type="chat",
                                       expected_cents=PRICE_15, now=booked_at)
    return str(session["id"]), client, reader, starts_at


async def test_a_scheduled_reading_under_way_before_its_start_resumes_after_a_restart_when_its_parties_rejoin(
        settings: Settings, pool: asyncpg.Pool) -> None:
    first = ManualClock()
    async with running_app(settings, clock=first, schedule_early_join_seconds=3600) as http:
        session_id, client, reader, _ = await _booked(http, pool, timedelta(minutes=6))
        client_ws, _ = await join_both(http, session_id, client, reader)
        await client_ws.expect("start-session")
        advance(http, first, 20)
        await client_ws.expect("session-state", billableSeconds=20)
    row = await session_row(pool, session_id)
    assert (row["status"], row["charged_cents"]) == ("active", PRICE_15)
    second = ManualClock(5000)
    async with running_app(settings, clock=second, schedule_early_join_seconds=3600) as http:
        client_ws, reader_ws = await join_both(http, session_id, client, reader)
        state = await client_ws.expect("session-state", running=True)
        assert state["status"] == "active" and state["chargedCents"] == PRICE_15
        assert await pool.fetchval("SELECT session_id FROM reader_slots WHERE session_id = $1", session_id)
        # It goes on under the new owner; the reader ending it before the start refunds it all.
        await reader_ws.send("end-session")
        end = await client_ws.expect("end-session")
    assert end["reason"] == "ended_by_reader" and end["session"]["chargedCents"] == 0
    assert await ledger.balance(pool, client.id) == 10_000
    assert await pool.fetchval("SELECT count(*) FROM reader_slots WHERE session_id = $1", session_id) == 0
    await assert_ledger_invariants(pool)


async def test_a_scheduled_reading_whose_parties_do_not_rejoin_after_a_restart_is_refunded_by_the_rules(
        settings: Settings, pool: asyncpg.Pool) -> None:
    first = ManualClock()
    async with running_app(settings, clock=first) as http:
        # Under way: started two minutes ago, 15 minutes booked.
        session_id, client, reader, starts_at = await _booked(http, pool, -timedelta(minutes=2))
        client_ws, _ = await join_both(http, session_id, client, reader)
        await client_ws.expect("start-session")
        advance(http, first, 13)
        await client_ws.expect("session-state", billableSeconds=13)
    row = await session_row(pool, session_id)
    last_together = row["meter_heartbeat_at"]
    second = ManualClock(5000)
    async with running_app(settings, clock=second, grace_seconds=30) as http:
        notes = await Signal.open(http, client)
        advance(http, second, 31)
        ended = await notes.expect("notification", kind="session-ended")
    assert ended["session"]["endReason"] == "server_restart"
    refund = not_given_refund(Booking(PRICE_15, starts_at, 15), last_together)
    assert 0 < refund < PRICE_15
    row = await session_row(pool, session_id)
    assert (row["status"], row["refunded_cents"], row["charged_cents"]) == ("ended", refund, PRICE_15 - refund)
    assert await ledger.balance(pool, client.id) == 10_000 - PRICE_15 + refund
    await assert_ledger_invariants(pool)
