"""The money invariant check itself: it catches what a broken movement leaves behind, even when balanced.

Each broken movement is written inside a transaction that is rolled back (the deferred balance trigger only
runs at commit), so the test's database stays clean for the check every test gets at teardown.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from billing import ledger
from tests.billing.invariants import assert_ledger_invariants
from tests.billing.people import make_pair


async def _broken(pool: asyncpg.Pool, corrupt: Callable[[asyncpg.Connection], Awaitable[None]]) -> str:
    """The invariants' complaint about ``corrupt``'s writes, seen from inside their (rolled back) transaction."""
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            await corrupt(conn)
            with pytest.raises(AssertionError) as caught:
                await assert_ledger_invariants(conn)
        finally:
            await tx.rollback()
    return str(caught.value)


async def _txn(conn: asyncpg.Connection, key: str, kind: str, cents: int, entries: list[tuple[str, str | None, int]],
               **columns: object) -> str:
    names = ", ".join(["key", "kind", "amount_cents", *columns])
    marks = ", ".join(f"${i}" for i in range(1, len(columns) + 4))
    txn_id = await conn.fetchval(f"INSERT INTO ledger_transactions ({names}) VALUES ({marks}) RETURNING id",
                                 key, kind, cents, *columns.values())
    for account, owner, amount in entries:
        await conn.execute("INSERT INTO ledger_entries (txn_id, account, owner_id, amount_cents)"
                           " VALUES ($1, $2, $3, $4)", txn_id, account, owner, amount)
        if account == "wallet":
            # (each test's client has a wallet row from its deposit)
            await conn.execute("UPDATE client_balances SET balance_cents = balance_cents + $2 WHERE client_id = $1",
                               owner, amount)
    return str(txn_id)


async def test_a_deposit_taken_back_twice_is_caught(pool: asyncpg.Pool) -> None:
    client, _ = await make_pair(pool)
    await ledger.deposit(pool, client_id=client, cents=2000, key="dep", ref="pi_1")

    async def twice(conn: asyncpg.Connection) -> None:
        deposit = await conn.fetchval("SELECT id FROM ledger_transactions WHERE key = 'dep'")
        await _txn(conn, "dispute", "dispute", 2000, [("wallet", client, -2000), ("stripe", None, 2000)],
                   client_id=client, original_id=deposit)
        await _txn(conn, "refund", "stripe_refund", 2000, [("stripe", None, 2000), ("loss", None, -2000)],
                   client_id=client, original_id=deposit, loss_cents=2000)

    assert "dep: 4000 taken back of a 2000-cent deposit" in await _broken(pool, twice)


async def test_a_balanced_charge_paid_to_the_wrong_account_is_caught(pool: asyncpg.Pool) -> None:
    client, reader = await make_pair(pool)
    await ledger.deposit(pool, client_id=client, cents=1000, key="dep")

    async def all_to_platform(conn: asyncpg.Connection) -> None:
        await _txn(conn, "gift", "gift", 500, [("wallet", client, -500), ("revenue", None, 500)],
                   client_id=client, reader_id=reader, reader_cents=350, platform_cents=150)

    assert "gift (gift): entries" in await _broken(pool, all_to_platform)


async def test_a_cached_balance_that_drifted_from_its_entries_is_caught(pool: asyncpg.Pool) -> None:
    client, _ = await make_pair(pool)
    await ledger.deposit(pool, client_id=client, cents=1000, key="dep")

    async def drift(conn: asyncpg.Connection) -> None:
        await conn.execute("UPDATE client_balances SET balance_cents = 1500 WHERE client_id = $1", client)

    assert "mismatched" in await _broken(pool, drift)


async def test_a_refund_of_more_than_its_charge_is_caught(pool: asyncpg.Pool) -> None:
    client, reader = await make_pair(pool)
    await ledger.deposit(pool, client_id=client, cents=1000, key="dep")
    await ledger.charge(pool, client_id=client, reader_id=reader, cents=100, key="msg", kind="message")

    async def refund_twice(conn: asyncpg.Connection) -> None:
        charge = await conn.fetchval("SELECT id FROM ledger_transactions WHERE key = 'msg'")
        for n in range(2):
            await _txn(conn, f"back:{n}", "refund", 100,
                       [("wallet", client, 100), ("earnings", reader, -70), ("revenue", None, -30)],
                       client_id=client, reader_id=reader, reader_cents=70, platform_cents=30, original_id=charge)

    complaint = await _broken(pool, refund_twice)
    assert "msg: 200 refunded of a 100-cent charge" in complaint or "earnings" in complaint
