"""Money out over HTTP, with the app's real Stripe client talking to the local fake Stripe: a reader connects a
payout account and is paid, reads the statement and its CSV; a client withdraws to the card; webhooks drive
the rest (signed with the test secret)."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.money import worker
from billing import connect, ledger, payouts
from config import Settings
from tests.api.users import quick_user
from tests.stripe_fake import FakeStripe, signed, with_stripe


@pytest.fixture
async def app_client(settings: Settings, fake_stripe: tuple[FakeStripe, str]) -> AsyncIterator[TestClient]:
    """The app with Stripe configured, payouts payable at once and from $10 on demand."""
    configured = with_stripe(settings, fake_stripe[1], payout_hold_days=0, payout_minimum_cents=1_000)
    async with TestClient(TestServer(create_app(configured), host="127.0.0.1")) as test_client:
        yield test_client


async def deliver(client: TestClient, event: dict) -> dict:
    body, header = signed(event)
    resp = await client.post("/api/webrtc/webhook", data=body, headers={"Stripe-Signature": header,
                                                                        "Content-Type": "application/json"})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def earned(pool: asyncpg.Pool, reader: str, cents: int) -> str:
    client = str(await pool.fetchval("INSERT INTO users (email, password_hash, display_name, role)"
                                     " VALUES ($1, 'x', 'C', 'client') RETURNING id", f"c-{uuid.uuid4().hex}@x.test"))
    await ledger.deposit(pool, client_id=client, cents=cents, key=f"dep:{client}", ref=f"pi_{client}")
    reading = str(uuid.uuid4())
    await ledger.charge(pool, client_id=client, reader_id=reader, cents=cents, key=f"gift:{client}", kind="gift",
                        ref=reading)
    return reading


async def test_a_reader_connects_an_account_and_is_paid_on_demand(app_client: TestClient, pool: asyncpg.Pool,
                                                                  fake_stripe: tuple[FakeStripe, str]) -> None:
    fake = fake_stripe[0].connect
    reader, headers = await quick_user(app_client, "reader")
    first = await (await app_client.post("/api/payouts/account", headers=headers)).json()
    again = await (await app_client.post("/api/payouts/account", headers=headers)).json()
    assert first["onboardingUrl"].startswith("https://connect.stripe.test/setup/acct_")
    assert len(fake.accounts) == 1 and first == again  # one account, a fresh link each time
    [account_id] = fake.accounts
    summary = await (await app_client.get("/api/payouts", headers=headers)).json()
    assert summary["account"]["ready"] is False
    # Stripe says the account changed (a thin event): the app asks Stripe and records what it says.
    fake.activate(account_id)
    thin = {"id": "evt_v2_1", "object": "v2.core.event", "type": "v2.core.account[configuration.recipient]"
            ".capability_status_updated", "related_object": {"id": account_id, "type": "v2.core.account"}}
    assert (await deliver(app_client, thin))["outcome"] == "recorded"
    await earned(pool, reader["id"], 10_000)
    resp = await app_client.post("/api/payouts", headers=headers)
    assert resp.status == 201, await resp.text()
    payout = (await resp.json())["payout"]
    assert (payout["amountCents"], payout["status"]) == (7_000, "paid")
    summary = await (await app_client.get("/api/payouts", headers=headers)).json()
    assert (summary["payableCents"], summary["paidOutCents"], summary["earningsCents"]) == (0, 7_000, 0)
    again = await app_client.post("/api/payouts", headers=headers)
    assert again.status == 409 and (await again.json())["error"]["code"] == "nothing_payable"


async def test_payouts_need_the_reader_role_and_a_ready_account(app_client: TestClient) -> None:
    _, client_headers = await quick_user(app_client, "client")
    assert (await app_client.post("/api/payouts", headers=client_headers)).status == 403
    assert (await app_client.post("/api/payouts")).status == 401
    _, headers = await quick_user(app_client, "reader")
    resp = await app_client.post("/api/payouts", headers=headers)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "not_connected"


async def test_the_statement_has_a_line_per_reading_and_a_csv(app_client: TestClient, pool: asyncpg.Pool) -> None:
    reader, headers = await quick_user(app_client, "reader")
    one = await earned(pool, reader["id"], 1_000)
    two = await earned(pool, reader["id"], 2_000)
    await ledger.refund_charge(pool, original_key=(await pool.fetchval(
        "SELECT key FROM ledger_transactions WHERE ref = $1", two)), cents=500, key="back")
    body = await (await app_client.get("/api/earnings/statement", headers=headers)).json()
    lines = {line["ref"]: line for line in body["lines"]}
    assert (lines[one]["grossCents"], lines[one]["earnedCents"]) == (1_000, 700)
    assert (lines[two]["grossCents"], lines[two]["refundedCents"], lines[two]["earnedCents"]) == (2_000, 500, 1_050)
    resp = await app_client.get("/api/earnings/statement.csv", headers=headers)
    assert resp.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert sorted(int(r["earned_cents"]) for r in rows) == [700, 1_050]
    bad = await app_client.get("/api/earnings/statement?from=yesterday", headers=headers)
    assert bad.status == 400


async def test_a_client_withdraws_to_the_card_idempotently(app_client: TestClient, pool: asyncpg.Pool,
                                                           fake_stripe: tuple[FakeStripe, str]) -> None:
    client, headers = await quick_user(app_client, "client")
    await ledger.deposit(pool, client_id=client["id"], cents=3_000, key="stripe:checkout:a", ref="pi_a")
    await ledger.deposit(pool, client_id=client["id"], cents=2_000, key="stripe:checkout:b", ref="pi_b")
    body = {"amountCents": 2_500, "requestId": "req-1"}
    first = await app_client.post("/api/wallet/withdrawals", headers=headers, json=body)
    assert first.status == 201, await first.text()
    withdrawal = (await first.json())["withdrawal"]
    assert (withdrawal["status"], withdrawal["refundedCents"]) == ("done", 2_500)
    retry = await (await app_client.post("/api/wallet/withdrawals", headers=headers, json=body)).json()
    assert retry["withdrawal"]["id"] == withdrawal["id"]
    assert sorted((r["payment_intent"], r["amount"]) for r in fake_stripe[0].connect.refunds.values()) == [
        ("pi_a", 500), ("pi_b", 2_000)]
    assert await ledger.balance(pool, client["id"]) == 2_500
    too_much = await app_client.post("/api/wallet/withdrawals", headers=headers,
                                     json={"amountCents": 2_501, "requestId": "req-2"})
    assert too_much.status == 402 or (await too_much.json())["error"]["code"] == "insufficient_funds"


async def test_withdrawals_are_refused_while_a_dispute_is_open(app_client: TestClient, pool: asyncpg.Pool) -> None:
    client, headers = await quick_user(app_client, "client")
    await ledger.deposit(pool, client_id=client["id"], cents=3_000, key="stripe:checkout:a", ref="pi_a")
    await ledger.deposit(pool, client_id=client["id"], cents=2_000, key="stripe:checkout:b", ref="pi_b")
    dispute = {"id": "evt_d", "type": "charge.dispute.created", "data": {"object": {
        "id": "dp_1", "object": "dispute", "payment_intent": "pi_a", "amount": 3_000, "status": "needs_response"}}}
    assert (await deliver(app_client, dispute))["outcome"] == "withdrawn"
    resp = await app_client.post("/api/wallet/withdrawals", headers=headers,
                                 json={"amountCents": 1_000, "requestId": "r"})
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "dispute_open"


async def test_the_earnings_page_shows_the_payout_account_and_statement(app_client: TestClient,
                                                                       pool: asyncpg.Pool) -> None:
    reader, headers = await quick_user(app_client, "reader")
    await earned(pool, reader["id"], 1_000)
    resp = await app_client.get("/earnings", headers=headers, allow_redirects=False)
    assert resp.status == 200
    page = await resp.text()
    assert "Set up payouts" in page and "$7.00" in page and "/api/earnings/statement.csv" in page


async def test_the_worker_pays_due_readers_on_schedule_and_finishes_unanswered_payouts(
        app_client: TestClient, pool: asyncpg.Pool, fake_stripe: tuple[FakeStripe, str]) -> None:
    fake = fake_stripe[0].connect
    reader, headers = await quick_user(app_client, "reader")
    await app_client.post("/api/payouts/account", headers=headers)
    [account_id] = fake.accounts
    fake.activate(account_id)
    await connect.set_status(pool, account_id, transfers_status="active")
    await earned(pool, reader["id"], 1_000)  # 700 earned: below the on-demand minimum, paid by the schedule
    await worker.run_once(app_client.app, datetime.now(UTC))
    [scheduled] = await payouts.history(pool, reader["id"])
    assert (scheduled.trigger, scheduled.status, scheduled.cents) == ("scheduled", "paid", 700)
    await worker.run_once(app_client.app, datetime.now(UTC))  # within the interval: nothing more
    assert len(await payouts.history(pool, reader["id"])) == 1
    # A payout whose Transfer answer never came is asked again (same key) once it is a minute old.
    await earned(pool, reader["id"], 2_000)
    fake.unavailable = 2  # the request and the client library's one retry
    resp = await app_client.post("/api/payouts", headers=headers)
    assert resp.status == 201 and (await resp.json())["payout"]["status"] == "in_transit"
    await worker.run_once(app_client.app, datetime.now(UTC) + timedelta(minutes=2))
    statuses = sorted(p.status for p in await payouts.history(pool, reader["id"]))
    assert statuses == ["paid", "paid"] and len(fake.transfers) == 2


async def test_without_stripe_the_earnings_page_says_payouts_are_off_instead_of_offering_a_dead_button(
        client: TestClient) -> None:
    _, reader = await quick_user(client, "reader")
    page = await (await client.get("/earnings", headers=reader)).text()
    assert "Payouts are not switched on for this SoulSeer yet" in page
    assert "Set up payouts" not in page
