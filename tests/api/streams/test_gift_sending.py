"""Sending gifts: one ledger transaction per gift, exactly once per request id, nothing moved on refusal."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from aiohttp.test_utils import TestClient

from api.core.keys import SETTINGS
from billing import ledger
from billing.split import split
from tests.api.users import quick_user


async def live_stream(client: TestClient) -> tuple[dict, dict[str, str], dict]:
    reader, rh = await quick_user(client, "reader", name="Madame Iris")
    resp = await client.post("/api/streams", json={"title": "Tarot live"}, headers=rh)
    return reader, rh, (await resp.json())["stream"]


async def funded_client(client: TestClient, pool: asyncpg.Pool, cents: int,
                        name: str = "Ann") -> tuple[dict, dict[str, str]]:
    user, headers = await quick_user(client, name=name)
    if cents:
        await ledger.deposit(pool, client_id=user["id"], cents=cents, key=f"test-deposit:{user['id']}",
                             source="manual")
    return user, headers


async def gift_by_name(client: TestClient, headers: dict[str, str], name: str) -> dict:
    gifts = (await (await client.get("/api/gifts", headers=headers)).json())["gifts"]
    return next(g for g in gifts if g["name"] == name)


def sending(gift: dict, request_id: str) -> dict:
    """The body of a gift sent at the price the catalogue showed."""
    return {"giftId": gift["id"], "requestId": request_id, "expectedCents": gift["priceCents"]}


async def test_a_gift_debits_the_wallet_and_splits_70_30_to_reader_and_platform(
        client: TestClient, pool: asyncpg.Pool) -> None:
    reader, _, stream = await live_stream(client)
    ann, ch = await funded_client(client, pool, 5000)
    crystal = await gift_by_name(client, ch, "Crystal Ball")
    resp = await client.post(f"/api/streams/{stream['id']}/gifts",
                             json=sending(crystal, "r-1"), headers=ch)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["gift"]["priceCents"] == crystal["priceCents"] and body["gift"]["senderName"] == "Ann"
    assert body["balanceCents"] == 5000 - crystal["priceCents"] == await ledger.balance(pool, ann["id"])
    reader_cents, platform_cents = split(crystal["priceCents"])
    assert await ledger.earnings(pool, reader["id"]) == reader_cents
    assert reader_cents + platform_cents == crystal["priceCents"]
    stored = await pool.fetchrow("SELECT ledger_key, price_cents FROM gift_sends WHERE sender_id = $1", ann["id"])
    assert stored["ledger_key"] == f"gift:{ann['id']}:r-1" and stored["price_cents"] == crystal["priceCents"]


async def test_an_odd_price_splits_with_the_reader_rounded_down_and_nothing_lost(
        client: TestClient, pool: asyncpg.Pool) -> None:
    reader, _, stream = await live_stream(client)
    _, ch = await funded_client(client, pool, 1000)
    # 333 cents: reader 233 (floor of 233.1), platform 100.
    gift_id = await pool.fetchval("INSERT INTO gifts (name, price_cents, icon) VALUES ('Odd', 333, 'star')"
                                  " RETURNING id")
    resp = await client.post(f"/api/streams/{stream['id']}/gifts",
                             json=sending({"id": str(gift_id), "priceCents": 333}, "odd"), headers=ch)
    assert resp.status == 201
    assert await ledger.earnings(pool, reader["id"]) == 233 == split(333)[0]


async def test_a_retry_with_the_same_request_id_returns_the_same_gift_and_charges_once(
        client: TestClient, pool: asyncpg.Pool) -> None:
    reader, _, stream = await live_stream(client)
    ann, ch = await funded_client(client, pool, 5000)
    rose = await gift_by_name(client, ch, "Rose")
    body = sending(rose, "same")
    first = await client.post(f"/api/streams/{stream['id']}/gifts", json=body, headers=ch)
    second = await client.post(f"/api/streams/{stream['id']}/gifts", json=body, headers=ch)
    assert first.status == second.status == 201
    assert (await first.json())["gift"]["id"] == (await second.json())["gift"]["id"]
    assert (await second.json())["replayed"] is True
    assert await ledger.balance(pool, ann["id"]) == 5000 - rose["priceCents"]
    assert await ledger.earnings(pool, reader["id"]) == split(rose["priceCents"])[0]


async def test_concurrent_retries_of_one_request_charge_once(client: TestClient, pool: asyncpg.Pool) -> None:
    _, _, stream = await live_stream(client)
    ann, ch = await funded_client(client, pool, 5000)
    rose = await gift_by_name(client, ch, "Rose")
    body = sending(rose, "racing")
    responses = await asyncio.gather(*(client.post(f"/api/streams/{stream['id']}/gifts", json=body, headers=ch)
                                       for _ in range(5)))
    assert {r.status for r in responses} == {201}
    assert len({(await r.json())["gift"]["id"] for r in responses}) == 1
    assert await ledger.balance(pool, ann["id"]) == 5000 - rose["priceCents"]
    assert await pool.fetchval("SELECT count(*) FROM gift_sends") == 1


async def test_concurrent_retries_of_one_request_use_one_place_in_the_rate_limit(client: TestClient,
                                                                                pool: asyncpg.Pool) -> None:
    _, _, stream = await live_stream(client)
    ann, ch = await funded_client(client, pool, 50_000)
    rose = await gift_by_name(client, ch, "Rose")
    limit = client.app[SETTINGS].gift_rate_limit
    body = sending(rose, "retried")
    responses = await asyncio.gather(*(client.post(f"/api/streams/{stream['id']}/gifts", json=body, headers=ch)
                                       for _ in range(3 * limit)))
    assert {r.status for r in responses} == {201}
    # The retries counted once: the rest of the limit is still there for other gifts.
    for n in range(limit - 1):
        resp = await client.post(f"/api/streams/{stream['id']}/gifts",
                                 json=sending(rose, f"next-{n}"), headers=ch)
        assert resp.status == 201, await resp.text()
    assert await ledger.balance(pool, ann["id"]) == 50_000 - limit * rose["priceCents"]


async def test_reusing_a_request_id_for_another_gift_is_a_conflict(client: TestClient, pool: asyncpg.Pool) -> None:
    _, _, stream = await live_stream(client)
    _, ch = await funded_client(client, pool, 5000)
    rose, candle = await gift_by_name(client, ch, "Rose"), await gift_by_name(client, ch, "Candle")
    await client.post(f"/api/streams/{stream['id']}/gifts", json=sending(rose, "x"),
                      headers=ch)
    resp = await client.post(f"/api/streams/{stream['id']}/gifts", json=sending(candle, "x"),
                             headers=ch)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "request_id_reused"


async def test_insufficient_funds_is_402_and_moves_nothing(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, _, stream = await live_stream(client)
    ann, ch = await funded_client(client, pool, 150)
    crystal = await gift_by_name(client, ch, "Crystal Ball")
    resp = await client.post(f"/api/streams/{stream['id']}/gifts",
                             json=sending(crystal, "poor"), headers=ch)
    assert resp.status == 402 and (await resp.json())["error"]["code"] == "insufficient_funds"
    assert await ledger.balance(pool, ann["id"]) == 150
    assert await ledger.earnings(pool, reader["id"]) == 0
    assert await pool.fetchval("SELECT count(*) FROM gift_sends") == 0


async def test_an_ended_stream_takes_no_gifts(client: TestClient, pool: asyncpg.Pool) -> None:
    _, rh, stream = await live_stream(client)
    ann, ch = await funded_client(client, pool, 5000)
    rose = await gift_by_name(client, ch, "Rose")
    await client.post(f"/api/streams/{stream['id']}/end", headers=rh)
    resp = await client.post(f"/api/streams/{stream['id']}/gifts", json=sending(rose, "late"),
                             headers=ch)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "stream_ended"
    assert await ledger.balance(pool, ann["id"]) == 5000


async def test_a_flood_of_gifts_is_rate_limited_and_the_refused_ones_cost_nothing(
        client: TestClient, pool: asyncpg.Pool) -> None:
    _, _, stream = await live_stream(client)
    ann, ch = await funded_client(client, pool, 100_000)
    rose = await gift_by_name(client, ch, "Rose")
    limit = client.app[SETTINGS].gift_rate_limit
    statuses = []
    for i in range(limit + 5):
        resp = await client.post(f"/api/streams/{stream['id']}/gifts",
                                 json=sending(rose, f"flood-{i}"), headers=ch)
        statuses.append(resp.status)
        if resp.status == 429:
            assert "Retry-After" in resp.headers
            assert (await resp.json())["error"]["code"] == "rate_limited"
    assert statuses.count(201) == limit and statuses.count(429) == 5
    assert await ledger.balance(pool, ann["id"]) == 100_000 - limit * rose["priceCents"]


async def test_gifts_need_a_client_a_known_gift_and_a_sane_request_id(client: TestClient, pool: asyncpg.Pool) -> None:
    _, rh, stream = await live_stream(client)
    _, ch = await funded_client(client, pool, 5000)
    rose = await gift_by_name(client, ch, "Rose")
    url = f"/api/streams/{stream['id']}/gifts"
    assert (await client.post(url, json=sending(rose, "a"), headers=rh)).status == 403
    price = rose["priceCents"]
    bad = [({"giftId": str(uuid.uuid4()), "requestId": "a", "expectedCents": price}, "giftId"),
           ({"giftId": "nope", "requestId": "a", "expectedCents": price}, "giftId"),
           ({"giftId": rose["id"], "expectedCents": price}, "requestId"),
           (sending(rose, "a b"), "requestId"),
           ({"giftId": rose["id"], "requestId": "a"}, "expectedCents"),
           ({**sending(rose, "a"), "expectedCents": 2.5}, "expectedCents")]
    for body, field in bad:
        resp = await client.post(url, json=body, headers=ch)
        assert resp.status == 422 and (await resp.json())["error"]["field"] == field, body
    missing = await client.post(f"/api/streams/{uuid.uuid4()}/gifts", json=sending(rose, "m"),
                                headers=ch)
    assert missing.status == 404


async def test_the_leaderboard_ranks_gifters_by_cents_given(client: TestClient, pool: asyncpg.Pool) -> None:
    _, _, stream = await live_stream(client)
    _ann, ah = await funded_client(client, pool, 10_000, "Ann")
    _bob, bh = await funded_client(client, pool, 10_000, "Bob")
    rose, moon = await gift_by_name(client, ah, "Rose"), await gift_by_name(client, ah, "Full Moon")
    url = f"/api/streams/{stream['id']}/gifts"
    await client.post(url, json=sending(rose, "1"), headers=ah)
    await client.post(url, json=sending(moon, "1"), headers=bh)
    await client.post(url, json=sending(rose, "2"), headers=ah)
    board = await (await client.get(f"/api/streams/{stream['id']}/leaderboard", headers=ah)).json()
    assert [(g["displayName"], g["totalCents"], g["gifts"]) for g in board["leaderboard"]] == [
        ("Bob", moon["priceCents"], 1), ("Ann", 2 * rose["priceCents"], 2)]
    assert board["totalCents"] == moon["priceCents"] + 2 * rose["priceCents"]


async def test_a_gift_whose_price_changed_since_the_viewer_saw_it_is_refused_and_charges_nothing(
        client: TestClient, pool: asyncpg.Pool) -> None:
    reader, _, stream = await live_stream(client)
    ann, ch = await funded_client(client, pool, 100_000)
    rose = await gift_by_name(client, ch, "Rose")
    await pool.execute("UPDATE gifts SET price_cents = 5000 WHERE id = $1", rose["id"])  # an admin's new price
    resp = await client.post(f"/api/streams/{stream['id']}/gifts", json=sending(rose, "r-1"), headers=ch)
    assert resp.status == 409
    error = (await resp.json())["error"]
    assert (error["code"], error["priceCents"], error["expectedCents"]) == ("price_changed", 5000, rose["priceCents"])
    assert error["message"].startswith("The gift Rose now costs $50.00")
    assert await ledger.balance(pool, ann["id"]) == 100_000 and await ledger.earnings(pool, reader["id"]) == 0
    assert await pool.fetchval("SELECT count(*) FROM gift_sends") == 0
    # The same request id, now at the price confirmed, is a new gift (nothing was kept under it).
    resp = await client.post(f"/api/streams/{stream['id']}/gifts", json={**sending(rose, "r-1"),
                                                                         "expectedCents": 5000}, headers=ch)
    assert resp.status == 201 and (await resp.json())["balanceCents"] == 95_000
