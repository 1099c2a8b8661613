"""Stripe webhooks over HTTP: only verified events move money, each exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from billing import ledger
from billing.stripe_events import record_checkout
from config import Settings
from tests.api.helpers import bearer_user
from tests.billing.people import make_user
from tests.stripe_fake import SECRET_KEY, WEBHOOK_SECRET, FakeStripe, checkout_completed, signed

URL = "/api/webrtc/webhook"


@pytest.fixture
async def app_client(settings: Settings) -> AsyncIterator[TestClient]:
    configured = replace(settings, stripe_webhook_secret=WEBHOOK_SECRET)
    async with TestClient(TestServer(create_app(configured), host="127.0.0.1")) as test_client:
        yield test_client


async def deliver(client: TestClient, event: dict[str, Any], **sign: Any) -> tuple[int, dict]:
    body, header = signed(event, **sign)
    resp = await client.post(URL, data=body, headers={"Stripe-Signature": header,
                                                      "Content-Type": "application/json"})
    return resp.status, await resp.json()


async def a_client(pool: asyncpg.Pool) -> str:
    """A client account (made directly: a webhook needs no login, and password hashing is slow on purpose)."""
    return await make_user(pool, "client")


async def opened(pool: asyncpg.Pool, checkout_id: str, client_id: str, cents: int) -> None:
    """The Checkout Session as add-funds records it when it creates one (the add-funds tests go through it)."""
    await record_checkout(pool, checkout_id=checkout_id, client_id=client_id, amount_cents=cents)


async def paid(client: TestClient, pool: asyncpg.Pool, event_id: str, checkout_id: str, client_id: str, cents: int,
               **kw: Any) -> tuple[int, dict]:
    """A checkout the client opened for ``cents``, and Stripe saying it was paid."""
    await opened(pool, checkout_id, client_id, cents)
    return await deliver(client, checkout_completed(event_id, checkout_id, client_id, cents, **kw))


async def metric(client: TestClient, series: str) -> float:
    """The value of one series on /metrics (0 when absent)."""
    for line in (await (await client.get("/metrics")).text()).splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


async def test_a_paid_checkout_credits_the_wallet_once(app_client: TestClient, pool: asyncpg.Pool) -> None:
    client_id = await a_client(pool)
    await opened(pool, "cs_1", client_id, 2500)
    event = checkout_completed("evt_1", "cs_1", client_id, 2500)
    assert await deliver(app_client, event) == (200, {"received": True, "outcome": "credited"})
    # Stripe redelivers the same event: ignored.
    assert (await deliver(app_client, event))[1]["outcome"] == "duplicate"
    # The other event of the same checkout (async success) does not credit it again.
    other = checkout_completed("evt_2", "cs_1", client_id, 2500, event_type="checkout.session.async_payment_succeeded")
    assert (await deliver(app_client, other))[1]["outcome"] == "already_credited"
    assert await ledger.balance(pool, client_id) == 2500
    assert await pool.fetchval("SELECT ref FROM ledger_transactions WHERE key = 'stripe:checkout:cs_1'") == "pi_1"


async def test_concurrent_deliveries_of_one_event_credit_once(app_client: TestClient, pool: asyncpg.Pool) -> None:
    client_id = await a_client(pool)
    await opened(pool, "cs_1", client_id, 1000)
    event = checkout_completed("evt_1", "cs_1", client_id, 1000)
    results = await asyncio.gather(*(deliver(app_client, event) for _ in range(6)))
    assert sorted(r[1]["outcome"] for r in results) == ["credited"] + ["duplicate"] * 5
    assert await ledger.balance(pool, client_id) == 1000


async def test_an_unpaid_checkout_waits_for_its_async_payment(app_client: TestClient, pool: asyncpg.Pool) -> None:
    client_id = await a_client(pool)
    await opened(pool, "cs_1", client_id, 1000)
    pending = checkout_completed("evt_1", "cs_1", client_id, 1000, paid=False)
    assert (await deliver(app_client, pending))[1]["outcome"] == "not_paid"
    assert await ledger.balance(pool, client_id) == 0
    succeeded = checkout_completed("evt_2", "cs_1", client_id, 1000,
                                   event_type="checkout.session.async_payment_succeeded")
    assert (await deliver(app_client, succeeded))[1]["outcome"] == "credited"
    assert await ledger.balance(pool, client_id) == 1000


@pytest.mark.parametrize("tamper", ["wrong_secret", "stale", "future", "no_header", "body_changed", "garbage"])
async def test_unverifiable_webhooks_are_rejected_and_credit_nothing(app_client: TestClient, pool: asyncpg.Pool,
                                                                     tamper: str) -> None:
    client_id = await a_client(pool)
    await opened(pool, "cs_1", client_id, 5000)
    event = checkout_completed("evt_1", "cs_1", client_id, 5000)
    body, header = signed(event, secret="whsec_someone_else" if tamper == "wrong_secret" else WEBHOOK_SECRET,
                          at=time.time() - 301 if tamper == "stale" else time.time() + 400 if tamper == "future"
                          else None)
    headers = {"Content-Type": "application/json"}
    if tamper != "no_header":
        headers["Stripe-Signature"] = "t=oops,v1=zz" if tamper == "garbage" else header
    if tamper == "body_changed":
        body = body.replace(b"5000", b"9000")
    resp = await app_client.post(URL, data=body, headers=headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_signature"
    assert await ledger.balance(pool, client_id) == 0
    assert await pool.fetchval("SELECT count(*) FROM stripe_events") == 0


async def test_a_signed_event_that_is_not_an_event_is_refused(app_client: TestClient) -> None:
    body, header = signed({"hello": "world"})  # type: ignore[arg-type]
    resp = await app_client.post(URL, data=body, headers={"Stripe-Signature": header})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "malformed_event"


async def test_webhooks_without_a_signing_secret_are_unavailable(client: TestClient) -> None:
    body, header = signed(checkout_completed("evt_1", "cs_1", "00000000-0000-0000-0000-000000000000", 100))
    resp = await client.post(URL, data=body, headers={"Stripe-Signature": header})
    assert resp.status == 503


async def test_a_paid_checkout_for_another_amount_than_we_created_credits_nothing(
        settings: Settings, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeStripe()
    async with fake.running() as stripe_url, TestClient(TestServer(create_app(replace(
            settings, stripe_secret_key=SECRET_KEY, stripe_webhook_secret=WEBHOOK_SECRET, stripe_api_base=stripe_url)),
            host="127.0.0.1")) as http:
        user, headers = await bearer_user(http, "client")
        resp = await http.post("/api/webrtc/client/add-funds", json={"amountCents": 500}, headers=headers)
        checkout_id = (await resp.json())["checkoutId"]
        # The payment Stripe reports is not the checkout SoulSeer opened.
        assert await deliver(http, checkout_completed("evt_1", checkout_id, user["id"], 45_000)) == (
            200, {"received": True, "outcome": "amount_mismatch"})
        assert await ledger.balance(pool, user["id"]) == 0
        assert await metric(http, 'soulseer_billing_checkouts_refused_total{reason="amount_mismatch"}') == 1
        assert await metric(http, 'soulseer_billing_deposits_cents_total{source="stripe"}') == 0
        # The checkout as created is still credited when its payment comes.
        assert (await deliver(http, checkout_completed("evt_2", checkout_id, user["id"], 500)))[1]["outcome"] == (
            "credited")
        assert await ledger.balance(pool, user["id"]) == 500
    refused = [r for r in caplog.records if r.levelname == "ERROR" and getattr(r, "reason", None)]
    assert [(r.reason, r.checkoutId, r.expectedCents) for r in refused] == [  # type: ignore[attr-defined]
        ("amount_mismatch", checkout_id, 500)]


async def test_a_paid_checkout_we_never_created_credits_nothing(app_client: TestClient, pool: asyncpg.Pool,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    client_id = await a_client(pool)
    assert await deliver(app_client, checkout_completed("evt_1", "cs_unknown", client_id, 300)) == (
        200, {"received": True, "outcome": "unknown_checkout"})
    assert await ledger.balance(pool, client_id) == 0
    assert await metric(app_client, 'soulseer_billing_checkouts_refused_total{reason="unknown_checkout"}') == 1
    assert any(r.levelname == "ERROR" and getattr(r, "checkoutId", None) == "cs_unknown" for r in caplog.records)


async def test_a_checkout_is_credited_only_to_the_client_who_opened_it(app_client: TestClient,
                                                                       pool: asyncpg.Pool) -> None:
    opener, other, reader = await a_client(pool), await a_client(pool), await make_user(pool, "reader")
    await opened(pool, "cs_1", opener, 1000)
    for n, who in enumerate([other, reader, "00000000-0000-0000-0000-000000000000", "not-a-uuid"]):
        assert (await deliver(app_client, checkout_completed(f"evt_{n}", "cs_1", who, 1000)))[1] == {
            "received": True, "outcome": "client_mismatch"}
    assert await pool.fetchval("SELECT count(*) FROM ledger_transactions") == 0
    assert await metric(app_client, 'soulseer_billing_checkouts_refused_total{reason="client_mismatch"}') == 4
    # Without a client in the event, the checkout's own client is the one credited.
    event = checkout_completed("evt_9", "cs_1", opener, 1000)
    del event["data"]["object"]["client_reference_id"], event["data"]["object"]["metadata"]
    assert (await deliver(app_client, event))[1]["outcome"] == "credited"
    assert await ledger.balance(pool, opener) == 1000


async def test_unknown_event_types_are_acknowledged_and_ignored(app_client: TestClient) -> None:
    event = {"id": "evt_x", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}
    assert await deliver(app_client, event) == (200, {"received": True, "outcome": "ignored"})


async def test_card_refunds_take_back_what_was_refunded_once(app_client: TestClient, pool: asyncpg.Pool) -> None:
    client_id = await a_client(pool)
    await paid(app_client, pool, "evt_1", "cs_1", client_id, 3000, payment_intent="pi_9")

    def refunded(event_id: str, cumulative: int) -> dict:
        return {"id": event_id, "type": "charge.refunded", "data": {"object": {
            "id": "ch_9", "object": "charge", "payment_intent": "pi_9", "amount": 3000,
            "amount_refunded": cumulative}}}

    assert (await deliver(app_client, refunded("evt_2", 1000)))[1]["outcome"] == "withdrawn"
    assert await ledger.balance(pool, client_id) == 2000
    assert (await deliver(app_client, refunded("evt_3", 2500)))[1]["outcome"] == "withdrawn"  # 1500 more
    assert await ledger.balance(pool, client_id) == 500
    # An older event arriving late changes nothing: 1000 was already taken back.
    assert (await deliver(app_client, refunded("evt_4", 1000)))[1]["outcome"] == "nothing_to_take"
    assert await ledger.balance(pool, client_id) == 500
    unknown = refunded("evt_5", 100)
    unknown["data"]["object"]["payment_intent"] = "pi_unknown"
    assert (await deliver(app_client, unknown))[1]["outcome"] == "unmatched"


async def test_a_dispute_withdraws_the_money_and_winning_it_puts_it_back(app_client: TestClient,
                                                                         pool: asyncpg.Pool) -> None:
    client_id = await a_client(pool)
    reader = await make_user(pool, "reader")
    await paid(app_client, pool, "evt_1", "cs_1", client_id, 2000, payment_intent="pi_7")
    await ledger.charge(pool, client_id=client_id, reader_id=reader, cents=1500, key="spent", kind="gift")
    dispute = {"id": "evt_2", "type": "charge.dispute.created", "data": {"object": {
        "id": "dp_7", "object": "dispute", "charge": "ch_7", "payment_intent": "pi_7", "amount": 2000,
        "reason": "fraudulent", "status": "needs_response"}}}
    assert (await deliver(app_client, dispute))[1]["outcome"] == "withdrawn_with_loss"
    assert await ledger.balance(pool, client_id) == 0
    assert await pool.fetchval("SELECT loss_cents FROM ledger_transactions WHERE key = 'stripe:dispute:dp_7'") == 1500
    won = {"id": "evt_3", "type": "charge.dispute.closed", "data": {"object": {
        "id": "dp_7", "object": "dispute", "status": "won", "payment_intent": "pi_7", "amount": 2000}}}
    assert (await deliver(app_client, won))[1]["outcome"] == "reinstated"
    reinstated = {"id": "evt_4", "type": "charge.dispute.funds_reinstated", "data": {"object": {"id": "dp_7"}}}
    assert (await deliver(app_client, reinstated))[1]["outcome"] == "already_reinstated"
    assert await ledger.balance(pool, client_id) == 500


async def test_a_lost_dispute_keeps_the_money_withdrawn(app_client: TestClient, pool: asyncpg.Pool) -> None:
    client_id = await a_client(pool)
    await paid(app_client, pool, "evt_1", "cs_1", client_id, 2000, payment_intent="pi_8")
    created = {"id": "evt_2", "type": "charge.dispute.created", "data": {"object": {
        "id": "dp_8", "payment_intent": "pi_8", "amount": 2000}}}
    lost = {"id": "evt_3", "type": "charge.dispute.closed", "data": {"object": {"id": "dp_8", "status": "lost"}}}
    assert (await deliver(app_client, created))[1]["outcome"] == "withdrawn"
    assert (await deliver(app_client, lost))[1]["outcome"] == "dispute_lost"
    assert await ledger.balance(pool, client_id) == 0


async def test_webhook_outcomes_are_counted_in_metrics(app_client: TestClient, pool: asyncpg.Pool) -> None:
    client_id = await a_client(pool)
    await paid(app_client, pool, "evt_1", "cs_1", client_id, 700)
    await deliver(app_client, checkout_completed("evt_1", "cs_1", client_id, 700))
    text = await (await app_client.get("/metrics")).text()
    assert 'soulseer_billing_webhook_events_total{result="credited",type="checkout.session.completed"} 1.0' in text
    assert 'soulseer_billing_webhook_events_total{result="duplicate",type="checkout.session.completed"} 1.0' in text
    assert 'soulseer_billing_deposits_cents_total{source="stripe"} 700.0' in text


def refunded(event_id: str, payment_intent: str, cumulative: int) -> dict:
    return {"id": event_id, "type": "charge.refunded", "data": {"object": {
        "id": f"ch_{payment_intent}", "object": "charge", "payment_intent": payment_intent,
        "amount_refunded": cumulative}}}


def dispute(event_id: str, dispute_id: str, payment_intent: str, cents: int, *, status: str = "needs_response",
            event_type: str = "charge.dispute.created") -> dict:
    return {"id": event_id, "type": event_type, "data": {"object": {
        "id": dispute_id, "object": "dispute", "payment_intent": payment_intent, "amount": cents,
        "status": status, "reason": "fraudulent"}}}


async def test_a_refund_after_a_dispute_of_the_same_charge_takes_the_deposit_back_once(
        app_client: TestClient, pool: asyncpg.Pool) -> None:
    client_id = await a_client(pool)
    await paid(app_client, pool, "evt_1", "cs_1", client_id, 2000, payment_intent="pi_1")
    assert (await deliver(app_client, dispute("evt_2", "dp_1", "pi_1", 2000)))[1]["outcome"] == "withdrawn"
    # Stripe refunds the disputed charge too: the dispute already holds that money.
    assert (await deliver(app_client, refunded("evt_3", "pi_1", 2000)))[1]["outcome"] == "nothing_to_take"
    taken = await pool.fetchval("SELECT sum(amount_cents) FROM ledger_transactions"
                                " WHERE kind IN ('stripe_refund', 'dispute')")
    assert taken == 2000
    assert await pool.fetchval("SELECT balance_cents FROM ledger_accounts WHERE account = 'loss'") is None


async def test_a_partly_disputed_charge_refunded_in_full_takes_back_only_the_rest(
        app_client: TestClient, pool: asyncpg.Pool) -> None:
    client_id = await a_client(pool)
    await paid(app_client, pool, "evt_1", "cs_1", client_id, 2000, payment_intent="pi_1")
    await deliver(app_client, dispute("evt_2", "dp_1", "pi_1", 500))
    assert (await deliver(app_client, refunded("evt_3", "pi_1", 2000)))[1]["outcome"] == "withdrawn"
    assert await ledger.balance(pool, client_id) == 0
    assert await pool.fetchval("SELECT amount_cents FROM ledger_transactions WHERE kind = 'stripe_refund'") == 1500


async def test_a_won_dispute_takes_back_the_refund_its_hold_was_covering(app_client: TestClient,
                                                                        pool: asyncpg.Pool) -> None:
    client_id = await a_client(pool)
    await paid(app_client, pool, "evt_1", "cs_1", client_id, 2000, payment_intent="pi_1")
    await deliver(app_client, dispute("evt_2", "dp_1", "pi_1", 2000))
    await deliver(app_client, refunded("evt_3", "pi_1", 800))
    assert await ledger.balance(pool, client_id) == 0
    # The dispute is won (the funds come back to the platform), but the card refund of 800 stands.
    won = dispute("evt_4", "dp_1", "pi_1", 2000, status="won", event_type="charge.dispute.closed")
    assert (await deliver(app_client, won))[1]["outcome"] == "reinstated"
    assert await ledger.balance(pool, client_id) == 1200
    again = dispute("evt_5", "dp_1", "pi_1", 2000, event_type="charge.dispute.funds_reinstated")
    assert (await deliver(app_client, again))[1]["outcome"] == "already_reinstated"
    assert await ledger.balance(pool, client_id) == 1200


async def test_a_dispute_reported_ten_times_is_held_and_counted_once(app_client: TestClient,
                                                                     pool: asyncpg.Pool) -> None:
    client_id = await a_client(pool)
    await paid(app_client, pool, "evt_0", "cs_1", client_id, 900, payment_intent="pi_1")
    # Ten deliveries of one dispute as separate events (created, then Stripe's updates of the same dispute).
    outcomes = [(await deliver(app_client, dispute(f"evt_{n}", "dp_1", "pi_1", 900)))[1]["outcome"]
                for n in range(1, 11)]
    assert outcomes == ["withdrawn"] + ["already_withdrawn"] * 9
    # And one refund event delivered twice under two ids.
    await deliver(app_client, refunded("evt_r1", "pi_1", 900))
    await deliver(app_client, refunded("evt_r2", "pi_1", 900))
    ledger_cents = await pool.fetchval("SELECT sum(amount_cents) FROM ledger_transactions WHERE kind = 'dispute'")
    assert ledger_cents == 900
    assert await metric(app_client, 'soulseer_billing_refunded_cents_total{kind="dispute"}') == 900
    assert await metric(app_client, 'soulseer_billing_refunds_total{kind="dispute"}') == 1
    assert await metric(app_client, 'soulseer_billing_refunded_cents_total{kind="stripe_refund"}') == 0
