"""Favourites and notify-when-online: a favourite going online alerts the client live and stored, at most once an
hour per reader; "notify me once" alerts once for any reader. Whatever sets the reader online (the dashboard's
switch, going live) raises the alert, through the trigger's outbox and the worker of the app under test."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from tests.api.marketplace.steps import profiled_reader
from tests.api.users import quick_user


async def _set_status(client: TestClient, headers: dict[str, str], status: str) -> None:
    resp = await client.post("/api/webrtc/reader/availability", json={"status": status}, headers=headers)
    assert resp.status == 200


async def _settled(pool: asyncpg.Pool) -> None:
    """Every online event handled (claimed and deleted in the transaction that stores its alerts)."""
    async with asyncio.timeout(10):
        while await pool.fetchval("SELECT count(*) FROM reader_online_events"):
            await asyncio.sleep(0.05)


async def _alerts(pool: asyncpg.Pool, client_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT payload FROM notifications WHERE user_id = $1 AND kind = 'reader-online'"
                            " ORDER BY created_at", client_id)
    return [r["payload"] if isinstance(r["payload"], dict) else json.loads(r["payload"]) for r in rows]


async def test_a_favourite_going_online_alerts_the_client_live_and_stored_once_an_hour(
        client: TestClient, pool: asyncpg.Pool) -> None:
    reader, reader_headers = await profiled_reader(client, status="offline")
    me, headers = await quick_user(client, "client")
    resp = await client.put(f"/api/favourites/{reader['id']}", headers=headers)
    assert (await resp.json()) == {"favourite": True, "watching": False}
    listed = (await (await client.get("/api/favourites", headers=headers)).json())["readers"]
    assert [r["id"] for r in listed] == [reader["id"]]
    ws = await client.ws_connect("/ws", headers=headers)
    try:
        await _set_status(client, reader_headers, "online")
        async with asyncio.timeout(10):
            while True:
                message = await ws.receive()
                assert message.type is WSMsgType.TEXT
                pushed = json.loads(message.data)
                if pushed.get("type") == "notification":
                    break
        assert (pushed["kind"], pushed["readerId"], pushed["url"], pushed["message"]) == (
            "reader-online", reader["id"], f"/readers/{reader['id']}", "Luna Hart is online now.")
    finally:
        await ws.close()
    await _settled(pool)
    assert len(await _alerts(pool, me["id"])) == 1
    # Off and on again within the hour: no second alert.
    await _set_status(client, reader_headers, "offline")
    await _set_status(client, reader_headers, "online")
    await _settled(pool)
    assert len(await _alerts(pool, me["id"])) == 1
    # An hour later it alerts again.
    await pool.execute("UPDATE online_alerts SET alerted_at = alerted_at - interval '61 minutes'")
    await _set_status(client, reader_headers, "offline")
    await _set_status(client, reader_headers, "online")
    await _settled(pool)
    assert len(await _alerts(pool, me["id"])) == 2
    resp = await client.delete(f"/api/favourites/{reader['id']}", headers=headers)
    assert (await resp.json()) == {"favourite": False, "watching": False}


async def test_notify_me_once_alerts_once_for_any_reader(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, reader_headers = await profiled_reader(client, status="offline")
    me, headers = await quick_user(client, "client")
    bystander, _ = await quick_user(client, "client")
    resp = await client.put(f"/api/readers/{reader['id']}/notify-once", headers=headers)
    assert (await resp.json()) == {"favourite": False, "watching": True}
    html = await (await client.get(f"/readers/{reader['id']}", headers=headers)).text()
    assert 'data-notify-once aria-pressed="true"' in html
    await _set_status(client, reader_headers, "online")
    await _settled(pool)
    assert [a["readerName"] for a in await _alerts(pool, me["id"])] == ["Luna Hart"]
    assert await _alerts(pool, bystander["id"]) == []
    assert not await pool.fetchval("SELECT count(*) FROM online_watches")  # used up
    await _set_status(client, reader_headers, "offline")
    await pool.execute("UPDATE online_alerts SET alerted_at = alerted_at - interval '2 hours'")
    await _set_status(client, reader_headers, "online")
    await _settled(pool)
    assert len(await _alerts(pool, me["id"])) == 1


async def test_going_live_on_a_stream_counts_as_going_online(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, reader_headers = await profiled_reader(client, status="offline")
    me, headers = await quick_user(client, "client")
    await client.put(f"/api/favourites/{reader['id']}", headers=headers)
    resp = await client.post("/api/streams", json={"title": "Full moon tarot"}, headers=reader_headers)
    assert resp.status == 201
    await _settled(pool)
    assert len(await _alerts(pool, me["id"])) == 1


async def test_favourites_need_a_client_and_a_real_reader(client: TestClient) -> None:
    reader, reader_headers = await profiled_reader(client)
    other_client, headers = await quick_user(client, "client")
    assert (await client.put(f"/api/favourites/{reader['id']}")).status == 401
    assert (await client.put(f"/api/favourites/{reader['id']}", headers=reader_headers)).status == 403
    resp = await client.put(f"/api/favourites/{other_client['id']}", headers=headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (404, "reader_not_found")
    assert (await client.put("/api/favourites/not-a-uuid", headers=headers)).status == 404
