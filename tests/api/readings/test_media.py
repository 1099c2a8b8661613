"""Readings end to end with media: real aiortc peers play the two browsers through HTTP and ``/ws``; the
reading starts when both peers' media connect, frames decode on both sides, and the bill follows the meter."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from api.readings.live import LIVE_READINGS
from billing import ledger
from billing.meter import net_cents
from config import Settings
from tests.api.helpers import login, register
from tests.reading_steps import Party, Signal, deposit, relogin, running_app, session_row, wait_for
from tests.relay.endpoints import Endpoint

pytestmark = pytest.mark.slow

VIDEO_RATE = 240


async def connect_media(ws: Signal, name: str, **kw: object) -> Endpoint:
    """Offer from a browser-like aiortc peer over signaling and apply the relay's answer."""
    endpoint = Endpoint(name, **kw)  # type: ignore[arg-type]
    await ws.send("offer", sdp=await endpoint.offer())
    answer = await ws.expect("answer", timeout=10)
    await endpoint.accept(answer["sdp"])
    return endpoint


async def _account(http: TestClient, role: str, name: str) -> Party:
    user = await register(http, role, name=name)
    session = await login(http, user["email"])
    http.session.cookie_jar.clear()
    return Party(user, {"Authorization": f"Bearer {session['token']}"})


async def test_a_video_reading_from_request_to_bill(settings: Settings, pool: asyncpg.Pool) -> None:
    async with running_app(settings) as http:
        reader = await _account(http, "reader", "Madame Iris")
        client = await _account(http, "client", "Sam")
        await http.post("/api/webrtc/reader/rates", headers=reader.headers, json={"videoCents": VIDEO_RATE})
        await http.post("/api/webrtc/reader/availability", headers=reader.headers, json={"status": "online"})
        await deposit(pool, client.id, 5_000)
        reader_ws, client_ws = await Signal.open(http, reader), await Signal.open(http, client)
        resp = await http.post("/api/webrtc/client/request-session", headers=client.headers,
                               json={"readerId": reader.id, "sessionType": "video",
                                     "expectedCents": VIDEO_RATE})
        session_id = (await resp.json())["session"]["id"]
        await reader_ws.expect("notification", kind="session-requested")
        resp = await http.post(f"/api/webrtc/reader/accept-session/{session_id}", headers=reader.headers)
        assert resp.status == 200
        await client_ws.expect("notification", kind="session-accepted")
        await client_ws.join(session_id)
        await reader_ws.join(session_id)
        peers = [await connect_media(client_ws, "client"), await connect_media(reader_ws, "reader")]
        try:
            start = await client_ws.expect("start-session", timeout=15)
            await reader_ws.expect("start-session")
            assert start["session"]["status"] == "active"
            for peer in peers:  # media flows both ways and decodes
                await peer.wait_decoded("video", 10, timeout=15)
                await peer.wait_decoded("audio", 10, timeout=15)
            await client_ws.send("chat-message", text="Hello from the client")
            assert (await reader_ws.expect("chat-message"))["text"] == "Hello from the client"
            await reader_ws.send("chat-message", text="Hello from the reader")
            assert (await client_ws.expect("chat-message", role="reader"))["text"] == "Hello from the reader"
            await client_ws.expect("session-state", timeout=5)
            resp = await http.post(f"/api/webrtc/session/{session_id}/end", headers=client.headers)
            ended = (await resp.json())["session"]
        finally:
            for peer in peers:
                await peer.close()
        assert ended["status"] == "ended" and ended["endReason"] == "ended_by_client"
        await reader_ws.expect("end-session")
        row = await session_row(pool, session_id)
        # The bill is the meter's: whole billed seconds at the locked rate, rounded up to the cent.
        assert row["charged_cents"] == net_cents(VIDEO_RATE, row["meter_billable_seconds"]) > 0
        assert await ledger.balance(pool, client.id) == 5_000 - row["charged_cents"]
        resp = await http.get(f"/api/webrtc/session/{session_id}/transcript", headers=reader.headers)
        texts = [m["text"] for m in (await resp.json())["messages"]]
        assert texts == ["Hello from the client", "Hello from the reader"]
        for who in (client, reader):
            resp = await http.get("/api/webrtc/sessions", headers=who.headers)
            assert [s["id"] for s in (await resp.json())["sessions"]] == [session_id]
        resp = await http.get("/api/notifications", headers=client.headers)
        kinds = [n["kind"] for n in (await resp.json())["notifications"]]
        assert kinds == ["session-ended", "session-accepted"]
        relay = http.app[LIVE_READINGS].relay

        async def peers_gone() -> bool:
            return all(relay.participant_state(f"{session_id}:{r}") is None for r in ("client", "reader"))

        await wait_for(peers_gone)


async def _active_video_reading(http: TestClient, pool: asyncpg.Pool) -> tuple[str, Party, Signal, Signal,
                                                                             list[Endpoint]]:
    from tests.reading_steps import accepted_session, reader_and_client

    reader, client = await reader_and_client(http, pool)
    session_id = await accepted_session(http, reader, client, "video")
    client_ws, reader_ws = await Signal.open(http, client), await Signal.open(http, reader)
    await client_ws.join(session_id)
    await reader_ws.join(session_id)
    peers = [await connect_media(client_ws, "client"), await connect_media(reader_ws, "reader")]
    await client_ws.expect("start-session", timeout=15)
    return session_id, client, client_ws, reader_ws, peers


async def test_a_dropped_participant_rejoins_within_grace_and_the_gap_is_not_billed(
        settings: Settings, pool: asyncpg.Pool) -> None:
    async with running_app(settings, grace_seconds=3) as http:
        session_id, client, client_ws, reader_ws, peers = await _active_video_reading(http, pool)
        try:
            # The client's network drops: its socket and its peer connection are gone.
            dropped_at = time.monotonic()
            await client_ws.close()
            await peers[0].close()
            paused = await reader_ws.expect("session-state", running=False, timeout=5,
                                            connected={"client": False, "reader": True})
            billed_before = paused["billableSeconds"]
            await asyncio.sleep(1.0)  # stay away a while (the gap under test), well within the 3 s grace
            client_ws = await Signal.open(http, await relogin(pool, client))
            await client_ws.join(session_id)
            peers[0] = await connect_media(client_ws, "client-again")
            resumed = await reader_ws.expect("session-state", running=True, timeout=10,
                                             connected={"client": True, "reader": True})
            gap = time.monotonic() - dropped_at
            await peers[0].wait_decoded("video", 5, timeout=15)
            assert resumed["billableSeconds"] <= billed_before + 1
            row = await session_row(pool, session_id)
            assert row["status"] == "active"
            state = await client_ws.expect("session-state", timeout=5)
            elapsed = time.monotonic() - dropped_at
            assert state["billableSeconds"] <= billed_before + (elapsed - gap) + 2
        finally:
            for peer in peers:
                await peer.close()


async def test_a_participant_away_past_grace_ends_the_reading_with_media(
        settings: Settings, pool: asyncpg.Pool) -> None:
    async with running_app(settings, grace_seconds=2) as http:
        session_id, client, client_ws, reader_ws, peers = await _active_video_reading(http, pool)
        try:
            await client_ws.close()
            await peers[0].close()
            end = await reader_ws.expect("end-session", timeout=10)
            assert end["reason"] == "grace_expired"
            row = await session_row(pool, session_id)
            assert row["status"] == "ended" and row["charged_cents"] == net_cents(240, row["meter_billable_seconds"])
            assert await ledger.balance(pool, client.id) == 10_000 - row["charged_cents"]
        finally:
            for peer in peers:
                await peer.close()
