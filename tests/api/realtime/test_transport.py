"""The signaling WebSocket: who may open it and join what, and that every bad message gets an ``error`` while the
socket keeps working (or is closed with a clear code, for abuse)."""

from __future__ import annotations

import json
from dataclasses import replace

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from api.accounts.auth import COOKIE
from api.readings import signaling as reading_signaling
from api.readings.live import LIVE_READINGS
from api.realtime import socket as signaling_socket
from api.realtime import transport as signaling
from config import Settings
from tests.reading_steps import (
    Signal,
    accepted_session,
    quick_user,
    reader_and_client,
    request_session,
    running_app,
    started_reading,
)
from tests.relay.endpoints import Endpoint


async def test_an_anonymous_socket_is_refused(client: TestClient) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws")
    assert refused.value.status == 401


async def test_cookie_auth_checks_the_origin_against_cross_site_hijacking(client: TestClient,
                                                                         pool: asyncpg.Pool) -> None:
    user = await quick_user(pool, "client")
    token = user.headers["Authorization"].removeprefix("Bearer ")
    client.session.cookie_jar.update_cookies({COOKIE: token})  # as the browser holds it after login
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws", headers={"Origin": "https://evil.example"})
    assert refused.value.status == 403
    host = f"http://{client.host}:{client.port}"
    ws = await client.ws_connect("/ws", headers={"Origin": host})
    await ws.send_str(json.dumps({"type": "ping"}))
    assert json.loads((await ws.receive()).data) == {"type": "pong"}
    await ws.close()


async def test_only_the_two_participants_join_and_the_client_only_after_acceptance(
        client: TestClient, pool: asyncpg.Pool) -> None:
    reader, customer = await reader_and_client(client, pool)
    session_id = (await request_session(client, customer, reader))["session"]["id"]
    customer_ws = await Signal.open(client, customer)
    await customer_ws.send("join", sessionId=session_id)
    assert (await customer_ws.expect("error"))["code"] == "not_accepted"
    stranger_ws = await Signal.open(client, await quick_user(pool, "client"))
    other_reader_ws = await Signal.open(client, await quick_user(pool, "reader"))
    await client.post(f"/api/webrtc/reader/accept-session/{session_id}", headers=reader.headers)
    for ws in (stranger_ws, other_reader_ws):
        await ws.send("join", sessionId=session_id)
        assert (await ws.expect("error"))["code"] == "unknown_session"
        await ws.send("end-session")
        assert (await ws.expect("error"))["code"] == "not_joined"
    joined = await customer_ws.join(session_id)
    assert joined["role"] == "client" and joined["iceServers"] == [] and joined["session"]["id"] == session_id


async def test_joined_carries_turn_credentials_for_the_user(settings: Settings, pool: asyncpg.Pool) -> None:
    turn = ({"urls": ["turn:turn.example.test:3478"]},)
    async with running_app(settings, ice_servers=turn, turn_shared_secret="test-turn-secret") as http:
        reader, customer = await reader_and_client(http, pool)
        session_id = await accepted_session(http, reader, customer)
        joined = await (await Signal.open(http, customer)).join(session_id)
        server = joined["iceServers"][0]
        assert server["urls"] == ["turn:turn.example.test:3478"]
        assert server["username"].endswith(f":{customer.id}") and server["credential"]


BAD_MESSAGES = [
    ("{not json", "malformed_json"),
    ("[1, 2]", "bad_message"),
    ('"join"', "bad_message"),
    ('{"sessionId": "x"}', "bad_message"),
    ('{"type": 7}', "bad_message"),
    ('{"type": "dance"}', "unknown_type"),
    ('{"type": "join"}', "missing_field"),
    ('{"type": "join", "sessionId": 12}', "bad_field"),
    ('{"type": "join", "sessionId": "not-a-uuid"}', "unknown_session"),
    ('{"type": "join", "sessionId": "00000000-0000-4000-8000-000000000000"}', "unknown_session"),
    ('{"type": "offer", "sdp": "v=0"}', "not_joined"),
    ('{"type": "ice-candidate", "candidate": {"candidate": ""}}', "not_joined"),
    ('{"type": "chat-message", "text": "hi"}', "not_joined"),
    ('{"type": "end-session"}', "not_joined"),
    ('{"type": "leave"}', "not_joined"),
]


