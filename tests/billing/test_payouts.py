"""Reader payouts against a real PostgreSQL and the real Stripe client talking to a local fake Stripe:
earnings -> payouts in transit -> paid out, back on a refusal or a reversal, never twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from billing import connect, ledger, payouts, stripe_events
from billing.payout_policy import PayoutRefused
from billing.stripe_gateway import StripeGateway
from tests.billing.connect_fake import FakeConnect
from tests.billing.money_out import gateway_on
from tests.billing.people import make_pair

HOLD = timedelta(days=7)
LATER = timedelta(days=8)


def now() -> datetime:
    return datetime.now(UTC)


async def accounts(pool: asyncpg.Pool, reader: str, fake: FakeConnect, gateway: StripeGateway) -> str:
    account_id = await gateway.create_connect_account(reader_id=reader, email="r@example.test", display_name="R")
    await connect.record(pool, reader_id=reader, stripe_account_id=account_id)
    fake.activate(account_id)
    await connect.set_status(pool, account_id, transfers_status=await gateway.transfers_status(account_id))
    return account_id


async def earned(pool: asyncpg.Pool, client: str, reader: str, cents: int, key: str) -> None:
    await ledger.deposit(pool, client_id=client, cents=cents, key=f"dep:{key}", ref=f"pi_{key}")
    await ledger.charge(pool, client_id=client, reader_id=reader, cents=cents, key=key, kind="gift", ref=key)


async def started_payout(pool: asyncpg.Pool, fake: FakeConnect, gateway: StripeGateway,
                         trigger: str) -> tuple[str, str, payouts.Payout]:
    """A client, a connected reader who earned $70.00 of their $100.00 gift (key ``g1``), and a payout of it
    started (not sent yet)."""
    client, reader = await make_pair(pool)
    await accounts(pool, reader, fake, gateway)
    await earned(pool, client, reader, 10_000, "g1")
    payout, _ = await payouts.start(pool, reader, trigger=trigger, hold=HOLD, minimum_cents=0, now=now() + LATER)
    return client, reader, payout


async def balances(pool: asyncpg.Pool, reader: str) -> dict[str, int]:
    rows = await pool.fetch("SELECT account, balance_cents FROM ledger_accounts WHERE owner_id = $1", reader)
    return {r["account"]: r["balance_cents"] for r in rows}


@pytest.fixture
async def fake_and_gateway() -> tuple[FakeConnect, StripeGateway]:
    fake = FakeConnect()
    async with gateway_on(fake) as gateway:
        yield fake, gateway  # type: ignore[misc]


async def test_earnings_are_payable_only_after_the_hold_period(pool: asyncpg.Pool) -> None:
    client, reader = await make_pair(pool)
    await earned(pool, client, reader, 10_000, "g1")  # the reader earns 7000
    assert await payouts.payable(pool, reader, hold=HOLD, now=now()) == 0
    assert await payouts.payable(pool, reader, hold=HOLD, now=now() + LATER) == 7_000


async def test_a_refund_within_the_hold_period_reduces_what_becomes_payable(pool: asyncpg.Pool) -> None:
    client, reader = await make_pair(pool)
    await earned(pool, client, reader, 10_000, "g1")
    await ledger.refund_charge(pool, original_key="g1", cents=4_000, key="g1:back")
    assert await payouts.payable(pool, reader, hold=HOLD, now=now() + LATER) == 7_000 - 2_800


async def test_a_payout_moves_earnings_to_in_transit_then_paid_out(pool: asyncpg.Pool, fake_and_gateway) -> None:
    fake, gateway = fake_and_gateway
    client, reader = await make_pair(pool)
    account_id = await accounts(pool, reader, fake, gateway)
    await earned(pool, client, reader, 10_000, "g1")
    payout, txn = await payouts.start(pool, reader, trigger="on_demand", hold=HOLD, minimum_cents=5_000,
                                      now=now() + LATER)
    assert (payout.cents, payout.status, txn.kind) == (7_000, "in_transit", "payout")
    assert await balances(pool, reader) == {"earnings": 0, "payouts_in_transit": 7_000}
    payout, paid = await payouts.send(pool, gateway, payout)
    assert payout.status == "paid" and paid is not None
    assert await balances(pool, reader) == {"earnings": 0, "payouts_in_transit": 0, "paid_out": 7_000}
    [transfer] = fake.transfers.values()
    assert (transfer["amount"], transfer["destination"]) == (7_000, account_id)
    assert fake.requests[-1]["idempotency"] == f"payout:{payout.id}"


async def test_a_refused_transfer_puts_the_earnings_back(pool: asyncpg.Pool, fake_and_gateway) -> None:
    fake, gateway = fake_and_gateway
    _, reader, payout = await started_payout(pool, fake, gateway, "on_demand")
    fake.refuse = 400
    payout, failed = await payouts.send(pool, gateway, payout)
    assert payout.status == "failed" and failed is not None and "refused" in (payout.failure or "")
    assert (await balances(pool, reader))["earnings"] == 7_000
    assert await payouts.payable(pool, reader, hold=HOLD, now=now() + LATER) == 7_000


async def test_a_lost_answer_is_resolved_by_asking_again_with_the_same_key(pool: asyncpg.Pool,
                                                                           fake_and_gateway) -> None:
    fake, gateway = fake_and_gateway
    *_, payout = await started_payout(pool, fake, gateway, "scheduled")
    fake.lose_answer = True
    fake.unavailable = 0
    # The library retries once on a 500 with the same key and gets the first answer: one transfer.
    payout, _ = await payouts.send(pool, gateway, payout)
    assert payout.status == "paid"
    assert len(fake.transfers) == 1
    [pending] = [p for p in await payouts.in_transit(pool, older_than=now() + LATER)] or [None]
    assert pending is None


async def test_an_unanswered_transfer_stays_in_transit_until_asked_again(pool: asyncpg.Pool,
                                                                         fake_and_gateway) -> None:
    fake, gateway = fake_and_gateway
    _, reader, payout = await started_payout(pool, fake, gateway, "scheduled")
    dead = StripeGateway(secret_key="sk_test_x", webhook_secret=None, api_base="http://127.0.0.1:9",
                         public_url="http://127.0.0.1:8080")
    try:
        payout, txn = await payouts.send(pool, dead, payout)
    finally:
        await dead.close()
    assert (payout.status, txn) == ("in_transit", None)
    [again] = await payouts.in_transit(pool, older_than=now() + timedelta(seconds=1))
    payout, _ = await payouts.send(pool, gateway, again)
    assert payout.status == "paid"
    assert (await balances(pool, reader))["paid_out"] == 7_000


async def test_a_second_payout_while_one_is_in_transit_is_refused(pool: asyncpg.Pool, fake_and_gateway) -> None:
    fake, gateway = fake_and_gateway
    client, reader = await make_pair(pool)
    await accounts(pool, reader, fake, gateway)
    await earned(pool, client, reader, 10_000, "g1")
    results = await asyncio.gather(*(payouts.start(pool, reader, trigger="on_demand", hold=HOLD, minimum_cents=0,
                                                   now=now() + LATER) for _ in range(4)), return_exceptions=True)
    started = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, PayoutRefused)]
    assert len(started) == 1 and len(refused) == 3
    assert {r.code for r in refused} <= {"payout_in_transit", "nothing_payable"}


async def test_no_payout_without_a_ready_account_or_below_the_minimum(pool: asyncpg.Pool, fake_and_gateway) -> None:
    fake, gateway = fake_and_gateway
    client, reader = await make_pair(pool)
    await earned(pool, client, reader, 10_000, "g1")
    with pytest.raises(PayoutRefused) as refused:
        await payouts.start(pool, reader, trigger="on_demand", hold=HOLD, minimum_cents=0, now=now() + LATER)
    assert refused.value.code == "not_connected"
    account_id = await gateway.create_connect_account(reader_id=reader, email="r@example.test", display_name="R")
    await connect.record(pool, reader_id=reader, stripe_account_id=account_id)
    with pytest.raises(PayoutRefused) as refused:
        await payouts.start(pool, reader, trigger="on_demand", hold=HOLD, minimum_cents=0, now=now() + LATER)
    assert refused.value.code == "account_not_ready"
    fake.activate(account_id)
    await connect.set_status(pool, account_id, transfers_status=await gateway.transfers_status(account_id))
    with pytest.raises(PayoutRefused) as refused:
        await payouts.start(pool, reader, trigger="on_demand", hold=HOLD, minimum_cents=7_001, now=now() + LATER)
    assert refused.value.code == "below_minimum"


def transfer_event(event_id: str, event_type: str, transfer_id: str, payout_id: str, reversed_cents: int = 0) -> dict:
    return {"id": event_id, "type": event_type, "data": {"object": {
        "id": transfer_id, "object": "transfer", "amount_reversed": reversed_cents,
        "metadata": {"payout_id": payout_id}}}}


async def test_a_reversed_transfer_moves_the_reversed_part_back_to_earnings_once(pool: asyncpg.Pool,
                                                                                fake_and_gateway) -> None:
    fake, gateway = fake_and_gateway
    _, reader, payout = await started_payout(pool, fake, gateway, "on_demand")
    payout, _ = await payouts.send(pool, gateway, payout)
    assert payout.stripe_transfer_id is not None
    outcome = await stripe_events.handle_event(
        pool, transfer_event("evt_r1", "transfer.reversed", payout.stripe_transfer_id, payout.id, 3_000))
    assert outcome == "payout_reversed"
    again = await stripe_events.handle_event(
        pool, transfer_event("evt_r2", "transfer.reversed", payout.stripe_transfer_id, payout.id, 3_000))
    assert again == "nothing_reversed"
    more = await stripe_events.handle_event(
        pool, transfer_event("evt_r3", "transfer.reversed", payout.stripe_transfer_id, payout.id, 9_999))
    assert more == "payout_reversed"
    assert await balances(pool, reader) == {"earnings": 7_000, "payouts_in_transit": 0, "paid_out": 0}


async def test_the_transfer_created_webhook_confirms_a_payout_whose_answer_was_lost(pool: asyncpg.Pool,
                                                                                   fake_and_gateway) -> None:
    fake, gateway = fake_and_gateway
    *_, payout = await started_payout(pool, fake, gateway, "on_demand")
    event = transfer_event("evt_c1", "transfer.created", "tr_from_webhook", payout.id)
    assert await stripe_events.handle_event(pool, event) == "payout_paid"
    assert (await payouts.get(pool, payout.id)).status == "paid"  # type: ignore[union-attr]
    payout, txn = await payouts.send(pool, gateway, (await payouts.get(pool, payout.id)))  # type: ignore[arg-type]
    assert txn is None and fake.transfers == {}  # already paid: Stripe is not asked again


async def test_a_late_refund_after_a_payout_leaves_earnings_negative_and_nothing_payable(
        pool: asyncpg.Pool, fake_and_gateway) -> None:
    fake, gateway = fake_and_gateway
    client, reader, payout = await started_payout(pool, fake, gateway, "on_demand")
    await payouts.send(pool, gateway, payout)
    await ledger.refund_charge(pool, original_key="g1", cents=10_000, key="g1:goodwill")
    assert (await balances(pool, reader))["earnings"] == -7_000
    assert await payouts.payable(pool, reader, hold=HOLD, now=now() + LATER * 2) == 0
    await earned(pool, client, reader, 20_000, "g2")  # 14000 more: 7000 pay the debt first
    assert await payouts.payable(pool, reader, hold=HOLD, now=now() + LATER) == 7_000


async def test_the_schedule_picks_readers_with_earnings_and_no_recent_scheduled_payout(
        pool: asyncpg.Pool, fake_and_gateway) -> None:
    fake, gateway = fake_and_gateway
    client, reader = await make_pair(pool)
    await accounts(pool, reader, fake, gateway)
    assert await payouts.due_readers(pool, interval=HOLD, now=now()) == []
    await earned(pool, client, reader, 10_000, "g1")
    assert await payouts.due_readers(pool, interval=HOLD, now=now()) == [reader]
    payout, _ = await payouts.start(pool, reader, trigger="scheduled", hold=HOLD, minimum_cents=0, now=now() + LATER)
    await payouts.send(pool, gateway, payout)
    await earned(pool, client, reader, 10_000, "g2")
    assert await payouts.due_readers(pool, interval=HOLD, now=now()) == []
    assert await payouts.due_readers(pool, interval=HOLD, now=now() + LATER) == [reader]
