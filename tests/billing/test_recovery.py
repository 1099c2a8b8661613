"""A reading's money is durable and fenced: charges are recorded with the reading, and only the holder of the
reading's current epoch, while it is active, can charge, persist the meter or settle it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from billing import ledger, recovery
from billing.errors import InsufficientFunds, LeaseLost
from billing.meter import ChargeMinute, Meter, Refund
from tests.billing.invariants import assert_ledger_invariants
from tests.billing.people import make_pair


async def active_reading(pool: asyncpg.Pool, *, rate: int = 120, balance: int = 1000,
                         mode: str = "per_minute", epoch: int = 1) -> tuple[str, str, str]:
    client, reader = await make_pair(pool)
    if balance:
        await ledger.deposit(pool, client_id=client, cents=balance, key=f"seed:{client}")
    session = await pool.fetchval(
        "INSERT INTO rtc_sessions (client_id, reader_id, session_type, mode, status, rate_cents, started_at,"
        " lease_epoch) VALUES ($1, $2, 'video', $3, 'active', $4, now(), $5) RETURNING id::text",
        client, reader, mode, rate, epoch)
    return str(session), client, reader


async def reading(pool: asyncpg.Pool, session: str) -> asyncpg.Record:
    return await pool.fetchrow("SELECT * FROM rtc_sessions WHERE id = $1", session)


async def charge(pool: asyncpg.Pool | asyncpg.Connection, session: str, client: str, reader: str, index: int,
                 cents: int = 120, epoch: int = 1) -> ledger.Txn:
    return await recovery.charge_minute(pool, session_id=session, epoch=epoch, client_id=client, reader_id=reader,
                                        index=index, cents=cents)


async def waiting_on_a_lock(pool: asyncpg.Pool, fragment: str) -> bool:
    """Some backend's statement containing ``fragment`` is waiting for a lock."""
    return bool(await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        " AND query LIKE '%' || $1 || '%'", fragment))


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not await condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


async def test_charge_minute_records_the_charge_on_the_reading_once(pool: asyncpg.Pool) -> None:
    session, client, reader = await active_reading(pool, rate=120)
    for _ in range(2):
        txn = await charge(pool, session, client, reader, 0)
    assert txn.replayed and txn.key == f"reading:{session}:minute:0"
    await charge(pool, session, client, reader, 1)
    row = await reading(pool, session)
    assert (row["charged_cents"], row["meter_minutes_charged"], row["meter_billable_seconds"]) == (240, 2, 60.0)
    assert row["meter_heartbeat_at"] is not None
    assert await ledger.balance(pool, client) == 760
    await assert_ledger_invariants(pool)


async def test_a_refused_minute_changes_neither_wallet_nor_reading(pool: asyncpg.Pool) -> None:
    session, client, reader = await active_reading(pool, rate=120, balance=100)
    with pytest.raises(InsufficientFunds):
        await charge(pool, session, client, reader, 0)
    row = await reading(pool, session)
    assert (row["charged_cents"], row["meter_minutes_charged"]) == (0, 0)
    assert await ledger.balance(pool, client) == 100


async def test_settle_reading_refunds_the_unused_part_and_writes_the_totals(pool: asyncpg.Pool) -> None:
    session, client, reader = await active_reading(pool, rate=120)
    meter = Meter(rate_cents=120, balance_cents=1000)
    decisions = meter.connected("client", 0) + meter.connected("reader", 0) + meter.tick(60)
    decisions += meter.finish(75.5, "ended_by_client")
    for d in decisions:
        if isinstance(d, ChargeMinute):
            await charge(pool, session, client, reader, d.index, d.cents)
    refund = next(d for d in decisions if isinstance(d, Refund))
    assert refund == Refund(88, 1)  # 15.5 s -> 16 s used: 44 s of 120/min back
    for _ in range(2):  # idempotent
        await recovery.settle_reading(pool, session_id=session, epoch=1, billable_seconds=75.5,
                                      refund_cents=refund.cents)
    row = await reading(pool, session)
    assert (row["billable_seconds"], row["charged_cents"]) == (76, 152) and meter.charged_cents == 152
    assert await ledger.balance(pool, client) == 1000 - 152
    assert await ledger.earnings(pool, reader) == 84 + 84 - 61  # split(120) twice, less split(88)
    await assert_ledger_invariants(pool)


async def test_heartbeat_persists_meter_state_and_never_moves_it_backwards(pool: asyncpg.Pool) -> None:
    session, _, _ = await active_reading(pool)
    await recovery.record_heartbeat(pool, session, 42.5, 1, epoch=1)
    await recovery.record_heartbeat(pool, session, 40.0, 1, epoch=1)
    row = await reading(pool, session)
    assert (row["meter_billable_seconds"], row["meter_minutes_charged"]) == (42.5, 1)


async def test_a_stale_epoch_charges_persists_and_settles_nothing(pool: asyncpg.Pool) -> None:
    session, client, reader = await active_reading(pool, epoch=2)  # another owner took it over
    with pytest.raises(LeaseLost):
        await charge(pool, session, client, reader, 0, epoch=1)
    with pytest.raises(LeaseLost):
        await recovery.record_heartbeat(pool, session, 30.0, 1, epoch=1)
    await charge(pool, session, client, reader, 0, epoch=2)
    with pytest.raises(LeaseLost):
        await recovery.settle_reading(pool, session_id=session, epoch=1, billable_seconds=30, refund_cents=60)
    row = await reading(pool, session)
    assert (row["status"], row["charged_cents"], row["meter_billable_seconds"]) == ("active", 120, 0.0)
    assert await ledger.balance(pool, client) == 1000 - 120
    await assert_ledger_invariants(pool)


