"""A dispute's lifecycle from signed-and-verified events (here applied directly): held from the wallet as far as
it holds it, the rest carried by the platform with the client flagged; released when won; fee booked when lost."""

from __future__ import annotations

import asyncpg

from billing import ledger, stripe_events
from tests.billing.people import make_pair


def event(event_id: str, event_type: str, status: str, cents: int = 5_000, fee: int = 1_500) -> dict:
    return {"id": event_id, "type": event_type, "data": {"object": {
        "id": "dp_1", "object": "dispute", "payment_intent": "pi_d", "amount": cents, "status": status,
        "reason": "fraudulent", "balance_transactions": [{"fee": fee}]}}}


async def setup(pool: asyncpg.Pool, spent: int) -> str:
    client, reader = await make_pair(pool)
    await ledger.deposit(pool, client_id=client, cents=5_000, key="stripe:checkout:cs_d", ref="pi_d")
    if spent:
        await ledger.charge(pool, client_id=client, reader_id=reader, cents=spent, key="m1", kind="message")
    return client


async def test_a_dispute_holds_what_the_wallet_has_and_the_platform_carries_the_rest(pool: asyncpg.Pool) -> None:
    client = await setup(pool, spent=3_000)
    outcome = await stripe_events.handle_event(pool, event("evt_1", "charge.dispute.created", "needs_response"))
    assert outcome == "withdrawn_with_loss"
    row = await pool.fetchrow("SELECT status, held_cents, carried_cents FROM disputes WHERE id = 'dp_1'")
    assert tuple(row) == ("open", 2_000, 3_000)
    assert await ledger.balance(pool, client) == 0
    flagged = await pool.fetchval("SELECT flag_reason FROM users WHERE id = $1", client)
    assert flagged is not None and "3000" in flagged


async def test_a_dispute_the_wallet_covers_does_not_flag_the_client(pool: asyncpg.Pool) -> None:
    client = await setup(pool, spent=0)
    assert await stripe_events.handle_event(pool, event("evt_1", "charge.dispute.created", "needs_response")) == (
        "withdrawn")
    assert await pool.fetchval("SELECT flagged_at FROM users WHERE id = $1", client) is None


async def test_a_won_dispute_releases_the_hold(pool: asyncpg.Pool) -> None:
    client = await setup(pool, spent=0)
    await stripe_events.handle_event(pool, event("evt_1", "charge.dispute.created", "needs_response"))
    assert await stripe_events.handle_event(pool, event("evt_2", "charge.dispute.closed", "won")) == "reinstated"
    assert await ledger.balance(pool, client) == 5_000
    assert await pool.fetchval("SELECT status FROM disputes WHERE id = 'dp_1'") == "won"


async def test_a_lost_dispute_keeps_the_hold_and_books_the_fee_to_loss_once(pool: asyncpg.Pool) -> None:
    client = await setup(pool, spent=0)
    await stripe_events.handle_event(pool, event("evt_1", "charge.dispute.created", "needs_response"))
    assert await stripe_events.handle_event(pool, event("evt_2", "charge.dispute.closed", "lost")) == "dispute_lost"
    assert await stripe_events.handle_event(pool, event("evt_3", "charge.dispute.closed", "lost")) == "dispute_lost"
    assert await ledger.balance(pool, client) == 0
    row = await pool.fetchrow("SELECT status, fee_cents FROM disputes WHERE id = 'dp_1'")
    assert tuple(row) == ("lost", 1_500)
    loss = await pool.fetchval("SELECT balance_cents FROM ledger_accounts WHERE account = 'loss'")
    assert loss == -1_500
