"""Free accounts cannot fill the relay: stream connections are capped per user and per address, stalled offers
give their slots back, and a paid reading is never refused for capacity viewers hold."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from api.core.keys import RELAY
from api.realtime.transport import SOCKETS
from api.streams.signaling import STREAM_SIGNALING
from config import Settings
from tests.reading_steps import Party, Signal, accepted_session, quick_user, reader_and_client, running_app
from tests.reading_steps import wait_for as wait_until
from tests.relay.endpoints import Endpoint

pytestmark = pytest.mark.slow


async def _stalled_viewer(http: object, party: Party, stream_id: str, name: str) -> tuple[Signal, Endpoint, dict]:
    """A socket on the stream that offers and never applies the answer (ICE never completes)."""
    ws = await Signal.open(http, party)  # type: ignore[arg-type]
    await ws.send("join", streamId=stream_id)
    await ws.expect("joined")
    endpoint = Endpoint(name, send=(), receive=("audio", "video"))
    await ws.send("offer", sdp=await endpoint.offer())
    while True:
        reply = await ws.receive(timeout=10)
        if reply["type"] in ("answer", "error"):
            return ws, endpoint, reply


async def open_house(http: TestClient, pool: asyncpg.Pool) -> str:
    """A reader's live stream, "Open house"; its id."""
    streamer = await quick_user(pool, "reader", "Streamer")
    resp = await http.post("/api/streams", json={"title": "Open house"}, headers=streamer.headers)
    return str((await resp.json())["stream"]["id"])


async def test_two_free_accounts_cannot_take_a_small_relay_from_a_paid_reading(settings: Settings,
                                                                                 pool: asyncpg.Pool) -> None:
    # The numbers: a 12-slot relay, two free accounts with eight sockets each (the per-user socket cap).
    async with running_app(settings, max_participants=12, reserved_reading_participants=2) as http:
        stream_id = await open_house(http, pool)
        attackers = [await quick_user(pool, "client", f"Free {n}") for n in range(2)]
        held: list[tuple[Signal, Endpoint]] = []
        replies = []
        try:
            for attacker in attackers:
                for n in range(8):
                    ws, endpoint, reply = await _stalled_viewer(http, attacker, stream_id, f"{attacker.id}-{n}")
                    held.append((ws, endpoint))
                    replies.append(reply)
            answered = [r for r in replies if r["type"] == "answer"]
            refused = [r for r in replies if r["type"] == "error"]
            assert len(answered) == 2 * settings.stream_participants_per_user
            assert {r["code"] for r in refused} == {"too_many_participants"}

            reader, client = await reader_and_client(http, pool)
            session_id = await accepted_session(http, reader, client, "audio")
            for party, name in ((client, "client"), (reader, "reader")):
                ws = await Signal.open(http, party)
                await ws.join(session_id)
                endpoint = Endpoint(name, send=("audio",), receive=("audio",))
                held.append((ws, endpoint))
                await ws.send("offer", sdp=await endpoint.offer())
                answer = await ws.expect("answer", timeout=10)
                await endpoint.accept(answer["sdp"])
        finally:
            for ws, endpoint in held:
                await endpoint.close()
                await ws.close()


async def test_a_stalled_viewer_gives_its_place_back_within_the_connect_timeout(settings: Settings,
                                                                                pool: asyncpg.Pool) -> None:
    async with running_app(settings, stream_participants_per_user=1, connect_timeout_seconds=1) as http:
        stream_id = await open_house(http, pool)
        viewer = await quick_user(pool, "client", "Viewer")
        first_ws, first, reply = await _stalled_viewer(http, viewer, stream_id, "first")
        second_ws, second, refused = await _stalled_viewer(http, viewer, stream_id, "second")
        try:
            assert reply["type"] == "answer"
            assert refused["type"] == "error" and refused["code"] == "too_many_participants"
            caps = http.app[STREAM_SIGNALING].participants

            async def released() -> bool:
                return caps.held(user_id=viewer.id) == 0

            await wait_until(released, timeout=10)
            assert http.app[RELAY].participant_state(f"stream:{stream_id}:publisher") is None
            await second_ws.send("offer", sdp=await second.offer())
            assert (await second_ws.expect("answer", timeout=10))["sdp"]
        finally:
            for ws, endpoint in ((first_ws, first), (second_ws, second)):
                await endpoint.close()
                await ws.close()


async def test_stream_connections_are_capped_per_address_across_accounts(settings: Settings,
                                                                         pool: asyncpg.Pool) -> None:
    async with running_app(settings, stream_participants_per_address=3) as http:
        stream_id = await open_house(http, pool)
        held = []
        codes = []
        try:
            for n in range(4):
                viewer = await quick_user(pool, "client", f"Viewer {n}")
                ws, endpoint, reply = await _stalled_viewer(http, viewer, stream_id, f"v{n}")
                held.append((ws, endpoint))
                codes.append(reply.get("code", reply["type"]))
            assert codes == ["answer", "answer", "answer", "too_many_participants"]
        finally:
            for ws, endpoint in held:
                await endpoint.close()
                await ws.close()


async def test_signaling_sockets_are_capped_per_address(settings: Settings, pool: asyncpg.Pool) -> None:
    async with running_app(settings, sockets_per_address=2) as http:
        parties = [await quick_user(pool, "client", f"P{n}") for n in range(3)]
        first, second = await Signal.open(http, parties[0]), await Signal.open(http, parties[1])
        upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "x3JJHMbDL1EzLkh9GBhXDw=="}
        resp = await http.get("/ws", headers={**parties[2].headers, **upgrade})
        assert resp.status == 429
        assert (await resp.json())["error"]["code"] == "too_many_connections"
        await first.close()

        async def room() -> bool:
            return http.app[SOCKETS].held(address="127.0.0.1") < 2

        await wait_until(room)  # the closed socket's clean-up runs on its own task
        third = await Signal.open(http, parties[2])
        await second.close()
        await third.close()
