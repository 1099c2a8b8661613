"""Wallet withdrawals against a real PostgreSQL and the real Stripe client talking to a local fake Stripe:
refunds of the client's own card payments, newest first, idempotent, never more than the wallet."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest

from billing import ledger, stripe_events, withdrawals
from billing.errors import IdempotencyConflict
from billing.payout_policy import WithdrawalRefused
from billing.stripe_gateway import StripeGateway
from tests.billing.connect_fake import FakeConnect
from tests.billing.money_out import gateway_on
from tests.billing.people import make_pair, make_user

LIMITS = withdrawals.Limits(min_cents=500, max_per_day_cents=50_000)


@pytest.fixture
async def fake_and_gateway() -> tuple[FakeConnect, StripeGateway]:
    fake = FakeConnect()
    async with gateway_on(fake) as gateway:
        yield fake, gateway  # type: ignore[misc]


async def paid_in(pool: asyncpg.Pool, client: str, *amounts: int) -> None:
    for n, cents in enumerate(amounts):
        await ledger.deposit(pool, client_id=client, cents=cents, key=f"stripe:checkout:{client}:{n}",
                             ref=f"pi_{client[:8]}_{n}")


async def withdraw(pool: asyncpg.Pool, client: str, cents: int, request_id: str = "w1") -> withdrawals.Withdrawal:
    withdrawal, _ = await withdrawals.start(pool, client_id=client, cents=cents, request_id=request_id,
                                            limits=LIMITS, now=datetime.now(UTC))
    return withdrawal


async def test_a_withdrawal_refunds_the_newest_payments_first_partially_where_needed(
        pool: asyncpg.Pool, fake_and_gateway) -> None:
    fake, gateway = fake_and_gateway
    client = await make_user(pool)
    await paid_in(pool, client, 2_000, 3_000, 1_000)  # oldest first
    withdrawal = await withdraw(pool, client, 3_500)
    assert await ledger.balance(pool, client) == 2_500  # taken at once: it cannot be spent meanwhile
    done, undone = await withdrawals.send(pool, gateway, withdrawal)
    assert (done.status, done.refunded_cents, undone) == ("done", 3_500, [])
    refunds = sorted((r["payment_intent"], r["amount"]) for r in fake.refunds.values())
    assert refunds == sorted([(f"pi_{client[:8]}_2", 1_000), (f"pi_{client[:8]}_1", 2_500)])
    assert {r["idempotency"] for r in fake.requests} == {f"withdrawal-part:{p['id']}" for p in done.parts}


async def test_the_same_request_id_is_the_same_withdrawal(pool: asyncpg.Pool, fake_and_gateway) -> None:
    fake, gateway = fake_and_gateway
    client = await make_user(pool)
    await paid_in(pool, client, 5_000)
    results = await asyncio.gather(*(withdraw(pool, client, 2_000) for _ in range(5)))
    assert len({w.id for w in results}) == 1
    assert await ledger.balance(pool, client) == 3_000
    with pytest.raises(IdempotencyConflict):
        await withdraw(pool, client, 2_500)
    for w in results:
        await withdrawals.send(pool, gateway, w)
    assert len(fake.refunds) == 1


async def test_a_refused_refund_puts_the_money_back_in_the_wallet(pool: asyncpg.Pool, fake_and_gateway) -> None:
    fake, gateway = fake_and_gateway
    client = await make_user(pool)
    await paid_in(pool, client, 5_000)
    withdrawal = await withdraw(pool, client, 2_000)
    fake.refuse = 400
    done, undone = await withdrawals.send(pool, gateway, withdrawal)
    assert done.status == "failed" and [t.kind for t in undone] == ["withdrawal_failed"]
    assert await ledger.balance(pool, client) == 5_000
    again = await withdraw(pool, client, 5_000, request_id="w2")  # the whole deposit is refundable again
    assert (await withdrawals.send(pool, gateway, again))[0].status == "done"


async def test_an_unanswered_refund_stays_pending_and_the_retry_finishes_it(pool: asyncpg.Pool,
                                                                           fake_and_gateway) -> None:
    _, gateway = fake_and_gateway
    client = await make_user(pool)
    await paid_in(pool, client, 5_000)
    withdrawal = await withdraw(pool, client, 2_000)
    dead = StripeGateway(secret_key="sk_test_x", webhook_secret=None, api_base="http://127.0.0.1:9",
                         public_url="http://127.0.0.1:8080")
    try:
        assert (await withdrawals.send(pool, dead, withdrawal))[0].status == "pending"
    finally:
        await dead.close()
    retry = await withdraw(pool, client, 2_000)  # the client's retry: same requestId, same withdrawal
    assert retry.id == withdrawal.id
    assert (await withdrawals.send(pool, gateway, retry))[0].status == "done"
    assert await ledger.balance(pool, client) == 3_000


@pytest.mark.parametrize(("cents", "code"), [(499, "below_minimum"), (5_001, "insufficient_funds")])
async def test_a_withdrawal_outside_the_limits_is_refused(pool: asyncpg.Pool, cents: int, code: str) -> None:
    client = await make_user(pool)
    await paid_in(pool, client, 5_000)
    with pytest.raises(WithdrawalRefused) as refused:
        await withdraw(pool, client, cents)
    assert refused.value.code == code
    assert await ledger.balance(pool, client) == 5_000


async def test_money_an_operator_credited_cannot_go_to_a_card(pool: asyncpg.Pool) -> None:
    client = await make_user(pool)
    await paid_in(pool, client, 1_000)
    await ledger.deposit(pool, client_id=client, cents=4_000, key="manual:1", source="manual", operator="ops")
    with pytest.raises(WithdrawalRefused) as refused:
        await withdraw(pool, client, 1_500)
    assert refused.value.code == "not_refundable"


async def test_spent_money_is_not_withdrawn(pool: asyncpg.Pool) -> None:
    client, reader = await make_pair(pool)
    await paid_in(pool, client, 5_000)
    await ledger.charge(pool, client_id=client, reader_id=reader, cents=4_000, key="m1", kind="message")
    with pytest.raises(WithdrawalRefused) as refused:
        await withdraw(pool, client, 1_001)
    assert refused.value.code == "insufficient_funds"


def dispute(event_id: str, dispute_id: str, payment_intent: str, cents: int, *, event_type: str, status: str,
            fee: int = 1_500) -> dict:
    return {"id": event_id, "type": event_type, "data": {"object": {
        "id": dispute_id, "object": "dispute", "payment_intent": payment_intent, "amount": cents, "status": status,
        "reason": "fraudulent", "balance_transactions": [{"fee": fee}]}}}


async def test_an_open_dispute_blocks_withdrawals_until_it_is_closed(pool: asyncpg.Pool) -> None:
    client = await make_user(pool)
    await paid_in(pool, client, 5_000, 3_000)
    pi = f"pi_{client[:8]}_0"
    await stripe_events.handle_event(pool, dispute("evt_1", "dp_1", pi, 5_000, event_type="charge.dispute.created",
                                                   status="needs_response"))
    with pytest.raises(WithdrawalRefused) as refused:
        await withdraw(pool, client, 1_000)
    assert refused.value.code == "dispute_open"
    await stripe_events.handle_event(pool, dispute("evt_2", "dp_1", pi, 5_000, event_type="charge.dispute.closed",
                                                   status="won"))
    assert (await withdraw(pool, client, 1_000)).status == "pending"


async def test_the_refund_webhook_of_a_withdrawal_takes_nothing_more(pool: asyncpg.Pool, fake_and_gateway) -> None:
    _, gateway = fake_and_gateway
    client = await make_user(pool)
    await paid_in(pool, client, 5_000)
    withdrawal = await withdraw(pool, client, 2_000)
    await withdrawals.send(pool, gateway, withdrawal)
    event = {"id": "evt_r", "type": "charge.refunded", "data": {"object": {
        "id": "ch_1", "object": "charge", "payment_intent": f"pi_{client[:8]}_0", "amount_refunded": 2_000}}}
    assert await stripe_events.handle_event(pool, event) == "nothing_to_take"
    assert await ledger.balance(pool, client) == 3_000


async def test_a_refund_that_fails_later_is_undone(pool: asyncpg.Pool, fake_and_gateway) -> None:
    fake, gateway = fake_and_gateway
    client = await make_user(pool)
    await paid_in(pool, client, 5_000)
    withdrawal = await withdraw(pool, client, 2_000)
    await withdrawals.send(pool, gateway, withdrawal)
    [refund_id] = fake.refunds
    event = {"id": "evt_f", "type": "refund.failed", "data": {"object": {
        "id": refund_id, "object": "refund", "status": "failed", "failure_reason": "expired_or_canceled_card"}}}
    assert await stripe_events.handle_event(pool, event) == "withdrawal_undone"
    assert await ledger.balance(pool, client) == 5_000
    assert (await withdrawals.get(pool, withdrawal.id)).status == "partial"  # type: ignore[union-attr]