async def test_no_minute_is_charged_on_a_reading_that_ended(pool: asyncpg.Pool) -> None:
    session, client, reader = await active_reading(pool)
    await charge(pool, session, client, reader, 0)
    await pool.execute("UPDATE rtc_sessions SET status = 'ended', ended_at = now() WHERE id = $1", session)
    with pytest.raises(LeaseLost):
        await charge(pool, session, client, reader, 1)
    # A replay of a minute charged before the end is still the original charge, moving nothing.
    assert (await charge(pool, session, client, reader, 0)).replayed
    assert await ledger.balance(pool, client) == 1000 - 120
    await assert_ledger_invariants(pool)


async def test_a_takeover_waits_for_the_charge_in_flight_while_renewals_do_not(
        pool: asyncpg.Pool, database_url: str) -> None:
    session, client, reader = await active_reading(pool)
    holder = await asyncpg.connect(database_url)  # someone holds the wallet: the charge waits for it
    taker = await asyncpg.connect(database_url)
    try:
        await holder.execute("BEGIN")
        await holder.execute("SELECT 1 FROM client_balances WHERE client_id = $1 FOR UPDATE", client)
        charging = asyncio.create_task(charge(pool, session, client, reader, 0))
        await until(lambda: waiting_on_a_lock(pool, "WITH lease AS"))
        # A lease renewal or heartbeat (no epoch or state change) is not held up by the charge.
        await asyncio.wait_for(pool.execute(
            "UPDATE rtc_sessions SET lease_expires_at = now() + interval '15 seconds' WHERE id = $1", session), 3)
        await recovery.record_heartbeat(pool, session, 1.0, 0, epoch=1)
        # A takeover locks the row FOR UPDATE: it waits for the charge under the old epoch to finish.
        await taker.execute("BEGIN")
        takeover = asyncio.create_task(taker.fetchval(
            "SELECT meter_minutes_charged FROM rtc_sessions WHERE id = $1 FOR UPDATE", session))
        await until(lambda: waiting_on_a_lock(pool, "meter_minutes_charged FROM rtc_sessions WHERE id = $1 FOR UPDATE"))
        assert not takeover.done()
        await holder.execute("ROLLBACK")
        assert (await asyncio.wait_for(charging, 5)).amount_cents == 120
        assert await asyncio.wait_for(takeover, 5) == 1  # the new owner sees the minute and restores from it
        await taker.execute("UPDATE rtc_sessions SET lease_epoch = 2 WHERE id = $1", session)
        await taker.execute("COMMIT")
    finally:
        await holder.close()
        await taker.close()
    with pytest.raises(LeaseLost):
        await charge(pool, session, client, reader, 1)
    assert await ledger.balance(pool, client) == 1000 - 120
    await assert_ledger_invariants(pool)


async def test_a_charge_queued_behind_a_takeover_finds_the_new_epoch_and_moves_nothing(
        pool: asyncpg.Pool, database_url: str) -> None:
    session, client, reader = await active_reading(pool)
    taker = await asyncpg.connect(database_url)
    try:
        await taker.execute("BEGIN")
        await taker.execute("SELECT 1 FROM rtc_sessions WHERE id = $1 FOR UPDATE", session)
        charging = asyncio.create_task(charge(pool, session, client, reader, 0))
        await until(lambda: waiting_on_a_lock(pool, "WITH lease AS"))
        await taker.execute("UPDATE rtc_sessions SET lease_epoch = 2 WHERE id = $1", session)
        await taker.execute("COMMIT")
        # The charge's lock re-reads the newest row: epoch 2, not the 1 it names.
        with pytest.raises(LeaseLost):
            await asyncio.wait_for(charging, 5)
    finally:
        await taker.close()
    row = await reading(pool, session)
    assert (row["charged_cents"], row["meter_minutes_charged"]) == (0, 0)
    assert await ledger.balance(pool, client) == 1000
    await assert_ledger_invariants(pool)


async def test_many_charges_of_one_minute_under_a_racing_takeover_charge_it_at_most_once(
        pool: asyncpg.Pool) -> None:
    session, client, reader = await active_reading(pool, rate=60)

    async def take_over() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM rtc_sessions WHERE id = $1 FOR UPDATE", session)
            await conn.execute("UPDATE rtc_sessions SET lease_epoch = lease_epoch + 1 WHERE id = $1", session)

    results = await asyncio.gather(*(charge(pool, session, client, reader, 0, cents=60) for _ in range(6)),
                                   take_over(), return_exceptions=True)
    charged = [r for r in results[:6] if isinstance(r, ledger.Txn)]
    assert all(isinstance(r, (ledger.Txn, LeaseLost)) for r in results[:6]), results
    assert len({t.id for t in charged}) <= 1
    assert await ledger.balance(pool, client) == 1000 - 60 * bool(charged)
    await assert_ledger_invariants(pool)
