"""Redis going away in the middle of a reading, on two nodes with a socket bridged between them: media and the
meter carry on on the home (they need no Redis), what needs Redis gets a quick 503 or a signaling error (never a
hang), and when Redis is back (empty: it keeps nothing) the registry, the room map, the bridge's pushes and chat
recover by themselves."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from api.cluster import CLUSTER
from api.cluster.embedded import EmbeddedRedis
from api.cluster.placement import Placement
from api.readings.homes import room
from billing import ledger
from billing.meter import net_cents
from config import Settings
from tests import reading_steps
from tests.api.readings.test_media import connect_media
from tests.reading_steps import Signal, at_least, deposit, lease_owner, quick_user, running_app, session_row, wait_for

pytestmark = pytest.mark.slow
RATE = 600


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A redis-server of this test's own, to stop and start again."""
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _nodes_seen(http: TestClient, admin_headers: dict[str, str], count: int) -> bool:
    resp = await http.get("/api/admin/cluster", headers=admin_headers)
    return resp.status == 200 and len((await resp.json())["nodes"]) == count


async def test_a_reading_carries_on_while_redis_restarts_and_signaling_recovers(
        settings: Settings, pool: asyncpg.Pool, own_redis: EmbeddedRedis) -> None:
    cluster = replace(settings, redis_url=own_redis.url, redis_prefix="faults:")
    admin = await quick_user(pool, "admin")
    reader = await quick_user(pool, "reader")
    client = await quick_user(pool, "client")
    other_client = await quick_user(pool, "client")
    await deposit(pool, client.id, 5_000)
    await deposit(pool, other_client.id, 5_000)
    async with running_app(cluster, node_name="a") as a, running_app(cluster, node_name="b") as b:
        await wait_for(lambda: _nodes_seen(a, admin.headers, 2), timeout=10, interval=0.1)
        session_id = await reading_steps.video_reading(a, reader, client, RATE)
        owner = await lease_owner(pool, session_id)
        home, edge = (a, b) if a.server.app[CLUSTER].node_id == owner else (b, a)
        client_ws = await Signal.open(home, client)  # on the home
        reader_ws = await Signal.open(edge, reader)  # bridged to it
        await client_ws.join(session_id)
        await reader_ws.join(session_id)
        peers = [await connect_media(client_ws, "client"), await connect_media(reader_ws, "reader")]
        try:
            await client_ws.expect("start-session", timeout=15)
            began = time.monotonic()
            for peer in peers:
                await peer.wait_decoded("video", 5, timeout=15)
            state = await client_ws.expect("session-state", timeout=10, billableSeconds=at_least(2))

            own_redis.stop()
            stopped = time.monotonic()
            # The meter and the media need no Redis: the home keeps billing and forwarding.
            later = await client_ws.expect("session-state", timeout=10,
                                           billableSeconds=at_least(state["billableSeconds"] + 3))
            assert later["running"] is True
            decoded = dict(peers[1].decoded)
            await peers[1].wait_decoded("video", decoded["video"] + 20, timeout=10)
            # What needs Redis says so at once: a 503, a signaling error; nothing hangs, nothing changes.
            asked = time.monotonic()
            resp = await a.get("/api/admin/cluster", headers=admin.headers)
            assert resp.status == 503 and (await resp.json())["error"]["code"] == "cluster_unavailable"
            other = await a.post("/api/webrtc/client/request-session", headers=other_client.headers,
                                 json={"readerId": reader.id, "sessionType": "video", "expectedCents": RATE})
            assert other.status == 409  # the reader is busy: the database answers alone, as ever
            await reader_ws.send("chat-message", text="while redis is away")
            assert (await reader_ws.expect("error", timeout=5))["code"] == "cluster_unavailable"
            assert time.monotonic() - asked < 5

            own_redis.start()  # the same address, empty
            restarted = time.monotonic()
            await wait_for(lambda: _nodes_seen(a, admin.headers, 2), timeout=10, interval=0.1)
            registered = time.monotonic() - restarted
            # The bridged socket hears the home again, and chat crosses the bridge again.
            await reader_ws.expect("session-state", timeout=10)
            await wait_for(lambda: _recorded_home(a, session_id, owner), timeout=10, interval=0.1)
            await reader_ws.send("chat-message", text="redis is back")
            assert (await client_ws.expect("chat-message", timeout=10))["text"] == "redis is back"
            recovered = time.monotonic() - restarted
            resp = await edge.post(f"/api/webrtc/session/{session_id}/end", headers=client.headers)
            ended = (await resp.json())["session"]
            together = time.monotonic() - began
        finally:
            for peer in peers:
                await peer.close()
    row = await session_row(pool, session_id)
    assert ended["status"] == "ended" and row["lease_epoch"] == 1  # never left its home
    # Billed for the whole time together, the outage included (the two were together all along).
    assert together - 3 <= row["meter_billable_seconds"] <= together + 1
    assert row["charged_cents"] == net_cents(RATE, row["meter_billable_seconds"])
    assert await ledger.balance(pool, client.id) == 5_000 - row["charged_cents"]
    assert stopped - began > 0 and registered < 10 and recovered < 15


async def _recorded_home(http: TestClient, session_id: str, owner: str) -> bool:
    return await Placement(http.server.app[CLUSTER]).recorded(room(session_id)) == owner
