"""The stream side of /ws: publisher and viewers, live state, gifts to everyone, chat, the end of a stream."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.core.keys import SETTINGS
from billing import ledger
from config import Settings
from tests.api.stream_sockets import SignalingClient
from tests.api.users import quick_user
from tests.relay.endpoints import Endpoint


async def live(client: TestClient) -> tuple[dict, dict[str, str], dict]:
    reader, rh = await quick_user(client, "reader", name="Madame Iris")
    resp = await client.post("/api/streams", json={"title": "Full moon tarot"}, headers=rh)
    return reader, rh, (await resp.json())["stream"]


async def viewer(client: TestClient, pool: asyncpg.Pool, name: str, cents: int = 0) -> tuple[dict, dict[str, str]]:
    user, headers = await quick_user(client, name=name)
    if cents:
        await ledger.deposit(pool, client_id=user["id"], cents=cents, key=f"dep:{user['id']}", source="manual")
    return user, headers


async def reader_and_ann_on_a_stream(client: TestClient, pool: asyncpg.Pool) -> tuple[
        dict[str, str], dict[str, str], dict, SignalingClient, SignalingClient]:
    """A live stream its reader and a viewer, Ann, have joined: (their headers, the stream, their sockets)."""
    _, rh, stream = await live(client)
    _, ah = await viewer(client, pool, "Ann")
    reader_ws, ann_ws = await SignalingClient.connect(client, rh), await SignalingClient.connect(client, ah)
    await reader_ws.join_stream(stream["id"])
    await ann_ws.join_stream(stream["id"])
    return rh, ah, stream, reader_ws, ann_ws


async def test_the_reader_publishes_viewers_watch_and_everyone_sees_the_viewer_count(client: TestClient,
                                                                                    pool: asyncpg.Pool) -> None:
    _, rh, stream = await live(client)
    _, ah = await viewer(client, pool, "Ann")
    _, bh = await viewer(client, pool, "Bob")
    reader_ws = await SignalingClient.connect(client, rh)
    joined = await reader_ws.join_stream(stream["id"])
    assert joined["role"] == "publisher" and joined["stream"]["title"] == "Full moon tarot"
    assert "iceServers" in joined
    ann_ws, bob_ws = await SignalingClient.connect(client, ah), await SignalingClient.connect(client, bh)
    assert (await ann_ws.join_stream(stream["id"]))["role"] == "viewer"
    await bob_ws.join_stream(stream["id"])
    state = await reader_ws.wait("stream-state", lambda m: m["viewerCount"] == 2)
    assert state["status"] == "live" and state["leaderboard"] == []
    resp = await client.get(f"/api/streams/{stream['id']}", headers=ah)
    assert (await resp.json())["stream"]["viewerCount"] == 2
    await bob_ws.close()
    await reader_ws.wait("stream-state", lambda m: m["viewerCount"] == 1)
    for ws in (reader_ws, ann_ws):
        await ws.close()


async def test_a_gift_reaches_everyone_on_the_stream_with_the_new_leaderboard(client: TestClient,
                                                                             pool: asyncpg.Pool) -> None:
    _, rh, stream = await live(client)
    _, ah = await viewer(client, pool, "Ann", cents=5000)
    _, bh = await viewer(client, pool, "Bob")
    sockets = [await SignalingClient.connect(client, h) for h in (rh, ah, bh)]
    for ws in sockets:
        await ws.join_stream(stream["id"])
    gifts = (await (await client.get("/api/gifts", headers=ah)).json())["gifts"]
    resp = await client.post(f"/api/streams/{stream['id']}/gifts",
                             json={"giftId": gifts[0]["id"], "requestId": "hello",
                                   "expectedCents": gifts[0]["priceCents"]}, headers=ah)
    assert resp.status == 201
    for ws in sockets:
        gift = await ws.wait("gift")
        assert gift["fromName"] == "Ann" and gift["giftId"] == gifts[0]["id"]
        assert gift["streamId"] == stream["id"] and gift["priceCents"] == gifts[0]["priceCents"]
        state = await ws.wait("stream-state", lambda m: bool(m["leaderboard"]))
        assert state["leaderboard"][0]["displayName"] == "Ann"
    # A retry of the same gift is not shown twice.
    await client.post(f"/api/streams/{stream['id']}/gifts", json={"giftId": gifts[0]["id"], "requestId": "hello",
                                                                  "expectedCents": gifts[0]["priceCents"]}, headers=ah)
    await sockets[2].send({"type": "ping"})
    await sockets[2].wait("pong")
    assert len(sockets[2].of_type("gift")) == 1
    for ws in sockets:
        await ws.close()


async def test_ending_the_stream_tells_every_viewer(client: TestClient, pool: asyncpg.Pool) -> None:
    rh, ah, stream, reader_ws, ann_ws = await reader_and_ann_on_a_stream(client, pool)
    assert (await client.post(f"/api/streams/{stream['id']}/end", headers=rh)).status == 200
    for ws in (reader_ws, ann_ws):
        assert (await ws.wait("stream-state", lambda m: m["status"] == "ended"))["viewerCount"] >= 0
    await ann_ws.send({"type": "chat-message", "text": "still there?"})
    assert (await ann_ws.wait("error"))["code"] == "stream_ended"
    fresh = await SignalingClient.connect(client, ah)
    await fresh.send({"type": "join", "streamId": stream["id"]})
    assert (await fresh.wait("error"))["code"] == "stream_ended"
    for ws in (reader_ws, ann_ws, fresh):
        await ws.close()


async def test_the_reader_ends_the_stream_over_the_socket_and_viewers_cannot(client: TestClient,
                                                                            pool: asyncpg.Pool) -> None:
    _rh, _ah, stream, reader_ws, ann_ws = await reader_and_ann_on_a_stream(client, pool)
    await ann_ws.send({"type": "end-stream"})
    assert (await ann_ws.wait("error"))["code"] == "forbidden"
    await reader_ws.send({"type": "end-stream"})
    await ann_ws.wait("stream-state", lambda m: m["status"] == "ended")
    assert await pool.fetchval("SELECT status FROM streams WHERE id = $1", stream["id"]) == "ended"
    for ws in (reader_ws, ann_ws):
        await ws.close()


async def test_stream_chat_goes_to_everyone_and_a_flood_is_refused(client: TestClient, pool: asyncpg.Pool) -> None:
    _rh, _ah, _stream, reader_ws, ann_ws = await reader_and_ann_on_a_stream(client, pool)
    await ann_ws.send({"type": "chat-message", "text": "  Hello Iris!  "})
    chat = await reader_ws.wait("chat-message")
    assert chat["text"] == "Hello Iris!" and chat["fromName"] == "Ann" and chat["role"] == "viewer"
    limit = client.app[SETTINGS].stream_chat_rate_limit
    for i in range(limit + 3):
        await ann_ws.send({"type": "chat-message", "text": f"spam {i}"})
    errors = await ann_ws.wait_count("error", 1, lambda m: m["code"] == "rate_limited")
    assert errors
    await ann_ws.send({"type": "chat-message", "text": "x" * 501})
    assert (await ann_ws.wait("error", lambda m: m["code"] == "too_large"))
    for ws in (reader_ws, ann_ws):
        await ws.close()


async def test_bad_stream_joins_get_an_error_and_the_socket_keeps_working(client: TestClient,
                                                                          pool: asyncpg.Pool) -> None:
    _, ah = await viewer(client, pool, "Ann")
    ws = await SignalingClient.connect(client, ah)
    for stream_id in ("nope", "00000000-0000-0000-0000-000000000000", 7):
        await ws.send({"type": "join", "streamId": stream_id})
    errors = await ws.wait_count("error", 3)
    assert {e["code"] for e in errors} == {"unknown_stream"}
    await ws.send({"type": "ping"})
    await ws.wait("pong")
    await ws.close()


async def test_media_flows_from_the_publisher_to_every_viewer(client: TestClient, pool: asyncpg.Pool) -> None:
    _, rh, stream = await live(client)
    reader_ws = await SignalingClient.connect(client, rh)
    await reader_ws.join_stream(stream["id"])
    publisher = Endpoint("publisher", send=("audio", "video"), receive=(), data_channel=False)
    viewers = [Endpoint(f"viewer{i}", send=(), receive=("audio", "video"), data_channel=False) for i in range(3)]
    sockets = []
    try:
        await reader_ws.send({"type": "offer", "sdp": await publisher.offer()})
        await publisher.accept((await reader_ws.wait("answer"))["sdp"])
        for i, endpoint in enumerate(viewers):
            _, headers = await viewer(client, pool, f"V{i}")
            ws = await SignalingClient.connect(client, headers)
            sockets.append(ws)
            await ws.join_stream(stream["id"])
            await ws.send({"type": "offer", "sdp": await endpoint.offer()})
            await endpoint.accept((await ws.wait("answer"))["sdp"])
        await asyncio.gather(*(v.wait_decoded("video", 5, timeout=20) for v in viewers))
    finally:
        for endpoint in (publisher, *viewers):
            await endpoint.close()
        for ws in (reader_ws, *sockets):
            await ws.close()


async def test_an_abandoned_stream_ends_after_the_grace_period(settings: Settings, pool: asyncpg.Pool) -> None:
    app = create_app(replace(settings, grace_seconds=1))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        _, rh, stream = await live(client)
        _, ah = await viewer(client, pool, "Ann")
        reader_ws, ann_ws = await SignalingClient.connect(client, rh), await SignalingClient.connect(client, ah)
        await reader_ws.join_stream(stream["id"])
        await ann_ws.join_stream(stream["id"])
        await reader_ws.close()
        await ann_ws.wait("stream-state", lambda m: m["status"] == "ended", timeout=10)
        assert await pool.fetchval("SELECT status FROM streams WHERE id = $1", stream["id"]) == "ended"
        assert await pool.fetchval("SELECT status FROM reader_availability WHERE reader_id = $1",
                                   stream["readerId"]) == "offline", "the reader left: not online any more"
        await ann_ws.close()


async def test_a_stream_whose_publisher_never_joins_ends_and_the_reader_goes_offline(settings: Settings,
                                                                                    pool: asyncpg.Pool) -> None:
    app = create_app(replace(settings, grace_seconds=1))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        reader, _, stream = await live(client)  # created over REST; nobody ever joins it
        _, ah = await viewer(client, pool, "Ann")
        ann_ws = await SignalingClient.connect(client, ah)
        await ann_ws.join_stream(stream["id"])
        await ann_ws.wait("stream-state", lambda m: m["status"] == "ended", timeout=10)
        assert await pool.fetchval("SELECT status FROM streams WHERE id = $1", stream["id"]) == "ended"
        availability = await pool.fetchrow("SELECT status, chosen_status FROM reader_availability"
                                           " WHERE reader_id = $1", reader["id"])
        assert tuple(availability) == ("offline", "offline")
        readers = (await (await client.get("/api/webrtc/client/available-readers", headers=ah)).json())["readers"]
        assert reader["id"] not in {r["id"] for r in readers}
        await ann_ws.close()


async def test_a_reader_who_comes_back_in_time_keeps_the_stream(settings: Settings, pool: asyncpg.Pool) -> None:
    app = create_app(replace(settings, grace_seconds=1))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        _, rh, stream = await live(client)
        first = await SignalingClient.connect(client, rh)
        await first.join_stream(stream["id"])
        await first.close()
        again = await SignalingClient.connect(client, rh)
        await again.join_stream(stream["id"])
        # Past the grace period the stream is still live: wait on a condition that would fail if it ended.
        with pytest.raises(TimeoutError):
            await again.wait("stream-state", lambda m: m["status"] == "ended", timeout=2)
        assert await pool.fetchval("SELECT status FROM streams WHERE id = $1", stream["id"]) == "live"
        await again.close()


async def test_a_viewer_asks_the_streaming_reader_for_a_private_reading(client: TestClient,
                                                                       pool: asyncpg.Pool) -> None:
    reader, rh, stream = await live(client)
    await client.post("/api/webrtc/reader/rates", json={"chatCents": 100, "audioCents": 150, "videoCents": 200},
                      headers=rh)
    _, ah = await viewer(client, pool, "Ann", cents=5000)
    reader_ws = await SignalingClient.connect(client, rh)
    await reader_ws.join_stream(stream["id"])
    resp = await client.post("/api/webrtc/client/request-session",
                             json={"readerId": reader["id"], "sessionType": "video", "expectedCents": 200}, headers=ah)
    assert resp.status == 201, await resp.text()
    note = await reader_ws.wait("notification", lambda m: m["kind"] == "session-requested")
    assert note
    await reader_ws.close()


async def test_a_stream_left_live_by_a_previous_process_ends_unless_its_reader_returns(
        settings: Settings, pool: asyncpg.Pool) -> None:
    reader = await pool.fetchval(
        "INSERT INTO users (email, password_hash, display_name, role) VALUES ('r@x.test', 'h', 'R', 'reader')"
        " RETURNING id")
    stale = await pool.fetchval("INSERT INTO streams (reader_id, title) VALUES ($1, 'crashed') RETURNING id", reader)
    app = create_app(replace(settings, grace_seconds=1))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        _, ah = await viewer(client, pool, "Ann")
        ann_ws = await SignalingClient.connect(client, ah)
        await ann_ws.join_stream(str(stale))
        await ann_ws.wait("stream-state", lambda m: m["status"] == "ended", timeout=10)
        assert await pool.fetchval("SELECT status FROM streams WHERE id = $1", stale) == "ended"
        await ann_ws.close()


async def test_a_streams_candidates_are_checked_like_a_readings(client: TestClient) -> None:
    """``sdpMLineIndex: "x"`` on a stream was an ``internal`` error (int("x") deep in the relay)."""
    _, rh, stream = await live(client)
    reader_ws = await SignalingClient.connect(client, rh)
    await reader_ws.join_stream(stream["id"])
    publisher = Endpoint("publisher", send=("audio", "video"), receive=(), data_channel=False)
    try:
        await reader_ws.send({"type": "offer", "sdp": await publisher.offer()})
        await reader_ws.wait("answer")
        host = "candidate:1 1 udp 2122260223 127.0.0.1 54321 typ host"  # loopback: ICE checks stay on this machine
        for candidate in ({"candidate": host, "sdpMLineIndex": "x"}, {"candidate": host, "sdpMid": 5},
                          {"candidate": host.replace("127.0.0.1", "224.0.0.1"), "sdpMid": "0"}, "nope"):
            await reader_ws.send({"type": "ice-candidate", "candidate": candidate})
        errors = await reader_ws.wait_count("error", 4)
        assert [e["code"] for e in errors] == ["bad_candidate"] * 4
        await reader_ws.send({"type": "ice-candidate", "candidate": {"candidate": host, "sdpMid": "0"}})
        await reader_ws.send({"type": "end-stream"})
        await reader_ws.wait("stream-state", lambda m: m["status"] == "ended")
        assert len(reader_ws.of_type("error")) == 4  # the good candidate was taken without a word
    finally:
        await publisher.close()
        await reader_ws.close()
