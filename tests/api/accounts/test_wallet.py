"""Wallet endpoints over HTTP: balance, history, reader earnings, and adding funds through Stripe Checkout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from billing import ledger
from config import Settings
from tests.api.helpers import bearer_user
from tests.stripe_fake import SECRET_KEY, FakeStripe, with_stripe


@pytest.fixture
async def paying_client(settings: Settings, fake_stripe: tuple[FakeStripe, str]) -> AsyncIterator[TestClient]:
    """The app with Stripe configured, talking to the fake Stripe."""
    configured = with_stripe(settings, fake_stripe[1])
    async with TestClient(TestServer(create_app(configured), host="127.0.0.1")) as test_client:
        yield test_client


async def test_balance_needs_a_logged_in_client(client: TestClient) -> None:
    assert (await client.get("/api/webrtc/client/balance")).status == 401
    _, reader = await bearer_user(client, "reader")
    resp = await client.get("/api/webrtc/client/balance", headers=reader)
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "wrong_role"
    _, reader_only = await bearer_user(client, "client")
    assert (await client.get("/api/webrtc/reader/earnings", headers=reader_only)).status == 403


async def test_balance_and_history_show_the_wallets_movements(client: TestClient, pool: asyncpg.Pool) -> None:
    user, headers = await bearer_user(client, "client")
    reader, reader_headers = await bearer_user(client, "reader")
    resp = await client.get("/api/webrtc/client/balance", headers=headers)
    assert await resp.json() == {"balanceCents": 0}
    await ledger.deposit(pool, client_id=user["id"], cents=1000, key="d1", ref="pi_1")
    for i in range(3):
        await ledger.charge(pool, client_id=user["id"], reader_id=reader["id"], cents=100, key=f"m{i}",
                            kind="reading_minute", ref="session-1")
    assert await (await client.get("/api/webrtc/client/balance", headers=headers)).json() == {"balanceCents": 700}

    page = await (await client.get("/api/webrtc/client/transactions?limit=2", headers=headers)).json()
    assert [(t["kind"], t["amountCents"]) for t in page["transactions"]] == [
        ("reading_minute", -100), ("reading_minute", -100)]
    rest = await (await client.get(f"/api/webrtc/client/transactions?before={page['nextCursor']}",
                                   headers=headers)).json()
    assert [t["amountCents"] for t in rest["transactions"]] == [-100, 1000] and rest["nextCursor"] is None

    earned = await (await client.get("/api/webrtc/reader/earnings", headers=reader_headers)).json()
    assert earned["earningsCents"] == 210
    assert [t["amountCents"] for t in earned["transactions"]] == [70, 70, 70]
    bad = await client.get("/api/webrtc/client/transactions?limit=0", headers=headers)
    assert bad.status == 422


async def test_add_funds_without_stripe_configured_is_unavailable(client: TestClient) -> None:
    _, headers = await bearer_user(client, "client")
    resp = await client.post("/api/webrtc/client/add-funds", json={"amountCents": 1000}, headers=headers)
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "payments_unavailable"


async def test_add_funds_opens_a_checkout_session_for_the_client(
        paying_client: TestClient, fake_stripe: tuple[FakeStripe, str], pool: asyncpg.Pool) -> None:
    fake, _ = fake_stripe
    user, headers = await bearer_user(paying_client, "client")
    resp = await paying_client.post("/api/webrtc/client/add-funds", json={"amountCents": 2500}, headers=headers)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["checkoutUrl"] == f"{fake.api_base}/c/pay/cs_test_0001"
    [sent] = fake.requests
    form = sent["form"]
    assert sent["authorization"] == f"Bearer {SECRET_KEY}"
    assert (form["mode"], form["client_reference_id"], form["metadata[client_id]"]) == (
        "payment", user["id"], user["id"])
    assert form["line_items[0][price_data][unit_amount]"] == "2500"
    assert form["success_url"].startswith("https://soulseer.test/")
    assert form["cancel_url"].startswith("https://soulseer.test/")
    # Nothing is credited until Stripe says it was paid.
    assert await ledger.balance(pool, user["id"]) == 0
    assert await pool.fetchval("SELECT client_id::text FROM stripe_checkouts WHERE id = 'cs_test_0001'") == user["id"]


@pytest.mark.parametrize("amount", [499, 50_001, 10.5, "1000", None, True])
async def test_add_funds_refuses_amounts_outside_the_configured_range(paying_client: TestClient,
                                                                      amount: object) -> None:
    _, headers = await bearer_user(paying_client, "client")
    resp = await paying_client.post("/api/webrtc/client/add-funds", json={"amountCents": amount}, headers=headers)
    assert resp.status == 422
    assert (await resp.json())["error"]["field"] == "amountCents"


async def test_add_funds_when_stripe_fails_says_so_and_records_nothing(
        paying_client: TestClient, fake_stripe: tuple[FakeStripe, str], pool: asyncpg.Pool) -> None:
    fake, _ = fake_stripe
    fake.fail_with = 500
    _, headers = await bearer_user(paying_client, "client")
    resp = await paying_client.post("/api/webrtc/client/add-funds", json={"amountCents": 1000}, headers=headers)
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "payments_unavailable"
    assert await pool.fetchval("SELECT count(*) FROM stripe_checkouts") == 0


async def test_add_funds_needs_the_csrf_token_with_a_cookie(client: TestClient) -> None:
    from tests.api.helpers import login, register

    user = await register(client, "client")
    await login(client, user["email"])
    resp = await client.post("/api/webrtc/client/add-funds", json={"amountCents": 1000})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "csrf_failed"


async def test_add_funds_is_rate_limited_per_client_even_when_the_calls_come_at_once(
        paying_client: TestClient, settings: Settings, pool: asyncpg.Pool) -> None:
    _, headers = await bearer_user(paying_client, "client")
    _, other = await bearer_user(paying_client, "client")
    responses = await asyncio.gather(*(paying_client.post("/api/webrtc/client/add-funds", json={"amountCents": 1000},
                                                          headers=headers) for _ in range(20)))
    statuses = sorted(r.status for r in responses)
    limit = settings.add_funds_rate_limit
    assert statuses == [200] * limit + [429] * (20 - limit)
    refused = next(r for r in responses if r.status == 429)
    assert (await refused.json())["error"]["code"] == "rate_limited" and "Retry-After" in refused.headers
    assert await pool.fetchval("SELECT count(*) FROM stripe_checkouts") == limit
    resp = await paying_client.post("/api/webrtc/client/add-funds", json={"amountCents": 1000}, headers=other)
    assert resp.status == 200, "another client has their own limit"


async def test_add_funds_is_rate_limited_per_address_across_clients(paying_client: TestClient,
                                                                    settings: Settings) -> None:
    per_address = 4 * settings.add_funds_rate_limit
    statuses = []
    for _ in range(per_address // settings.add_funds_rate_limit + 1):
        _, headers = await bearer_user(paying_client, "client")
        for _ in range(settings.add_funds_rate_limit):
            resp = await paying_client.post("/api/webrtc/client/add-funds", json={"amountCents": 1000},
                                            headers=headers)
            statuses.append(resp.status)
    assert statuses.count(200) == per_address and set(statuses[per_address:]) == {429}
