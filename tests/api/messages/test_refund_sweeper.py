"""The refund sweeper: unanswered paid messages are refunded once, however many sweepers run."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.core.database import _init
from api.messages.refund_sweeper import REFUND_SWEEPER, sweep
from billing import ledger
from config import Settings
from tests.api.users import quick_user

WINDOW = timedelta(hours=72)


async def paid_message(client: TestClient, pool: asyncpg.Pool, *, cents: int = 300,
                       deposit: int = 1000) -> tuple[dict, dict, dict[str, str], dict]:
    reader, rh = await quick_user(client, "reader")
    await pool.execute("UPDATE reader_rates SET message_cents = $2 WHERE reader_id = $1", reader["id"], cents)
    ann, ch = await quick_user(client, name="Ann")
    await ledger.deposit(pool, client_id=ann["id"], cents=deposit, key=f"dep:{ann['id']}", source="manual")
    resp = await client.post("/api/messages", json={"readerId": reader["id"], "body": "Please answer",
                                                    "expectedCents": cents}, headers=ch)
    assert resp.status == 201
    return reader, ann, rh, await resp.json()


async def test_an_unanswered_paid_message_is_refunded_after_the_window(client: TestClient,
                                                                       pool: asyncpg.Pool) -> None:
    reader, ann, _, sent = await paid_message(client, pool)
    now = datetime.now(UTC)
    assert await sweep(pool, now=now + WINDOW - timedelta(minutes=1), window=WINDOW) == 0
    assert await sweep(pool, now=now + WINDOW + timedelta(minutes=1), window=WINDOW) == 1
    assert await ledger.balance(pool, ann["id"]) == 1000
    assert await ledger.earnings(pool, reader["id"]) == 0
    row = await pool.fetchrow("SELECT refund_key, refunded_cents FROM messages WHERE id = $1", sent["message"]["id"])
    assert row["refund_key"] == f"message-refund:{sent['message']['id']}" and row["refunded_cents"] == 300
    assert await pool.fetchval("SELECT count(*) FROM notifications WHERE user_id = $1 AND kind = 'message-refund'",
                               ann["id"]) == 1
    # Sweeping again finds nothing more to give back.
    assert await sweep(pool, now=now + 2 * WINDOW, window=WINDOW) == 0
    assert await ledger.balance(pool, ann["id"]) == 1000


async def test_a_message_answered_in_time_is_not_refunded(client: TestClient, pool: asyncpg.Pool) -> None:
    _reader, ann, rh, sent = await paid_message(client, pool)
    await client.post("/api/messages", json={"threadId": sent["thread"]["id"], "body": "Yes!"}, headers=rh)
    assert await sweep(pool, now=datetime.now(UTC) + 2 * WINDOW, window=WINDOW) == 0
    assert await ledger.balance(pool, ann["id"]) == 700


async def test_two_sweepers_at_once_refund_exactly_once(client: TestClient, pool: asyncpg.Pool,
                                                        database_url: str) -> None:
    _, ann, _, _ = await paid_message(client, pool, cents=100)
    # More paid messages from the same client, so both sweepers have a batch to fight over.
    reader_id = await pool.fetchval("SELECT reader_id FROM message_threads")
    for _i in range(7):
        async with pool.acquire() as conn, conn.transaction():
            message_id = str(uuid.uuid4())
            await ledger.charge(conn, client_id=ann["id"], reader_id=str(reader_id), cents=100,
                                key=f"message:{message_id}", kind="message", ref=message_id)
            await conn.execute(
                "INSERT INTO messages (id, thread_id, sender_id, body, price_cents, ledger_key)"
                " SELECT $1, id, $2, 'more', 100, $3 FROM message_threads", message_id, ann["id"],
                f"message:{message_id}")
    assert await ledger.balance(pool, ann["id"]) == 200
    other_node = await asyncpg.create_pool(database_url, min_size=1, max_size=5, init=_init)
    try:
        later = datetime.now(UTC) + WINDOW + timedelta(seconds=1)
        counts = await asyncio.gather(sweep(pool, now=later, window=WINDOW),
                                      sweep(other_node, now=later, window=WINDOW))
    finally:
        await other_node.close()
    assert sum(counts) == 8
    assert await ledger.balance(pool, ann["id"]) == 1000
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE refunded_at IS NOT NULL") == 8


async def test_the_apps_sweeper_runs_on_its_interval_with_an_injected_clock(settings: Settings,
                                                                            pool: asyncpg.Pool) -> None:
    app = create_app(replace(settings, message_sweep_interval_seconds=1))
    sweeper = app[REFUND_SWEEPER]
    sweeper.clock = lambda: datetime.now(UTC) + WINDOW + timedelta(hours=1)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        _, ann, _, _ = await paid_message(client, pool)
        assert await ledger.balance(pool, ann["id"]) == 700
        await sweeper.wait_for_sweeps(sweeper.sweeps + 2)
        assert await ledger.balance(pool, ann["id"]) == 1000
