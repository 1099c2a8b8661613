"""A reader is shown online only while a signaling socket of theirs is open somewhere: on one node, and across
the nodes of a cluster (the nodes holding a reader's sockets are a set in Redis)."""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp.test_utils import TestClient

from api.readings.online import AWAY_TIMERS
from config import Settings
from tests.reading_steps import Party, Signal, quick_user, running_app, wait_for

AWAY_AFTER = 1


async def _status(pool: asyncpg.Pool, reader: Party) -> str:
    return str(await pool.fetchval("SELECT status FROM reader_availability WHERE reader_id = $1", reader.id))


async def _online_reader(http: TestClient, pool: asyncpg.Pool) -> Party:
    reader = await quick_user(pool, "reader")
    assert (await http.post("/api/webrtc/reader/rates", headers=reader.headers, json={"chatCents": 99})).status == 200
    resp = await http.post("/api/webrtc/reader/availability", headers=reader.headers, json={"status": "online"})
    assert resp.status == 200
    return reader


async def test_a_reader_whose_last_socket_closed_is_away_after_the_grace_and_back_with_a_new_one(
        settings: Settings, pool: asyncpg.Pool) -> None:
    async with running_app(settings, away_after_seconds=AWAY_AFTER) as http:
        reader = await _online_reader(http, pool)
        socket = await Signal.open(http, reader)
        await socket.ws.close()
        assert await _status(pool, reader) == "online"  # the grace has not passed yet

        async def away() -> bool:
            return await _status(pool, reader) == "offline"

        await wait_for(away, timeout=AWAY_AFTER + 5)
        socket = await Signal.open(http, reader)

        async def back() -> bool:
            return await _status(pool, reader) == "online"

        await wait_for(back, timeout=5)
        await socket.ws.close()


async def test_across_two_nodes_a_reader_is_away_only_once_no_node_holds_a_socket_of_theirs(
        settings: Settings, pool: asyncpg.Pool, redis_server_url: str, redis_prefix: str) -> None:
    shared = {"away_after_seconds": AWAY_AFTER, "redis_url": redis_server_url, "redis_prefix": redis_prefix}
    async with running_app(settings, **shared) as first, running_app(settings, **shared) as second:
        reader = await _online_reader(first, pool)
        on_first = await Signal.open(first, reader)
        on_second = await Signal.open(second, reader)
        await on_first.ws.close()

        async def scheduled() -> bool:
            return reader.id in first.app[AWAY_TIMERS]

        await wait_for(scheduled)
        # The first node's check, once its grace is over, finds the second node holding a socket: still online.
        await asyncio.wait_for(asyncio.shield(first.app[AWAY_TIMERS][reader.id]), AWAY_AFTER + 5)
        assert await _status(pool, reader) == "online"
        await on_second.ws.close()

        async def away() -> bool:
            return await _status(pool, reader) == "offline"

        await wait_for(away, timeout=AWAY_AFTER + 5)