async def test_every_bad_message_gets_an_error_and_the_socket_stays_usable(client: TestClient,
                                                                         pool: asyncpg.Pool) -> None:
    ws = await Signal.open(client, await quick_user(pool, "client"))
    for raw, code in BAD_MESSAGES:
        await ws.ws.send_str(raw)
        error = await ws.expect("error")
        assert (error["code"], bool(error["message"])) == (code, True), raw
        await ws.send("ping")
        await ws.expect("pong")


async def test_messages_in_the_wrong_state_are_refused_and_change_nothing(
        client: TestClient, pool: asyncpg.Pool) -> None:
    reader, customer = await reader_and_client(client, pool)
    session_id = await accepted_session(client, reader, customer)
    ws = await Signal.open(client, customer)
    await ws.join(session_id)
    await ws.send("chat-message", text="before it starts")
    assert (await ws.expect("error"))["code"] == "wrong_state"
    await ws.send("offer", sdp="v=0")  # a chat reading has no media
    assert (await ws.expect("error"))["code"] == "no_media"
    await ws.send("chat-message", text="")
    assert (await ws.expect("error"))["code"] in {"wrong_state", "invalid"}
    await ws.send("ice-candidate", candidate="nope")
    assert (await ws.expect("error"))["code"] == "bad_candidate"
    assert await pool.fetchval("SELECT count(*) FROM reading_messages") == 0
    assert await pool.fetchval("SELECT status FROM rtc_sessions WHERE id = $1", session_id) == "accepted"


