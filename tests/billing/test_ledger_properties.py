"""Random interleavings of deposits, charges, refunds, gifts, Stripe refunds and disputes, from concurrent
tasks on one wallet, keep the ledger's invariants."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import ledger
from billing.errors import InsufficientFunds, RefundTooLarge
from tests.billing.invariants import assert_ledger_invariants
from tests.billing.people import make_pair

OPERATION = st.one_of(
    st.tuples(st.just("deposit"), st.integers(1, 500)),
    st.tuples(st.just("charge"), st.integers(0, 300), st.sampled_from(sorted(ledger.CHARGE_KINDS))),
    st.tuples(st.just("refund"), st.integers(0, 9), st.integers(1, 300)),
    st.tuples(st.just("stripe_refund"), st.integers(0, 9), st.integers(1, 500)),
    st.tuples(st.just("dispute"), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("replay"), st.integers(0, 9)),
)


async def run_task(pool: asyncpg.Pool, client: str, reader: str, name: str, ops: list[tuple]) -> None:
    charges: list[tuple[str, int, str]] = []
    deposits: list[tuple[str, int]] = []
    for n, op in enumerate(ops):
        key = f"{name}:{n}"
        kind = op[0]
        try:
            if kind == "deposit":
                await ledger.deposit(pool, client_id=client, cents=op[1], key=key, ref=f"pi_{key}")
                deposits.append((key, op[1]))
            elif kind == "charge":
                await ledger.charge(pool, client_id=client, reader_id=reader, cents=op[1], key=key, kind=op[2])
                charges.append((key, op[1], op[2]))
            elif kind == "refund" and charges:
                original, _, _ = charges[op[1] % len(charges)]
                await ledger.refund_charge(pool, original_key=original, cents=op[2], key=key)
            elif kind == "stripe_refund" and deposits:
                original, cents = deposits[op[1] % len(deposits)]
                await ledger.withdraw_deposit(pool, client_id=client, cents=min(cents, op[2]), key=key,
                                              kind="stripe_refund", ref=f"ch_{key}", original_key=original)
            elif kind == "dispute" and deposits:
                original, cents = deposits[op[1] % len(deposits)]
                await ledger.withdraw_deposit(pool, client_id=client, cents=cents, key=key, kind="dispute",
                                              ref=f"dp_{key}", original_key=original)
                if op[2]:
                    await ledger.reverse(pool, original_key=key, key=f"{key}:won")
            elif kind == "replay" and charges:
                original, cents, charge_kind = charges[op[1] % len(charges)]
                again = await ledger.charge(pool, client_id=client, reader_id=reader, cents=cents, key=original,
                                            kind=charge_kind)
                assert again.replayed
        except (InsufficientFunds, RefundTooLarge):
            pass


# One database for all examples (fresh users per example): the invariants are global and must hold anyway.
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(tasks=st.lists(st.lists(OPERATION, max_size=20), min_size=1, max_size=4))
def test_concurrent_random_movements_keep_the_ledger_balanced_and_wallets_non_negative(
        database_url: str, tasks: list[list[tuple]]) -> None:
    async def example() -> None:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=6)
        try:
            client, reader = await make_pair(pool)
            run = uuid.uuid4().hex[:8]
            await asyncio.gather(*(run_task(pool, client, reader, f"{run}:t{i}", ops) for i, ops in enumerate(tasks)))
            await assert_ledger_invariants(pool)
            expected = await pool.fetchval(
                "SELECT coalesce(sum(amount_cents), 0)::bigint FROM ledger_entries"
                " WHERE account = 'wallet' AND owner_id = $1", client)
            assert await ledger.balance(pool, client) == expected >= 0
        finally:
            await pool.close()

    asyncio.run(example())
