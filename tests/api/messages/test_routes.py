"""Premium messages: a client pays the reader's message rate when sending, replies are free, only the two
parties read a thread, bodies are bounded and stored as sent."""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp.test_utils import TestClient

from api.messages.routes import MESSAGE_LIMITER
from api.pages import format as page_format
from billing import ledger
from billing.split import split
from tests.api.users import quick_user


async def reader_charging(client: TestClient, pool: asyncpg.Pool, cents: int) -> tuple[dict, dict[str, str]]:
    reader, headers = await quick_user(client, "reader", name="Madame Iris")
    await pool.execute("UPDATE reader_rates SET message_cents = $2 WHERE reader_id = $1", reader["id"], cents)
    return reader, headers


async def funded_client(client: TestClient, pool: asyncpg.Pool, cents: int) -> tuple[dict, dict[str, str]]:
    user, headers = await quick_user(client, name="Ann")
    if cents:
        await ledger.deposit(pool, client_id=user["id"], cents=cents, key=f"test-deposit:{user['id']}",
                             source="manual")
    return user, headers


async def test_a_clients_message_is_charged_the_readers_rate_split_70_30(client: TestClient,
                                                                         pool: asyncpg.Pool) -> None:
    reader, _ = await reader_charging(client, pool, 299)
    ann, ch = await funded_client(client, pool, 1000)
    resp = await client.post("/api/messages", json={"readerId": reader["id"], "body": "Will I find love?",
                                                    "expectedCents": 299},
                             headers=ch)
    assert resp.status == 201, await resp.text()
    message = (await resp.json())["message"]
    assert message["priceCents"] == 299 and message["body"] == "Will I find love?"
    assert await ledger.balance(pool, ann["id"]) == 701
    assert await ledger.earnings(pool, reader["id"]) == split(299)[0] == 209
    key = await pool.fetchval("SELECT ledger_key FROM messages WHERE id = $1", message["id"])
    assert key == f"message:{message['id']}"


async def test_the_readers_replies_are_free_and_further_client_messages_are_charged(
        client: TestClient, pool: asyncpg.Pool) -> None:
    reader, rh = await reader_charging(client, pool, 100)
    ann, ch = await funded_client(client, pool, 1000)
    first = await (await client.post("/api/messages", json={"readerId": reader["id"], "body": "Hello",
                                                            "expectedCents": 100},
                                     headers=ch)).json()
    thread_id = first["thread"]["id"]
    reply = await client.post("/api/messages", json={"threadId": thread_id, "body": "Hello, Ann"}, headers=rh)
    assert reply.status == 201 and (await reply.json())["message"]["priceCents"] == 0
    again = await client.post("/api/messages", json={"threadId": thread_id, "body": "Thanks",
                                                     "expectedCents": 100}, headers=ch)
    assert (await again.json())["message"]["priceCents"] == 100
    assert await ledger.balance(pool, ann["id"]) == 800
    assert await ledger.earnings(pool, reader["id"]) == 2 * split(100)[0]
    # The reply answered the first paid message in time, so it will not be refunded.
    answered = await pool.fetchval("SELECT answered_at FROM messages WHERE id = $1", first["message"]["id"])
    assert answered is not None