async def test_a_bad_offer_is_the_relays_error_and_leaves_no_peer(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, customer = await reader_and_client(client, pool)
    session_id = await accepted_session(client, reader, customer, "video")
    ws = await Signal.open(client, customer)
    await ws.join(session_id)
    await ws.send("offer", sdp="v=0\r\nthis is not sdp\r\n")
    assert (await ws.expect("error"))["code"] == "bad_sdp"
    relay = client.app[LIVE_READINGS].relay
    assert relay.participant_state(f"{session_id}:client") is None


@pytest.mark.parametrize("spoil", ["holdconn", "payload types"])
async def test_an_offer_aiortc_would_choke_on_is_bad_sdp_not_internal(client: TestClient, pool: asyncpg.Pool,
                                                                       spoil: str) -> None:
    """The issue's ``a=setup:holdconn`` (KeyError) and an m-line of 8000 payload types (AssertionError)."""
    endpoint = Endpoint("client")
    offer = await endpoint.offer()
    await endpoint.close()
    if spoil == "holdconn":
        offer = offer.replace("a=setup:actpass", "a=setup:holdconn")
    else:
        video = next(line for line in offer.splitlines() if line.startswith("m=video"))
        offer = offer.replace(video, " ".join(video.split()[:3] + [str(pt) for pt in range(8000)]))
        assert len(offer) < reading_signaling.MAX_SDP_BYTES
    reader, customer = await reader_and_client(client, pool)
    session_id = await accepted_session(client, reader, customer, "video")
    ws = await Signal.open(client, customer)
    await ws.join(session_id)
    await ws.send("offer", sdp=offer)
    assert (await ws.expect("error"))["code"] == "bad_sdp"
    assert client.app[LIVE_READINGS].relay.participant_state(f"{session_id}:client") is None


async def test_an_oversized_message_gets_an_error_and_a_huge_frame_closes_the_socket(
        client: TestClient, pool: asyncpg.Pool) -> None:
    ws = await Signal.open(client, await quick_user(pool, "client"))
    await ws.send("chat-message", text="x" * (signaling.MAX_MESSAGE_BYTES + 10))
    assert (await ws.expect("error"))["code"] == "too_large"
    await ws.send("ping")
    await ws.expect("pong")
    await ws.ws.send_str("x" * (signaling.MAX_FRAME_BYTES + 10))
    assert await ws.closed() == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


async def test_binary_frames_are_refused(client: TestClient, pool: asyncpg.Pool) -> None:
    ws = await Signal.open(client, await quick_user(pool, "client"))
    await ws.ws.send_bytes(b"\x00\x01")
    assert (await ws.expect("error"))["code"] == "bad_message"


async def test_a_flood_is_rate_limited_then_closed(client: TestClient, pool: asyncpg.Pool) -> None:
    ws = await Signal.open(client, await quick_user(pool, "client"))
    burst = signaling.MESSAGES_PER_WINDOW + signaling.ABUSE_REFUSALS + 20
    for _ in range(burst):
        await ws.ws.send_str('{"type": "ping"}')
    assert await ws.closed(timeout=10) == signaling_socket.CLOSE_RATE_LIMITED
    codes = [m.get("code") for m in ws.seen if m["type"] == "error"]
    assert "rate_limited" in codes
    assert sum(m["type"] == "pong" for m in ws.seen) == signaling.MESSAGES_PER_WINDOW


async def test_a_logout_closes_the_sockets_of_that_login_at_once(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, customer = await reader_and_client(client, pool)
    await accepted_session(client, reader, customer)
    ws = await Signal.open(client, customer)
    reader_ws = await Signal.open(client, reader)
    assert (await client.post("/api/auth/logout", headers=customer.headers)).status == 200
    # Without sending anything, the logged-out tab is told and closed; the other user's socket stays up.
    assert (await ws.expect("error"))["code"] == "unauthorized"
    assert await ws.closed() == signaling_socket.CLOSE_UNAUTHORIZED
    await reader_ws.send("ping")
    await reader_ws.expect("pong")


async def test_a_socket_of_a_revoked_login_cannot_join(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, customer = await reader_and_client(client, pool)
    session_id = await accepted_session(client, reader, customer)
    ws = await Signal.open(client, customer)
    # Revoked behind the node's back (another node's logout, an operator): the next join still checks.
    await pool.execute("UPDATE auth_sessions SET revoked_at = now() WHERE user_id = $1", customer.id)
    await ws.send("join", sessionId=session_id)
    assert (await ws.expect("error"))["code"] == "unauthorized"
    assert await ws.closed() == signaling_socket.CLOSE_UNAUTHORIZED


async def test_chat_is_relayed_to_both_and_stored_for_the_two_only(client: TestClient, pool: asyncpg.Pool) -> None:
    session_id, customer, reader, customer_ws, reader_ws = await started_reading(client, pool)
    await customer_ws.send("chat-message", text="  Will I find love?  ")
    for ws in (customer_ws, reader_ws):
        message = await ws.expect("chat-message")
        assert message["from"] == customer.id and message["text"] == "Will I find love?" and message["at"]
    await reader_ws.send("chat-message", text="Yes.")
    assert (await customer_ws.expect("chat-message"))["text"] == "Yes."
    for who in (customer, reader):
        resp = await client.get(f"/api/webrtc/session/{session_id}/transcript", headers=who.headers)
        messages = (await resp.json())["messages"]
        assert [(m["role"], m["text"]) for m in messages] == [("client", "Will I find love?"), ("reader", "Yes.")]
    stranger = await quick_user(pool, "reader")
    resp = await client.get(f"/api/webrtc/session/{session_id}/transcript", headers=stranger.headers)
    assert resp.status == 404


async def test_a_second_tab_takes_over_and_the_first_is_told(client: TestClient, pool: asyncpg.Pool) -> None:
    from tests.reading_steps import relogin

    reader, customer = await reader_and_client(client, pool)
    session_id = await accepted_session(client, reader, customer)
    first = await Signal.open(client, customer)
    await first.join(session_id)
    second = await Signal.open(client, await relogin(pool, customer))
    await second.join(session_id)
    assert (await first.expect("error"))["code"] == "replaced"
    await second.send("ping")
    await second.expect("pong")


def test_heartbeat_closes_a_silent_socket_within_45_seconds() -> None:
    # aiohttp pings every `heartbeat` seconds and closes when the pong is not back within half of it.
    assert signaling.HEARTBEAT * 1.5 <= 45


async def test_the_socket_limit_per_user_closes_the_oldest(settings: Settings, pool: asyncpg.Pool) -> None:
    async with running_app(replace(settings)) as http:
        user = await quick_user(pool, "client")
        sockets = [await Signal.open(http, user) for _ in range(signaling.MAX_SOCKETS_PER_USER + 1)]
        assert await sockets[0].closed() == aiohttp.WSCloseCode.POLICY_VIOLATION
        await sockets[-1].send("ping")
        await sockets[-1].expect("pong")
