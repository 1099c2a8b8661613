"""billing.verify on money out: it catches what a broken payout or withdrawal leaves behind, even balanced.

Each broken movement is written inside a transaction that is rolled back, so the test's database stays clean
for the check every test gets at teardown."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from billing import ledger
from billing.verify import verify
from tests.billing.people import make_pair


async def _rules_broken(pool: asyncpg.Pool, corrupt: Callable[[asyncpg.Connection], Awaitable[None]]) -> set[str]:
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            await corrupt(conn)
            return {v.rule for v in await verify(conn)}
        finally:
            await tx.rollback()


async def _paid_reader(pool: asyncpg.Pool) -> tuple[str, str]:
    client, reader = await make_pair(pool)
    await ledger.deposit(pool, client_id=client, cents=10_000, key="dep")
    await ledger.charge(pool, client_id=client, reader_id=reader, cents=10_000, key="g", kind="gift")
    await ledger.move_reader_money(pool, reader_id=reader, cents=7_000, key="payout:p", kind="payout")
    return client, reader


async def test_a_sound_ledger_with_payouts_has_no_violation(pool: asyncpg.Pool) -> None:
    _, reader = await _paid_reader(pool)
    await ledger.move_reader_money(pool, reader_id=reader, cents=7_000, key="payout:p:paid", kind="payout_paid",
                                   original_key="payout:p")
    assert await verify(pool) == []


async def test_a_payout_both_paid_and_failed_is_caught(pool: asyncpg.Pool) -> None:
    _, reader = await _paid_reader(pool)

    async def both(conn: asyncpg.Connection) -> None:
        for kind in ("payout_paid", "payout_failed"):
            await ledger.move_reader_money(conn, reader_id=reader, cents=7_000, key=f"payout:p:{kind}", kind=kind,
                                           original_key="payout:p")

    assert {"payout_ends_once", "negative_account"} <= await _rules_broken(pool, both)


async def test_money_paid_out_from_nowhere_breaks_conservation(pool: asyncpg.Pool) -> None:
    _, reader = await _paid_reader(pool)

    async def from_nowhere(conn: asyncpg.Connection) -> None:
        txn_id = await conn.fetchval("INSERT INTO ledger_transactions (key, kind, amount_cents, reader_id)"
                                     " VALUES ('x', 'dispute_fee', 100, $1) RETURNING id", reader)
        await conn.execute("INSERT INTO ledger_entries (txn_id, account, owner_id, amount_cents) VALUES"
                           " ($1, 'paid_out', $2, 100), ($1, 'stripe', NULL, -100)", txn_id, reader)

    assert {"entries_of_kind", "conservation"} <= await _rules_broken(pool, from_nowhere)


async def test_a_payout_row_that_disagrees_with_the_ledger_is_caught(pool: asyncpg.Pool) -> None:
    _, reader = await _paid_reader(pool)

    async def unbooked(conn: asyncpg.Connection) -> None:
        await conn.execute("INSERT INTO payouts (reader_id, cents, trigger, stripe_account_id, status)"
                           " VALUES ($1, 500, 'on_demand', 'acct_x', 'paid')", reader)

    assert "payout_rows" in await _rules_broken(pool, unbooked)