async def test_a_free_reader_costs_nothing(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, _ = await reader_charging(client, pool, 0)
    ann, ch = await funded_client(client, pool, 0)
    resp = await client.post("/api/messages", json={"readerId": reader["id"], "body": "Hi",
                                                    "expectedCents": 0}, headers=ch)
    assert resp.status == 201 and (await resp.json())["message"]["priceCents"] == 0
    assert await ledger.balance(pool, ann["id"]) == 0


async def test_insufficient_funds_stores_nothing_and_moves_nothing(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, _ = await reader_charging(client, pool, 500)
    ann, ch = await funded_client(client, pool, 499)
    resp = await client.post("/api/messages", json={"readerId": reader["id"], "body": "Hi",
                                                    "expectedCents": 500}, headers=ch)
    assert resp.status == 402 and (await resp.json())["error"]["code"] == "insufficient_funds"
    assert await ledger.balance(pool, ann["id"]) == 499
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
    assert await pool.fetchval("SELECT count(*) FROM notifications WHERE kind = 'message'") == 0


async def test_only_the_two_parties_read_a_thread(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, rh = await reader_charging(client, pool, 0)
    _, ch = await funded_client(client, pool, 0)
    _, stranger = await quick_user(client)
    _, other_reader = await quick_user(client, "reader")
    thread_id = (await (await client.post("/api/messages", json={"readerId": reader["id"], "body": "Hi",
                                                                 "expectedCents": 0},
                                          headers=ch)).json())["thread"]["id"]
    for headers in (ch, rh):
        assert (await client.get(f"/api/messages/threads/{thread_id}", headers=headers)).status == 200
    for headers in (stranger, other_reader):
        assert (await client.get(f"/api/messages/threads/{thread_id}", headers=headers)).status == 404
        resp = await client.post("/api/messages", json={"threadId": thread_id, "body": "sneaky",
                                                        "expectedCents": 0}, headers=headers)
        assert resp.status == 404
        assert (await client.post(f"/api/messages/threads/{thread_id}/read", headers=headers)).status == 404
    assert (await (await client.get("/api/messages/threads", headers=stranger)).json())["threads"] == []


async def test_threads_show_unread_counts_until_read(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, rh = await reader_charging(client, pool, 0)
    _, ch = await funded_client(client, pool, 0)
    for text in ("one", "two"):
        await client.post("/api/messages", json={"readerId": reader["id"], "body": text,
                                                 "expectedCents": 0}, headers=ch)
    threads = await (await client.get("/api/messages/threads", headers=rh)).json()
    (thread,) = threads["threads"]
    assert thread["unreadCount"] == 2 and threads["unreadCount"] == 2
    assert thread["with"]["displayName"] == "Ann" and thread["lastMessage"]["preview"] == "two"
    mine = (await (await client.get("/api/messages/threads", headers=ch)).json())["threads"][0]
    assert mine["unreadCount"] == 0 and mine["with"]["displayName"] == "Madame Iris"
    resp = await client.post(f"/api/messages/threads/{thread['id']}/read", headers=rh)
    assert (await resp.json())["marked"] == 2
    thread = (await (await client.get("/api/messages/threads", headers=rh)).json())["threads"][0]
    assert thread["unreadCount"] == 0
    messages = (await (await client.get(f"/api/messages/threads/{thread['id']}", headers=ch)).json())["messages"]
    assert [m["body"] for m in messages] == ["one", "two"] and all(m["readAt"] for m in messages)


async def test_bodies_are_length_limited_and_stored_as_sent(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, _ = await reader_charging(client, pool, 50)
    ann, ch = await funded_client(client, pool, 1000)
    too_long = await client.post("/api/messages", json={"readerId": reader["id"], "body": "x" * 2001,
                                                        "expectedCents": 50}, headers=ch)
    assert too_long.status == 422 and (await too_long.json())["error"]["field"] == "body"
    assert (await client.post("/api/messages", json={"readerId": reader["id"], "body": "  ",
                                                     "expectedCents": 50}, headers=ch)).status == 422
    assert await ledger.balance(pool, ann["id"]) == 1000
    text = "Ünïcode ✨ <b>not html</b>\nsecond line " + "y" * (2000 - 40)
    text = text[:2000]
    resp = await client.post("/api/messages", json={"readerId": reader["id"], "body": text,
                                                    "expectedCents": 50}, headers=ch)
    assert resp.status == 201
    assert await pool.fetchval("SELECT body FROM messages") == text


async def test_the_reader_is_notified_of_a_new_message(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, _ = await reader_charging(client, pool, 0)
    _, ch = await funded_client(client, pool, 0)
    await client.post("/api/messages", json={"readerId": reader["id"], "body": "Are you there?",
                                             "expectedCents": 0}, headers=ch)
    row = await pool.fetchrow("SELECT kind, payload FROM notifications WHERE user_id = $1", reader["id"])
    assert row["kind"] == "message" and row["payload"]["preview"] == "Are you there?"
    assert row["payload"]["from"]["displayName"] == "Ann"
    # The notifications page reads it as a sentence leading to the thread.
    text, link = page_format.notification(row["kind"], row["payload"])
    assert text == "New message from Ann." and link == f"/messages/{row['payload']['threadId']}"


async def test_messages_go_from_a_client_to_a_reader_only(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, rh = await reader_charging(client, pool, 0)
    other_client, _ = await quick_user(client)
    _, ch = await funded_client(client, pool, 0)
    to_client = await client.post("/api/messages", json={"readerId": other_client["id"], "body": "hi",
                                                         "expectedCents": 0}, headers=ch)
    assert to_client.status == 404
    reader_starting = await client.post("/api/messages", json={"readerId": reader["id"], "body": "hi"}, headers=rh)
    assert reader_starting.status == 422
    both = await client.post("/api/messages", json={"readerId": reader["id"], "threadId": reader["id"],
                                                    "body": "hi", "expectedCents": 0}, headers=ch)
    assert both.status == 422


async def test_a_retried_message_with_its_request_id_is_sent_and_charged_once(client: TestClient,
                                                                            pool: asyncpg.Pool) -> None:
    reader, _ = await reader_charging(client, pool, 200)
    ann, ch = await funded_client(client, pool, 1000)
    body = {"readerId": reader["id"], "body": "Once only, please", "requestId": "compose-1",
            "expectedCents": 200}
    responses = await asyncio.gather(*(client.post("/api/messages", json=body, headers=ch) for _ in range(3)))
    assert {r.status for r in responses} == {201}
    assert len({(await r.json())["message"]["id"] for r in responses}) == 1
    again = await client.post("/api/messages", json=body, headers=ch)
    assert (await again.json())["replayed"] is True
    assert await ledger.balance(pool, ann["id"]) == 800
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    assert await pool.fetchval("SELECT count(*) FROM notifications WHERE kind = 'message'") == 1
    other = await client.post("/api/messages", json={**body, "body": "Something else",
                                                     "expectedCents": 200}, headers=ch)
    assert other.status == 409 and (await other.json())["error"]["code"] == "request_id_reused"


async def test_concurrent_retries_of_one_request_use_one_place_in_the_rate_limit(client: TestClient,
                                                                                pool: asyncpg.Pool) -> None:
    reader, _ = await reader_charging(client, pool, 10)
    ann, ch = await funded_client(client, pool, 10_000)
    limit = client.app[MESSAGE_LIMITER].limit
    body = {"readerId": reader["id"], "body": "Is it time?", "requestId": "retried", "expectedCents": 10}
    responses = await asyncio.gather(*(client.post("/api/messages", json=body, headers=ch)
                                       for _ in range(limit + 10)))
    assert {r.status for r in responses} == {201}
    assert len({(await r.json())["message"]["id"] for r in responses}) == 1
    resp = await client.post("/api/messages", json={"readerId": reader["id"], "body": "And another?",
                                                    "expectedCents": 10}, headers=ch)
    assert resp.status == 201, "the retries used one place in the limit"
    assert await ledger.balance(pool, ann["id"]) == 10_000 - 2 * 10


async def test_a_message_after_the_reader_raised_the_price_is_refused_and_charges_nothing(
        client: TestClient, pool: asyncpg.Pool) -> None:
    reader, rh = await reader_charging(client, pool, 300)
    ann, ch = await funded_client(client, pool, 50_000)
    first = await client.post("/api/messages", json={"readerId": reader["id"], "body": "Hello",
                                                     "expectedCents": 300}, headers=ch)
    thread_id = (await first.json())["thread"]["id"]
    # The reader raises the price while the client is writing the next one.
    await client.post("/api/webrtc/reader/rates", json={"messageCents": 40_000}, headers=rh)
    resp = await client.post("/api/messages", json={"threadId": thread_id, "body": "And my career?",
                                                    "expectedCents": 300}, headers=ch)
    assert resp.status == 409
    error = (await resp.json())["error"]
    assert (error["code"], error["field"], error["priceCents"], error["expectedCents"]) == (
        "price_changed", "expectedCents", 40_000, 300)
    assert error["message"].startswith("A message to Madame Iris now costs $400.00, not the $3.00 you were shown")
    assert await ledger.balance(pool, ann["id"]) == 50_000 - 300
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    # A client who does not say what price they accept is not charged any.
    unconfirmed = await client.post("/api/messages", json={"threadId": thread_id, "body": "?"}, headers=ch)
    assert unconfirmed.status == 422 and (await unconfirmed.json())["error"]["field"] == "expectedCents"
    confirmed = await client.post("/api/messages", json={"threadId": thread_id, "body": "And my career?",
                                                         "expectedCents": 40_000}, headers=ch)
    assert confirmed.status == 201
    assert await ledger.balance(pool, ann["id"]) == 50_000 - 300 - 40_000
