"""The signal bridge with two nodes in one process on a real Redis: a socket on either node joins a room homed on
the other and gets exactly what it would get there; streams, gifts and notifications reach sockets wherever they
landed; two nodes racing to place one room agree."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from api.cluster import CLUSTER
from api.cluster.placement import Placement
from api.realtime.bridge import SIGNAL_BRIDGE
from billing import ledger
from config import Settings
from tests.api.readings.test_media import connect_media
from tests.api.stream_sockets import SignalingClient
from tests.reading_steps import (
    Party,
    Signal,
    at_least,
    deposit,
    lease_owner,
    quick_user,
    running_app,
    session_row,
    video_reading,
    wait_for,
)
from tests.relay.endpoints import Endpoint

RATE = 240


@asynccontextmanager
async def two_nodes(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[tuple[TestClient, TestClient]]:
    """Nodes a and b of one cluster, each having seen the other in the registry."""
    async with running_app(settings, node_name="a") as a, running_app(settings, node_name="b") as b:

        async def both() -> bool:
            return all(len(app.server.app[CLUSTER].registry.seen) == 2 for app in (a, b))

        await wait_for(both, timeout=10, interval=0.1)
        yield a, b


async def _video_reading(http: TestClient, pool: asyncpg.Pool) -> tuple[str, Party, Party]:
    reader = await quick_user(pool, "reader")
    client = await quick_user(pool, "client")
    await deposit(pool, client.id, 5_000)
    return await video_reading(http, reader, client, RATE, accepted=False), reader, client


@pytest.mark.slow
async def test_a_video_reading_whose_two_sockets_are_on_different_nodes_runs_on_its_home(
        cluster_settings: Settings, pool: asyncpg.Pool) -> None:
    async with two_nodes(cluster_settings, pool) as (a, b):
        session_id, reader, client = await _video_reading(a, pool)
        # The reader's notification reaches the reader's socket on the other node.
        reader_ws = await Signal.open(b, reader)
        resp = await a.post(f"/api/webrtc/reader/accept-session/{session_id}", headers=reader.headers)
        assert resp.status == 200, await resp.text()
        owner = await lease_owner(pool, session_id)  # the accept had its home start it
        runtime_node = a if a.server.app[CLUSTER].node_id == owner else b
        client_ws = await Signal.open(a, client)
        assert (await client_ws.join(session_id))["role"] == "client"
        assert (await reader_ws.join(session_id))["role"] == "reader"
        # One of the two sockets is on the other node than the reading's: bridged.
        bridged = sum(n.server.app[SIGNAL_BRIDGE].counts()[0] for n in (a, b))
        assert bridged == 1 and runtime_node.server.app[SIGNAL_BRIDGE].counts()[1] == 1
        peers = [await connect_media(client_ws, "client"), await connect_media(reader_ws, "reader")]
        try:
            await client_ws.expect("start-session", timeout=15)
            for peer in peers:  # both browsers peer with the home's relay and decode each other
                await peer.wait_decoded("video", 10, timeout=15)
            await client_ws.send("chat-message", text="from the client")
            assert (await reader_ws.expect("chat-message"))["text"] == "from the client"
            await reader_ws.send("chat-message", text="from the reader")
            assert (await client_ws.expect("chat-message", role="reader"))["text"] == "from the reader"
            state = await client_ws.expect("session-state", timeout=10, billableSeconds=at_least(3))
            assert "balanceCents" in state and "earnedCents" not in state
            assert "balanceCents" not in await reader_ws.expect("session-state")
            # Ended over REST on whichever node: carried out by the reading's node.
            other = b if runtime_node is a else a
            resp = await other.post(f"/api/webrtc/session/{session_id}/end", headers=client.headers)
            ended = (await resp.json())["session"]
            assert resp.status == 200 and ended["status"] == "ended"
            for ws in (client_ws, reader_ws):
                assert (await ws.expect("end-session"))["reason"] == "ended_by_client"
        finally:
            for peer in peers:
                await peer.close()
        row = await session_row(pool, session_id)
        assert row["charged_cents"] == ended["chargedCents"] > 0
        assert await ledger.balance(pool, client.id) == 5_000 - row["charged_cents"]


async def test_a_socket_joins_a_reading_run_on_the_other_node_and_errors_come_back_unchanged(
        cluster_settings: Settings, pool: asyncpg.Pool) -> None:
    async with two_nodes(cluster_settings, pool) as nodes:
        a, b = nodes
        session_id, reader, client = await _video_reading(a, pool)
        assert (await a.post(f"/api/webrtc/reader/accept-session/{session_id}", headers=reader.headers)).status == 200
        owner = await lease_owner(pool, session_id)
        home, other = (a, b) if a.server.app[CLUSTER].node_id == owner else (b, a)
        ws = await Signal.open(other, client)
        await ws.send("chat-message", text="before joining")
        assert (await ws.expect("error"))["code"] == "not_joined"
        assert (await ws.join(session_id))["sessionId"] == session_id
        await ws.send("chat-message", text="too early")
        assert (await ws.expect("error"))["code"] == "wrong_state"  # the home's own refusal, through the bridge
        await ws.send("offer", sdp="v=0 not an offer")
        assert (await ws.expect("error"))["code"] in {"bad_offer", "bad_sdp", "invalid_sdp"}
        await ws.send("ping")
        await ws.expect("pong")
        intruder = await quick_user(pool, "client")
        stranger = await Signal.open(other, intruder)
        await stranger.send("join", sessionId=session_id)
        assert (await stranger.expect("error"))["code"] == "unknown_session"
        await ws.send("leave")
        await ws.expect("left")
        await ws.send("chat-message", text="after leaving")
        assert (await ws.expect("error"))["code"] == "not_joined"
        assert other.server.app[SIGNAL_BRIDGE].counts()[0] == 0
        await ws.close()  # the socket bridged to the home goes with the browser's
        await wait_for(lambda: _no_remotes(home), timeout=5)
        resp = await other.post(f"/api/webrtc/session/{session_id}/end", headers=reader.headers)
        assert (await resp.json())["session"]["status"] == "ended"


async def _no_remotes(node: TestClient) -> bool:
    return node.server.app[SIGNAL_BRIDGE].counts()[1] == 0


@pytest.mark.slow
async def test_a_stream_is_watched_from_both_nodes_and_its_gifts_and_end_reach_everyone(
        cluster_settings: Settings, pool: asyncpg.Pool) -> None:
    async with two_nodes(cluster_settings, pool) as (a, b):
        reader = await quick_user(pool, "reader", "Madame Iris")
        ann = await quick_user(pool, "client", "Ann")
        bob = await quick_user(pool, "client", "Bob")
        await deposit(pool, ann.id, 5_000)
        resp = await a.post("/api/streams", json={"title": "Full moon"}, headers=reader.headers)
        stream_id = (await resp.json())["stream"]["id"]
        publisher_ws = await SignalingClient.connect(b, reader.headers)
        ann_ws = await SignalingClient.connect(a, ann.headers)
        bob_ws = await SignalingClient.connect(b, bob.headers)
        assert (await publisher_ws.join_stream(stream_id))["role"] == "publisher"
        assert (await ann_ws.join_stream(stream_id))["role"] == "viewer"
        assert (await bob_ws.join_stream(stream_id))["role"] == "viewer"
        publisher = Endpoint("publisher", receive=(), data_channel=False)
        viewers = [Endpoint("ann", send=(), data_channel=False), Endpoint("bob", send=(), data_channel=False)]
        try:
            await publisher_ws.send({"type": "offer", "sdp": await publisher.offer()})
            await publisher.accept((await publisher_ws.wait("answer"))["sdp"])
            for ws, endpoint in zip((ann_ws, bob_ws), viewers, strict=True):
                await ws.send({"type": "offer", "sdp": await endpoint.offer()})
                await endpoint.accept((await ws.wait("answer"))["sdp"])
            for endpoint in viewers:
                await endpoint.wait_decoded("video", 5, timeout=20)
            await publisher_ws.wait("stream-state", lambda m: m["viewerCount"] == 2)

            async def counted_on(node: TestClient) -> bool:
                resp = await node.get(f"/api/streams/{stream_id}", headers=bob.headers)
                return (await resp.json())["stream"]["viewerCount"] == 2

            for node in (a, b):  # the REST answer is the same on the home and elsewhere
                await wait_for(lambda node=node: counted_on(node), timeout=5, interval=0.1)

            gifts = (await (await a.get("/api/gifts", headers=ann.headers)).json())["gifts"]
            for node in (a, b):
                resp = await node.post(f"/api/streams/{stream_id}/gifts", headers=ann.headers,
                                       json={"giftId": gifts[0]["id"], "requestId": f"gift-{node.port}",
                                             "expectedCents": gifts[0]["priceCents"]})
                assert resp.status == 201, await resp.text()
            for ws in (publisher_ws, ann_ws, bob_ws):  # each gift once, wherever it was paid
                await ws.wait_count("gift", 2)
            await ann_ws.send({"type": "chat-message", "text": "lovely"})
            assert (await bob_ws.wait("chat-message"))["text"] == "lovely"
            resp = await a.post(f"/api/streams/{stream_id}/end", headers=reader.headers)
            assert resp.status == 200
            for ws in (publisher_ws, ann_ws, bob_ws):
                await ws.wait("stream-state", lambda m: m["status"] == "ended")
        finally:
            for endpoint in (publisher, *viewers):
                await endpoint.close()
            for ws in (publisher_ws, ann_ws, bob_ws):
                await ws.close()
        assert len(publisher_ws.of_type("gift")) == 2


async def test_two_nodes_racing_to_place_one_room_agree_on_its_home(
        cluster_settings: Settings, pool: asyncpg.Pool) -> None:
    async with two_nodes(cluster_settings, pool) as (a, b):
        placements = [Placement(node.server.app[CLUSTER]) for node in (a, b)]
        for attempt in range(20):
            room = f"race:{attempt}"
            homes = await asyncio.gather(*(p.home(room) for p in placements for _ in range(5)))
            assert len(set(homes)) == 1
        ids = {node.server.app[CLUSTER].node_id for node in (a, b)}
        assert set(homes) <= ids


async def test_a_notification_reaches_every_tab_of_its_user_on_every_node(
        cluster_settings: Settings, pool: asyncpg.Pool) -> None:
    async with two_nodes(cluster_settings, pool) as (a, b):
        reader = await quick_user(pool, "reader")
        client = await quick_user(pool, "client")
        await deposit(pool, client.id, 5_000)
        await a.post("/api/webrtc/reader/rates", headers=reader.headers, json={"chatCents": 100})
        # Online on node b, seen online by a client asking node a at once (availability is in the database).
        await b.post("/api/webrtc/reader/availability", headers=reader.headers, json={"status": "online"})
        readers = (await (await a.get("/api/webrtc/client/available-readers", headers=client.headers)).json())
        assert reader.id in [r["id"] for r in readers["readers"]]
        tabs = [await Signal.open(a, reader), await Signal.open(b, reader)]
        await a.post("/api/webrtc/client/request-session", headers=client.headers,
                     json={"readerId": reader.id, "sessionType": "chat", "expectedCents": 100})
        for tab in tabs:
            note = await tab.expect("notification", kind="session-requested")
            assert note["session"]["clientId"] == client.id
        await asyncio.sleep(0.3)  # no second copy trails in (the node that pushed does not push again)
        for tab in tabs:
            assert [m["kind"] for m in tab.seen if m.get("type") == "notification"] == ["session-requested"]
