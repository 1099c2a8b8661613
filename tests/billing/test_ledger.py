"""The ledger against a real PostgreSQL: balanced, idempotent, never overdrawn, append-only."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from billing import ledger
from billing.errors import (
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    RefundTooLarge,
    UnknownAccount,
    UnknownTransaction,
)
from tests.billing.invariants import assert_ledger_invariants
from tests.billing.people import make_pair, make_user


async def funded(pool: asyncpg.Pool, cents: int) -> tuple[str, str]:
    client, reader = await make_pair(pool)
    await ledger.deposit(pool, client_id=client, cents=cents, key=f"seed:{client}")
    return client, reader


# -- deposits --------------------------------------------------------------------------------------------

async def test_deposit_credits_the_wallet_from_the_stripe_account(pool: asyncpg.Pool) -> None:
    client = await make_user(pool)
    txn = await ledger.deposit(pool, client_id=client, cents=2500, key="stripe:checkout:cs_1", ref="pi_1")
    assert (txn.kind, txn.amount_cents, txn.replayed) == ("deposit", 2500, False)
    assert await ledger.balance(pool, client) == 2500
    entries = await pool.fetch("SELECT account, amount_cents FROM ledger_entries WHERE txn_id = $1 ORDER BY 1",
                               txn.id)
    assert [tuple(e) for e in entries] == [("stripe", -2500), ("wallet", 2500)]
    await assert_ledger_invariants(pool)


async def test_manual_credit_comes_from_adjustments_and_records_the_operator(pool: asyncpg.Pool) -> None:
    client = await make_user(pool)
    txn = await ledger.deposit(pool, client_id=client, cents=100, key="manual:1", source="manual",
                               memo="goodwill", operator="ops@example.test")
    row = await pool.fetchrow("SELECT source, operator, memo FROM ledger_transactions WHERE id = $1", txn.id)
    assert tuple(row) == ("manual", "ops@example.test", "goodwill")
    assert await pool.fetchval("SELECT account FROM ledger_entries WHERE txn_id = $1 AND owner_id IS NULL",
                               txn.id) == "adjustments"


async def test_a_repeated_deposit_key_moves_nothing_and_returns_the_original(pool: asyncpg.Pool) -> None:
    client = await make_user(pool)
    first = await ledger.deposit(pool, client_id=client, cents=700, key="k")
    again = await ledger.deposit(pool, client_id=client, cents=700, key="k")
    assert again.replayed and again.id == first.id
    assert await ledger.balance(pool, client) == 700


async def test_reusing_a_key_for_a_different_movement_is_refused(pool: asyncpg.Pool) -> None:
    client, reader = await funded(pool, 1000)
    await ledger.deposit(pool, client_id=client, cents=700, key="k")
    with pytest.raises(IdempotencyConflict):
        await ledger.deposit(pool, client_id=client, cents=701, key="k")
    with pytest.raises(IdempotencyConflict):
        await ledger.charge(pool, client_id=client, reader_id=reader, cents=700, key="k", kind="gift")
    assert await ledger.balance(pool, client) == 1700


async def test_deposits_to_unknown_users_and_bad_amounts_are_refused(pool: asyncpg.Pool) -> None:
    with pytest.raises(UnknownAccount):
        await ledger.deposit(pool, client_id="00000000-0000-0000-0000-000000000000", cents=1, key="x")
    client = await make_user(pool)
    for bad in (0, -5, 1.5, True):
        with pytest.raises(InvalidAmount):
            await ledger.deposit(pool, client_id=client, cents=bad, key="y")  # type: ignore[arg-type]
    await assert_ledger_invariants(pool)


# -- charges ---------------------------------------------------------------------------------------------

async def test_charge_moves_money_to_the_reader_and_the_platform_70_30(pool: asyncpg.Pool) -> None:
    client, reader = await funded(pool, 1000)
    txn = await ledger.charge(pool, client_id=client, reader_id=reader, cents=333, key="reading:s:minute:0",
                              kind="reading_minute", ref="s")
    assert (txn.amount_cents, txn.reader_cents, txn.platform_cents) == (333, 233, 100)
    assert await ledger.balance(pool, client) == 667
    assert await ledger.earnings(pool, reader) == 233
    await assert_ledger_invariants(pool)


async def test_a_charge_the_wallet_cannot_cover_moves_nothing(pool: asyncpg.Pool) -> None:
    client, reader = await funded(pool, 100)
    with pytest.raises(InsufficientFunds) as refused:
        await ledger.charge(pool, client_id=client, reader_id=reader, cents=101, key="c", kind="gift")
    assert (refused.value.balance_cents, refused.value.needed_cents, refused.value.code) == (
        100, 101, "insufficient_funds")
    assert await ledger.balance(pool, client) == 100
    assert await pool.fetchval("SELECT count(*) FROM ledger_transactions WHERE key = 'c'") == 0
    # The key is still free: once the client has the money, the same charge goes through.
    await ledger.deposit(pool, client_id=client, cents=1, key="top-up")
    assert not (await ledger.charge(pool, client_id=client, reader_id=reader, cents=101, key="c",
                                    kind="gift")).replayed


async def test_a_client_without_a_wallet_has_insufficient_funds(pool: asyncpg.Pool) -> None:
    client, reader = await make_pair(pool)
    assert await ledger.balance(pool, client) == 0
    with pytest.raises(InsufficientFunds):
        await ledger.charge(pool, client_id=client, reader_id=reader, cents=1, key="c", kind="message")


async def test_a_repeated_charge_key_charges_once(pool: asyncpg.Pool) -> None:
    client, reader = await funded(pool, 1000)
    first = await ledger.charge(pool, client_id=client, reader_id=reader, cents=100, key="m0", kind="reading_minute")
    again = await ledger.charge(pool, client_id=client, reader_id=reader, cents=100, key="m0", kind="reading_minute")
    assert again.replayed and again.id == first.id and again.reader_cents == 70
    assert await ledger.balance(pool, client) == 900


async def test_concurrent_retries_of_one_charge_charge_once(pool: asyncpg.Pool) -> None:
    client, reader = await funded(pool, 1000)
    results = await asyncio.gather(*(
        ledger.charge(pool, client_id=client, reader_id=reader, cents=100, key="same", kind="reading_minute")
        for _ in range(8)))
    assert sum(not r.replayed for r in results) == 1 and len({r.id for r in results}) == 1
    assert await ledger.balance(pool, client) == 900
    await assert_ledger_invariants(pool)


async def test_concurrent_charges_on_one_wallet_never_overdraw_it(pool: asyncpg.Pool) -> None:
    client, reader = await funded(pool, 1000)

    async def attempt(i: int) -> bool:
        try:
            await ledger.charge(pool, client_id=client, reader_id=reader, cents=70, key=f"c{i}", kind="gift")
            return True
        except InsufficientFunds:
            return False

    outcomes = await asyncio.gather(*(attempt(i) for i in range(30)))
    assert sum(outcomes) == 1000 // 70
    assert await ledger.balance(pool, client) == 1000 % 70
    await assert_ledger_invariants(pool)


async def test_a_free_minute_takes_its_key_and_moves_nothing(pool: asyncpg.Pool) -> None:
    client, reader = await make_pair(pool)
    txn = await ledger.charge(pool, client_id=client, reader_id=reader, cents=0, key="free", kind="reading_minute")
    assert (txn.amount_cents, txn.replayed) == (0, False)
    assert (await ledger.charge(pool, client_id=client, reader_id=reader, cents=0, key="free",
                                kind="reading_minute")).replayed
    assert await pool.fetchval("SELECT count(*) FROM ledger_entries") == 0


async def test_charges_to_unknown_readers_or_of_unknown_kinds_are_refused(pool: asyncpg.Pool) -> None:
    client, _ = await funded(pool, 1000)
    with pytest.raises(UnknownAccount):
        await ledger.charge(pool, client_id=client, reader_id="00000000-0000-0000-0000-000000000000", cents=1,
                            key="c", kind="gift")
    with pytest.raises(ledger.BillingError):
        await ledger.charge(pool, client_id=client, reader_id=client, cents=1, key="c", kind="tip")
    assert await ledger.balance(pool, client) == 1000


async def test_a_charge_joins_the_callers_transaction(pool: asyncpg.Pool) -> None:
    client, reader = await funded(pool, 1000)
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await ledger.charge(conn, client_id=client, reader_id=reader, cents=100, key="a", kind="gift")
                raise RuntimeError("the caller's own write failed")
        assert await ledger.balance(conn, client) == 1000
        async with conn.transaction():
            with pytest.raises(InsufficientFunds):
                await ledger.charge(conn, client_id=client, reader_id=reader, cents=5000, key="b", kind="gift")
            # Still usable after the refusal: the rest of the caller's work commits.
            await ledger.charge(conn, client_id=client, reader_id=reader, cents=100, key="c", kind="gift")
    assert await ledger.balance(pool, client) == 900


# -- refunds ---------------------------------------------------------------------------------------------

async def test_refund_gives_back_from_reader_and_platform_in_the_same_proportion(pool: asyncpg.Pool) -> None:
    client, reader = await funded(pool, 1000)
    await ledger.charge(pool, client_id=client, reader_id=reader, cents=100, key="m", kind="reading_minute")
    txn = await ledger.refund_charge(pool, original_key="m", cents=50, key="m:refund")
    assert (txn.kind, txn.amount_cents, txn.reader_cents, txn.platform_cents) == ("refund", 50, 35, 15)
    assert await ledger.balance(pool, client) == 950
    assert await ledger.earnings(pool, reader) == 35
    assert (await ledger.refund_charge(pool, original_key="m", cents=50, key="m:refund")).replayed
    await assert_ledger_invariants(pool)


async def test_a_charge_refunded_in_parts_gives_back_exactly_what_each_side_got(pool: asyncpg.Pool) -> None:
    client, reader = await funded(pool, 1000)
    await ledger.charge(pool, client_id=client, reader_id=reader, cents=5, key="g", kind="gift")  # 3 / 2
    parts = [await ledger.refund_charge(pool, original_key="g", cents=c, key=f"g:r{i}") for i, c in
             enumerate([1, 1, 3])]
    assert sum(p.reader_cents for p in parts) == 3 and sum(p.platform_cents for p in parts) == 2
    assert await ledger.earnings(pool, reader) == 0
    assert await ledger.balance(pool, client) == 1000


async def test_refunds_never_exceed_the_charge(pool: asyncpg.Pool) -> None:
    client, reader = await funded(pool, 1000)
    await ledger.charge(pool, client_id=client, reader_id=reader, cents=100, key="m", kind="reading_minute")
    await ledger.refund_charge(pool, original_key="m", cents=60, key="r1")
    with pytest.raises(RefundTooLarge):
        await ledger.refund_charge(pool, original_key="m", cents=41, key="r2")
    results = await asyncio.gather(*(ledger.refund_charge(pool, original_key="m", cents=40, key=f"x{i}")
                                     for i in range(4)), return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, RefundTooLarge) for r in results if isinstance(r, Exception))
    assert await ledger.balance(pool, client) == 1000
    with pytest.raises(UnknownTransaction):
        await ledger.refund_charge(pool, original_key="seed:" + client, cents=1, key="r3")  # a deposit
    await assert_ledger_invariants(pool)


# -- withdrawals -----------------------------------------------------------------------------------------

async def test_a_stripe_refund_takes_the_money_back_out_of_the_wallet(pool: asyncpg.Pool) -> None:
    client = await make_user(pool)
    await ledger.deposit(pool, client_id=client, cents=1000, key="d", ref="pi_1")
    txn = await ledger.withdraw_deposit(pool, client_id=client, cents=400, key="w", kind="stripe_refund",
                                        ref="ch_1", original_key="d")
    assert (txn.amount_cents, txn.loss_cents) == (400, 0)
    assert await ledger.balance(pool, client) == 600
    await assert_ledger_invariants(pool)


async def test_a_dispute_on_spent_money_books_what_cannot_be_recovered_as_platform_loss(
        pool: asyncpg.Pool) -> None:
    client, reader = await make_pair(pool)
    await ledger.deposit(pool, client_id=client, cents=1000, key="d", ref="pi_1")
    await ledger.charge(pool, client_id=client, reader_id=reader, cents=800, key="c", kind="gift")
    txn = await ledger.withdraw_deposit(pool, client_id=client, cents=1000, key="dispute", kind="dispute",
                                        ref="dp_1", original_key="d")
    assert (txn.amount_cents, txn.loss_cents) == (1000, 800)
    assert await ledger.balance(pool, client) == 0
    await assert_ledger_invariants(pool)
    # Won: the withdrawal is reversed exactly, loss included.
    back = await ledger.reverse(pool, original_key="dispute", key="dispute:won")
    assert (back.kind, back.amount_cents, back.loss_cents) == ("dispute_reinstated", 1000, 800)
    assert await ledger.balance(pool, client) == 200
    assert (await ledger.reverse(pool, original_key="dispute", key="dispute:won")).replayed
    assert await pool.fetchval("SELECT balance_cents FROM ledger_accounts WHERE account = 'loss'") == 0
    await assert_ledger_invariants(pool)


async def test_a_deposit_is_never_taken_back_beyond_its_amount(pool: asyncpg.Pool) -> None:
    client = await make_user(pool)
    await ledger.deposit(pool, client_id=client, cents=1000, key="d", ref="pi_1")
    await ledger.withdraw_deposit(pool, client_id=client, cents=600, key="refund", kind="stripe_refund",
                                  ref="ch_1", original_key="d")
    with pytest.raises(RefundTooLarge, match="only 400 cents"):
        await ledger.withdraw_deposit(pool, client_id=client, cents=1000, key="dispute", kind="dispute",
                                      ref="dp_1", original_key="d")
    held = await ledger.withdraw_deposit(pool, client_id=client, cents=400, key="dispute", kind="dispute",
                                         ref="dp_1", original_key="d")
    assert await ledger.balance(pool, client) == 0
    # A reinstated dispute no longer counts as taken back.
    await ledger.reverse(pool, original_key=held.key, key="dispute:won")
    deposit_id = await pool.fetchval("SELECT id FROM ledger_transactions WHERE key = 'd'")
    assert await ledger.withdrawn(pool, deposit_id) == {"dispute": 0, "stripe_refund": 600}
    with pytest.raises(UnknownTransaction):
        other = await make_user(pool)
        await ledger.withdraw_deposit(pool, client_id=other, cents=1, key="x", kind="dispute", ref=None,
                                      original_key="d")
    await assert_ledger_invariants(pool)


# -- the database guards the rules too -------------------------------------------------------------------

async def test_the_database_refuses_an_unbalanced_transaction(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError, match="unbalanced"):
            async with conn.transaction():
                txn = await conn.fetchval("INSERT INTO ledger_transactions (key, kind, amount_cents)"
                                          " VALUES ('bad', 'deposit', 5) RETURNING id")
                await conn.execute("INSERT INTO ledger_entries (txn_id, account, amount_cents)"
                                   " VALUES ($1, 'stripe', -5)", txn)
    assert await pool.fetchval("SELECT count(*) FROM ledger_transactions") == 0


async def test_the_ledger_is_append_only(pool: asyncpg.Pool) -> None:
    client = await make_user(pool)
    txn = await ledger.deposit(pool, client_id=client, cents=10, key="d")
    with pytest.raises(asyncpg.RestrictViolationError):
        await pool.execute("UPDATE ledger_entries SET amount_cents = 1000 WHERE txn_id = $1", txn.id)
    with pytest.raises(asyncpg.RestrictViolationError):
        await pool.execute("DELETE FROM ledger_transactions WHERE id = $1", txn.id)


async def test_the_database_refuses_a_negative_balance(pool: asyncpg.Pool) -> None:
    client = await make_user(pool)
    await ledger.deposit(pool, client_id=client, cents=10, key="d")
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute("UPDATE client_balances SET balance_cents = -1 WHERE client_id = $1", client)


# -- reading it back -------------------------------------------------------------------------------------

async def test_history_lists_a_users_movements_newest_first(pool: asyncpg.Pool) -> None:
    client, reader = await funded(pool, 1000)
    for i in range(3):
        await ledger.charge(pool, client_id=client, reader_id=reader, cents=10 + i, key=f"g{i}", kind="gift",
                            ref="stream-1", memo=f"gift {i}")
    mine = await ledger.history(pool, client, limit=2)
    assert [(h["kind"], h["amountCents"], h["account"]) for h in mine] == [
        ("gift", -12, "wallet"), ("gift", -11, "wallet")]
    assert mine[0]["createdAt"].endswith("Z") and mine[0]["ref"] == "stream-1"
    rest = await ledger.history(pool, client, before=mine[-1]["cursor"])
    assert [h["amountCents"] for h in rest] == [-10, 1000]
    theirs = await ledger.history(pool, reader)
    assert [(h["amountCents"], h["account"]) for h in theirs] == [(8, "earnings"), (7, "earnings"), (7, "earnings")]
    assert await ledger.earnings(pool, reader) == 22
