"""Group commit: batched charges give exactly the answers plain charges give, in fewer commits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from billing import ledger
from billing.batcher import ChargeBatcher
from billing.errors import InsufficientFunds, UnknownAccount
from tests.billing.invariants import assert_ledger_invariants
from tests.billing.people import make_pair


@pytest.fixture
async def batcher(pool: asyncpg.Pool) -> AsyncIterator[ChargeBatcher]:
    batcher = ChargeBatcher(pool, workers=3, max_batch=50)
    try:
        yield batcher
    finally:
        await batcher.close()


async def funded_pairs(pool: asyncpg.Pool, count: int, cents: int) -> list[tuple[str, str]]:
    pairs = []
    for _ in range(count):
        client, reader = await make_pair(pool)
        await ledger.deposit(pool, client_id=client, cents=cents, key=f"seed:{client}")
        pairs.append((client, reader))
    return pairs


async def test_many_concurrent_charges_all_land_once(pool: asyncpg.Pool, batcher: ChargeBatcher) -> None:
    pairs = await funded_pairs(pool, 10, 10_000)
    txns = await asyncio.gather(*(
        batcher.charge(client_id=c, reader_id=r, cents=99, key=f"{c}:{i}", kind="reading_minute")
        for c, r in pairs for i in range(20)))
    assert len({t.id for t in txns}) == 200 and not any(t.replayed for t in txns)
    assert all((t.reader_cents, t.platform_cents) == (69, 30) for t in txns)
    for client, reader in pairs:
        assert await ledger.balance(pool, client) == 10_000 - 20 * 99
        assert await ledger.earnings(pool, reader) == 20 * 69
    await assert_ledger_invariants(pool)


async def test_a_wallet_charged_in_batches_is_never_overdrawn(pool: asyncpg.Pool, batcher: ChargeBatcher) -> None:
    [(client, reader)] = await funded_pairs(pool, 1, 1000)
    results = await asyncio.gather(*(
        batcher.charge(client_id=client, reader_id=reader, cents=70, key=f"g{i}", kind="gift")
        for i in range(40)), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1000 // 70
    assert all(isinstance(r, InsufficientFunds) for r in results if isinstance(r, BaseException))
    assert await ledger.balance(pool, client) == 1000 % 70
    await assert_ledger_invariants(pool)


async def test_a_repeated_key_in_a_batch_charges_once(pool: asyncpg.Pool, batcher: ChargeBatcher) -> None:
    [(client, reader)] = await funded_pairs(pool, 1, 1000)
    txns = await asyncio.gather(*(
        batcher.charge(client_id=client, reader_id=reader, cents=100, key="same", kind="reading_minute")
        for _ in range(10)))
    assert sum(not t.replayed for t in txns) == 1 and len({t.id for t in txns}) == 1
    assert await ledger.balance(pool, client) == 900


async def test_a_bad_charge_does_not_spoil_its_batch(pool: asyncpg.Pool, batcher: ChargeBatcher) -> None:
    pairs = await funded_pairs(pool, 3, 1000)
    calls = [batcher.charge(client_id=c, reader_id=r, cents=10, key=f"ok:{c}", kind="gift") for c, r in pairs]
    calls.append(batcher.charge(client_id=pairs[0][0], reader_id="00000000-0000-0000-0000-000000000000", cents=10,
                                key="bad", kind="gift"))
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[-1], UnknownAccount)
    assert [await ledger.balance(pool, c) for c, _ in pairs] == [990, 990, 990]
    await assert_ledger_invariants(pool)


async def test_batched_reading_minutes_are_recorded_on_the_reading(pool: asyncpg.Pool,
                                                                    batcher: ChargeBatcher) -> None:
    [(client, reader)] = await funded_pairs(pool, 1, 1000)
    session = await pool.fetchval(
        "INSERT INTO rtc_sessions (client_id, reader_id, session_type, status, rate_cents)"
        " VALUES ($1, $2, 'chat', 'active', 120) RETURNING id::text", client, reader)
    await asyncio.gather(*(batcher.charge_minute(session_id=session, epoch=0, client_id=client, reader_id=reader,
                                                 index=i, cents=120) for i in (0, 1, 2, 1)))
    row = await pool.fetchrow("SELECT charged_cents, meter_minutes_charged, meter_billable_seconds"
                              " FROM rtc_sessions WHERE id = $1", session)
    assert tuple(row) == (360, 3, 120.0)
    assert await ledger.balance(pool, client) == 640
