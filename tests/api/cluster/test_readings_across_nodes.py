"""Three real ``soulseer serve`` nodes on loopback sharing one PostgreSQL and one Redis: a video reading whose
client socket is on one node and reader socket on another, homed on the third. Real aiortc peers decode each
other's frames through the home's relay, chat goes both ways, and the bill is exact to the cent."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from billing import ledger
from billing.meter import net_cents
from tests.api.cluster.processes import cluster_view, free_port, node_env, ready, serve
from tests.api.readings.test_media import connect_media
from tests.billing.invariants import assert_ledger_invariants
from tests.reading_steps import Signal, at_least, deposit, quick_user, session_row, video_reading, wait_for

pytestmark = pytest.mark.slow
RATE = 600  # 10 cents a second


async def test_a_video_reading_with_its_sockets_on_two_nodes_and_its_room_on_a_third(
        database_url: str, pool: asyncpg.Pool, tmp_path: Path, redis_server_url: str, redis_prefix: str) -> None:
    admin = await quick_user(pool, "admin")
    reader = await quick_user(pool, "reader")
    client = await quick_user(pool, "client")
    await deposit(pool, client.id, 5_000)
    ports = [free_port() for _ in range(3)]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    with ExitStack() as nodes:
        for index, port in enumerate(ports):
            env = node_env(database_url, port, REDIS_URL=redis_server_url, SOULSEER_REDIS_PREFIX=redis_prefix,
                           SOULSEER_NODE_NAME=f"node-{index + 1}")
            nodes.enter_context(serve(env, tmp_path / f"node-{index + 1}.log"))
        for base in bases:
            await ready(base)

        async def three() -> bool:
            return len((await cluster_view(bases[0], admin))["nodes"]) == 3

        await wait_for(three, timeout=20, interval=0.2)
        node_ids = [(await cluster_view(base, admin))["nodeId"] for base in bases]

        async with aiohttp.ClientSession(base_url=bases[0]) as http:
            session_id = await video_reading(http, reader, client, RATE)

        async def running() -> bool:
            return (await session_row(pool, session_id))["lease_owner"] is not None

        await wait_for(running, timeout=10, interval=0.1)
        home = node_ids.index(str((await session_row(pool, session_id))["lease_owner"]))
        client_node, reader_node = [i for i in range(3) if i != home]
        peers = []
        async with aiohttp.ClientSession(base_url=bases[client_node]) as on_client_node, \
                aiohttp.ClientSession(base_url=bases[reader_node]) as on_reader_node:
            client_ws = Signal(await on_client_node.ws_connect("/ws", headers=client.headers))
            reader_ws = Signal(await on_reader_node.ws_connect("/ws", headers=reader.headers))
            await client_ws.join(session_id)
            await reader_ws.join(session_id)
            try:
                for ws, role in ((client_ws, "client"), (reader_ws, "reader")):
                    peers.append(await connect_media(ws, role))
                await client_ws.expect("start-session", timeout=20)
                for peer in peers:
                    await peer.wait_decoded("video", 10, timeout=20)
                    await peer.wait_decoded("audio", 10, timeout=20)
                await client_ws.send("chat-message", text="hello from node 1")
                assert (await reader_ws.expect("chat-message", timeout=10))["text"] == "hello from node 1"
                await reader_ws.send("chat-message", text="hello from node 2")
                got = await client_ws.expect("chat-message", timeout=10, role="reader")
                assert got["text"] == "hello from node 2"
                await client_ws.expect("session-state", timeout=15, billableSeconds=at_least(4))
                view = await cluster_view(bases[home], admin, fresh=False)
                loads = {n["id"]: n["load"] for n in view["nodes"]}
                assert loads[node_ids[home]]["readings"] in (0, 1)  # as of its last heartbeat
                resp = await on_reader_node.post(f"/api/webrtc/session/{session_id}/end", headers=reader.headers)
                ended = (await resp.json())["session"]
                assert resp.status == 200 and ended["endReason"] == "ended_by_reader"
                for ws in (client_ws, reader_ws):
                    assert (await ws.expect("end-session", timeout=10))["session"]["id"] == session_id
            finally:
                for peer in peers:
                    await peer.close()
    row = await session_row(pool, session_id)
    assert str(row["lease_owner"]) == node_ids[home] and row["lease_epoch"] == 1  # it ran on its home alone
    assert row["billable_seconds"] >= 4
    assert row["charged_cents"] == net_cents(RATE, row["meter_billable_seconds"]) == ended["chargedCents"]
    keys = sorted(r["key"] for r in await pool.fetch("SELECT key FROM ledger_transactions WHERE ref = $1",
                                                      session_id))
    assert keys == [f"reading:{session_id}:minute:0", f"reading:{session_id}:refund"]
    assert await ledger.balance(pool, client.id) == 5_000 - row["charged_cents"]
    await assert_ledger_invariants(pool)
