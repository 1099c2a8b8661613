"""A reading's money survives a crash: charges are recorded with the reading, and interrupted readings are
settled exactly once from their last persisted meter state."""

from __future__ import annotations

import asyncpg
import pytest

from billing import ledger, recovery
from billing.errors import InsufficientFunds
from billing.meter import ChargeMinute, Meter, Refund
from tests.billing.invariants import assert_ledger_invariants
from tests.billing.people import make_pair


async def active_reading(pool: asyncpg.Pool, *, rate: int = 120, balance: int = 1000,
                         mode: str = "per_minute") -> tuple[str, str, str]:
    client, reader = await make_pair(pool)
    if balance:
        await ledger.deposit(pool, client_id=client, cents=balance, key=f"seed:{client}")
    session = await pool.fetchval(
        "INSERT INTO rtc_sessions (client_id, reader_id, session_type, mode, status, rate_cents, started_at)"
        " VALUES ($1, $2, 'video', $3, 'active', $4, now()) RETURNING id::text", client, reader, mode, rate)
    return str(session), client, reader


async def reading(pool: asyncpg.Pool, session: str) -> asyncpg.Record:
    return await pool.fetchrow("SELECT * FROM rtc_sessions WHERE id = $1", session)


async def test_charge_minute_records_the_charge_on_the_reading_once(pool: asyncpg.Pool) -> None:
    session, client, reader = await active_reading(pool, rate=120)
    for _ in range(2):
        txn = await recovery.charge_minute(pool, session_id=session, client_id=client, reader_id=reader,
                                           index=0, cents=120)
    assert txn.replayed and txn.key == f"reading:{session}:minute:0"
    await recovery.charge_minute(pool, session_id=session, client_id=client, reader_id=reader, index=1, cents=120)
    row = await reading(pool, session)
    assert (row["charged_cents"], row["meter_minutes_charged"], row["meter_billable_seconds"]) == (240, 2, 60.0)
    assert row["meter_heartbeat_at"] is not None
    assert await ledger.balance(pool, client) == 760


async def test_a_refused_minute_changes_neither_wallet_nor_reading(pool: asyncpg.Pool) -> None:
    session, client, reader = await active_reading(pool, rate=120, balance=100)
    with pytest.raises(InsufficientFunds):
        await recovery.charge_minute(pool, session_id=session, client_id=client, reader_id=reader, index=0,
                                     cents=120)
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
            await recovery.charge_minute(pool, session_id=session, client_id=client, reader_id=reader,
                                         index=d.index, cents=d.cents)
    refund = next(d for d in decisions if isinstance(d, Refund))
    assert refund == Refund(88, 1)  # 15.5 s -> 16 s used: 44 s of 120/min back
    for _ in range(2):  # idempotent
        await recovery.settle_reading(pool, session_id=session, billable_seconds=75.5, refund_cents=refund.cents)
    row = await reading(pool, session)
    assert (row["billable_seconds"], row["charged_cents"]) == (76, 152) and meter.charged_cents == 152
    assert await ledger.balance(pool, client) == 1000 - 152
    assert await ledger.earnings(pool, reader) == 84 + 84 - 61  # split(120) twice, less split(88)
    await assert_ledger_invariants(pool)


async def test_heartbeat_persists_meter_state_and_never_moves_it_backwards(pool: asyncpg.Pool) -> None:
    session, _, _ = await active_reading(pool)
    await recovery.record_heartbeat(pool, session, 42.5, 1)
    await recovery.record_heartbeat(pool, session, 40.0, 1)
    row = await reading(pool, session)
    assert (row["meter_billable_seconds"], row["meter_minutes_charged"]) == (42.5, 1)


async def test_an_interrupted_reading_is_settled_once_from_its_last_heartbeat(pool: asyncpg.Pool) -> None:
    session, client, reader = await active_reading(pool, rate=120)
    for index in range(3):
        await recovery.charge_minute(pool, session_id=session, client_id=client, reader_id=reader, index=index,
                                     cents=120)
    await recovery.record_heartbeat(pool, session, 130.0, 3)  # 10 s into minute 3: 50 s unused -> 100 cents
    await pool.execute("UPDATE rtc_sessions SET meter_heartbeat_at = now() - interval '5 minutes' WHERE id = $1",
                       session)
    assert await recovery.settle_interrupted(pool, older_than_seconds=60) == [session]
    row = await reading(pool, session)
    assert (row["status"], row["end_reason"], row["billable_seconds"], row["charged_cents"]) == (
        "ended", "server_restart", 130, 260)
    assert row["ended_at"] is not None
    assert await ledger.balance(pool, client) == 1000 - 260
    # A second run (another node, a restart) finds nothing and moves nothing.
    assert await recovery.settle_interrupted(pool, older_than_seconds=0) == []
    assert await ledger.balance(pool, client) == 740
    await assert_ledger_invariants(pool)


async def test_readings_with_a_fresh_heartbeat_are_left_alone(pool: asyncpg.Pool) -> None:
    session, client, reader = await active_reading(pool)
    await recovery.charge_minute(pool, session_id=session, client_id=client, reader_id=reader, index=0, cents=120)
    assert await recovery.settle_interrupted(pool, older_than_seconds=30) == []
    assert (await reading(pool, session))["status"] == "active"


async def test_at_start_up_every_active_reading_is_settled(pool: asyncpg.Pool) -> None:
    sessions = [await active_reading(pool) for _ in range(3)]
    session, client, reader = sessions[0]
    await recovery.charge_minute(pool, session_id=session, client_id=client, reader_id=reader, index=0, cents=120)
    never_billed = sessions[1][0]
    ended = await pool.fetchval(
        "INSERT INTO rtc_sessions (client_id, reader_id, session_type, status, rate_cents)"
        " VALUES ($1, $2, 'chat', 'ended', 10) RETURNING id::text", client, reader)
    settled = await recovery.settle_interrupted(pool, older_than_seconds=0)
    assert sorted(settled) == sorted(s for s, _, _ in sessions)
    # The charged minute at 0 persisted billable seconds: the whole minute comes back.
    assert await ledger.balance(pool, client) == 1000
    assert (await reading(pool, never_billed))["charged_cents"] == 0
    assert (await reading(pool, ended))["end_reason"] is None
    await assert_ledger_invariants(pool)


async def test_interrupted_scheduled_readings_end_without_a_refund(pool: asyncpg.Pool) -> None:
    session, client, reader = await active_reading(pool, mode="scheduled")
    await ledger.charge(pool, client_id=client, reader_id=reader, cents=500, key=f"scheduled:{session}",
                        kind="scheduled_reading", ref=session)
    assert await recovery.settle_interrupted(pool, older_than_seconds=0) == [session]
    assert await ledger.balance(pool, client) == 500
    assert (await reading(pool, session))["end_reason"] == "server_restart"


async def test_two_nodes_recovering_at_once_settle_each_reading_once(pool: asyncpg.Pool) -> None:
    import asyncio

    session, client, reader = await active_reading(pool, rate=60)
    await recovery.charge_minute(pool, session_id=session, client_id=client, reader_id=reader, index=0, cents=60)
    await recovery.record_heartbeat(pool, session, 30.0, 1)
    results = await asyncio.gather(*(recovery.settle_interrupted(pool, older_than_seconds=0) for _ in range(4)))
    assert [s for settled in results for s in settled] == [session]
    assert await ledger.balance(pool, client) == 1000 - 30
