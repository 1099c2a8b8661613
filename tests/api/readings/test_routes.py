"""Reading endpoints: request, accept, decline, cancel, expiry, end, details, history, notifications, and who may
do what."""

from __future__ import annotations

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from config import Settings
from tests.reading_steps import (
    Signal,
    accept,
    accepted_session,
    quick_user,
    rate_shown,
    reader_and_client,
    request_session,
    running_app,
    session_row,
)

REQUEST = "/api/webrtc/client/request-session"


async def test_a_request_locks_the_readers_rate_and_notifies_the_reader_at_once(
        client: TestClient, pool: asyncpg.Pool) -> None:
    reader, customer = await reader_and_client(client, pool)
    reader_ws = await Signal.open(client, reader)
    body = await request_session(client, customer, reader, "video")
    session = body["session"]
    assert session["status"] == "requested" and session["mode"] == "per_minute"
    assert session["rateCents"] == 240 and session["chargedCents"] == 0 and session["billableSeconds"] == 0
    assert session["clientId"] == customer.id and session["readerId"] == reader.id
    assert session["requestedAt"].endswith("Z") and session["expiresAt"].endswith("Z")
    note = await reader_ws.expect("notification", kind="session-requested")
    assert note["session"]["id"] == session["id"]
    # A later price change does not touch the request.
    await client.post("/api/webrtc/reader/rates", headers=reader.headers, json={"videoCents": 999})
    resp = await client.get(f"/api/webrtc/session/{session['id']}", headers=customer.headers)
    assert (await resp.json())["session"]["rateCents"] == 240


@pytest.mark.parametrize(("setup", "status", "code"), [
    ("offline", 409, "reader_offline"),
    ("not_offered", 409, "not_offered"),
    ("poor", 402, "insufficient_funds"),
    ("unknown", 404, "unknown_reader"),
    ("not_a_reader", 404, "unknown_reader"),
])
async def test_a_request_is_refused_when_it_cannot_be_served(client: TestClient, pool: asyncpg.Pool, setup: str,
                                                              status: int, code: str) -> None:
    reader, customer = await reader_and_client(
        client, pool, online=setup != "offline", balance=100 if setup == "poor" else 10_000,
        # (A reader needs some rate to be online: this one offers video, not chat.)
        rates={"chatCents": 0 if setup == "not_offered" else 120, "videoCents": 240})
    reader_id = reader.id
    if setup == "unknown":
        reader_id = "00000000-0000-4000-8000-000000000000"
    elif setup == "not_a_reader":
        reader_id = (await quick_user(pool, "client")).id
    resp = await client.post(REQUEST, headers=customer.headers,
                             json={"readerId": reader_id, "sessionType": "chat", "expectedCents": 120})
    assert resp.status == status
    assert (await resp.json())["error"]["code"] == code
    assert await pool.fetchval("SELECT count(*) FROM rtc_sessions") == 0


async def test_a_request_at_a_rate_the_reader_has_just_raised_is_refused_and_says_the_new_rate(
        client: TestClient, pool: asyncpg.Pool) -> None:
    reader, customer = await reader_and_client(client, pool)
    shown = await rate_shown(client, customer, reader, "video")
    await client.post("/api/webrtc/reader/rates", headers=reader.headers, json={"videoCents": 999})
    body = await request_session(client, customer, reader, "video", status=409, expected_cents=shown)
    assert body["error"]["code"] == "price_changed" and body["error"]["field"] == "expectedCents"
    assert (body["error"]["priceCents"], body["error"]["expectedCents"]) == (999, shown)
    assert "now costs $9.99/min, not the $2.40/min you were shown" in body["error"]["message"]
    assert await pool.fetchval("SELECT count(*) FROM rtc_sessions") == 0
    # Confirming the new rate is a request at that rate.
    session = (await request_session(client, customer, reader, "video", expected_cents=999))["session"]
    assert session["rateCents"] == 999
    # A lower price than the one shown is a change too: the client confirms what they pay, whatever it is.
    await client.post(f"/api/webrtc/client/cancel-session/{session['id']}", headers=customer.headers)
    await client.post("/api/webrtc/reader/rates", headers=reader.headers, json={"videoCents": 100})
    body = await request_session(client, customer, reader, "video", status=409, expected_cents=999)
    assert body["error"]["priceCents"] == 100


async def test_a_request_body_is_validated(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, customer = await reader_and_client(client, pool)
    for body, field in [({"readerId": reader.id}, "sessionType"), ({"readerId": reader.id, "sessionType": "tarot"},
                        "sessionType"), ({"readerId": "nope", "sessionType": "chat"}, "readerId"),
                        ({"sessionType": "chat"}, "readerId"), ({"readerId": reader.id, "sessionType": "chat"},
                        "expectedCents"), ({"readerId": reader.id, "sessionType": "chat", "expectedCents": 1.2},
                        "expectedCents"), ({"readerId": reader.id, "sessionType": "chat", "expectedCents": "120"},
                        "expectedCents")]:
        resp = await client.post(REQUEST, headers=customer.headers, json=body)
        assert resp.status == 422 and (await resp.json())["error"]["field"] == field


async def test_a_reader_cannot_request_and_a_client_cannot_accept(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, customer = await reader_and_client(client, pool)
    resp = await client.post(REQUEST, headers=reader.headers, json={"readerId": reader.id, "sessionType": "chat"})
    assert resp.status == 403
    session_id = (await request_session(client, customer, reader))["session"]["id"]
    resp = await client.post(f"/api/webrtc/reader/accept-session/{session_id}", headers=customer.headers)
    assert resp.status == 403
    assert (await session_row(pool, session_id))["status"] == "requested"


async def test_a_client_cannot_request_while_one_of_theirs_is_pending(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, customer = await reader_and_client(client, pool)
    other_reader, _ = await reader_and_client(client, pool)
    await request_session(client, customer, reader)
    body = await request_session(client, customer, other_reader, status=409)
    assert body["error"]["code"] == "session_pending"


async def test_the_database_itself_refuses_a_second_open_reading(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, customer = await reader_and_client(client, pool)
    other, _ = await reader_and_client(client, pool)
    sql = ("INSERT INTO rtc_sessions (client_id, reader_id, session_type, rate_cents, status)"
           " VALUES ($1, $2, 'chat', 1, $3)")
    await pool.execute(sql, customer.id, reader.id, "requested")
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute(sql, customer.id, other.id, "requested")
    _, second_client = await reader_and_client(client, pool)
    await pool.execute(sql, second_client.id, other.id, "active")
    _, third_client = await reader_and_client(client, pool)
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute(sql, third_client.id, other.id, "active")


async def test_accepting_notifies_the_client_and_a_busy_reader_takes_no_request(
        client: TestClient, pool: asyncpg.Pool) -> None:
    reader, first = await reader_and_client(client, pool)
    _, second = await reader_and_client(client, pool)
    first_ws = await Signal.open(client, first)
    one = (await request_session(client, first, reader))["session"]["id"]
    session = (await accept(client, reader, one))["session"]
    assert session["status"] == "accepted" and session["acceptedAt"]
    note = await first_ws.expect("notification", kind="session-accepted")
    assert note["session"]["id"] == one
    # A second request to a busy reader is refused; accepting twice is a conflict.
    body = await request_session(client, second, reader, status=409)
    assert body["error"]["code"] == "reader_busy"
    body = await accept(client, reader, one, status=409)
    assert body["error"]["code"] == "wrong_state"


async def test_a_reader_with_a_live_reading_cannot_accept_another(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, first = await reader_and_client(client, pool)
    _, second = await reader_and_client(client, pool)
    one = (await request_session(client, first, reader))["session"]["id"]
    two = (await request_session(client, second, reader))["session"]["id"]
    await accept(client, reader, one)
    body = await accept(client, reader, two, status=409)
    assert body["error"]["code"] == "reader_busy"
    assert (await session_row(pool, two))["status"] == "requested"


async def test_decline_tells_the_client_and_frees_them_to_ask_again(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, customer = await reader_and_client(client, pool)
    customer_ws = await Signal.open(client, customer)
    session_id = (await request_session(client, customer, reader))["session"]["id"]
    resp = await client.post(f"/api/webrtc/reader/decline-session/{session_id}", headers=reader.headers)
    body = await resp.json()
    assert resp.status == 200 and body["session"]["status"] == "declined" and body["session"]["endedAt"]
    await customer_ws.expect("notification", kind="session-declined")
    resp = await client.post(f"/api/webrtc/reader/decline-session/{session_id}", headers=reader.headers)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "reading_closed"
    await request_session(client, customer, reader)


async def test_a_client_cancels_before_accept_but_not_after(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, customer = await reader_and_client(client, pool)
    reader_ws = await Signal.open(client, reader)
    session_id = (await request_session(client, customer, reader))["session"]["id"]
    resp = await client.post(f"/api/webrtc/client/cancel-session/{session_id}", headers=reader.headers)
    assert resp.status == 403
    resp = await client.post(f"/api/webrtc/client/cancel-session/{session_id}", headers=customer.headers)
    assert resp.status == 200 and (await resp.json())["session"]["status"] == "cancelled"
    await reader_ws.expect("notification", kind="session-cancelled")
    session_id = (await request_session(client, customer, reader))["session"]["id"]
    await accept(client, reader, session_id)
    resp = await client.post(f"/api/webrtc/client/cancel-session/{session_id}", headers=customer.headers)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "wrong_state"


async def test_an_unanswered_request_expires_and_the_client_is_told(settings: Settings, pool: asyncpg.Pool) -> None:
    async with running_app(settings, request_expiry_seconds=1) as http:
        reader, customer = await reader_and_client(http, pool)
        customer_ws = await Signal.open(http, customer)
        session_id = (await request_session(http, customer, reader))["session"]["id"]
        note = await customer_ws.expect("notification", kind="session-expired", timeout=6)
        assert note["session"]["id"] == session_id and note["session"]["status"] == "expired"
        row = await session_row(pool, session_id)
        assert row["status"] == "expired" and row["end_reason"] == "expired"
        body = await accept(http, reader, session_id, status=409)
        assert body["error"]["code"] == "reading_closed"
        # Stored too, for the reader who was not connected.
        resp = await http.get("/api/notifications", headers=reader.headers)
        kinds = [n["kind"] for n in (await resp.json())["notifications"]]
        assert kinds[:2] == ["session-expired", "session-requested"]


async def test_only_the_two_participants_can_see_or_end_a_reading(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, customer = await reader_and_client(client, pool)
    stranger = await quick_user(pool, "client")
    other_reader = await quick_user(pool, "reader")
    session_id = await accepted_session(client, reader, customer)
    for who in (stranger, other_reader):
        for method, path in [("GET", f"/api/webrtc/session/{session_id}"),
                             ("GET", f"/api/webrtc/session/{session_id}/transcript"),
                             ("POST", f"/api/webrtc/session/{session_id}/end")]:
            resp = await client.request(method, path, headers=who.headers)
            assert resp.status == 404, (path, await resp.text())
    resp = await client.post(f"/api/webrtc/reader/accept-session/{session_id}", headers=other_reader.headers)
    assert resp.status in (403, 404)
    for who in (customer, reader):
        resp = await client.get(f"/api/webrtc/session/{session_id}", headers=who.headers)
        assert resp.status == 200
    assert (await session_row(pool, session_id))["status"] == "accepted"
    assert (await client.get("/api/webrtc/session/not-a-uuid", headers=customer.headers)).status == 404


async def test_a_logged_out_token_is_refused(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, customer = await reader_and_client(client, pool)
    session_id = await accepted_session(client, reader, customer)
    assert (await client.post("/api/auth/logout", headers=customer.headers)).status == 200
    resp = await client.get(f"/api/webrtc/session/{session_id}", headers=customer.headers)
    assert resp.status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws", headers=customer.headers)
    assert refused.value.status == 401


async def test_ending_an_accepted_reading_before_it_starts_costs_nothing(
        client: TestClient, pool: asyncpg.Pool) -> None:
    reader, customer = await reader_and_client(client, pool)
    session_id = await accepted_session(client, reader, customer)
    resp = await client.post(f"/api/webrtc/session/{session_id}/end", headers=customer.headers)
    session = (await resp.json())["session"]
    assert session["status"] == "ended" and session["endReason"] == "ended_by_client"
    assert session["chargedCents"] == 0
    resp = await client.post(f"/api/webrtc/session/{session_id}/end", headers=customer.headers)
    assert resp.status == 409


async def test_history_lists_a_users_readings_for_both_sides(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, customer = await reader_and_client(client, pool)
    first = (await request_session(client, customer, reader))["session"]["id"]
    await client.post(f"/api/webrtc/reader/decline-session/{first}", headers=reader.headers)
    second = await accepted_session(client, reader, customer)
    for who in (customer, reader):
        resp = await client.get("/api/webrtc/sessions", headers=who.headers)
        assert [s["id"] for s in (await resp.json())["sessions"]] == [second, first]
    resp = await client.get("/api/webrtc/sessions?status=declined", headers=customer.headers)
    assert [s["id"] for s in (await resp.json())["sessions"]] == [first]
    stranger = await quick_user(pool, "client")
    assert (await (await client.get("/api/webrtc/sessions", headers=stranger.headers)).json())["sessions"] == []


async def test_notifications_are_stored_listed_and_marked_read(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, customer = await reader_and_client(client, pool)
    session_id = await accepted_session(client, reader, customer)
    resp = await client.get("/api/notifications", headers=customer.headers)
    body = await resp.json()
    assert body["unreadCount"] == 1
    note = body["notifications"][0]
    assert note["kind"] == "session-accepted" and note["session"]["id"] == session_id and note["readAt"] is None
    stranger = await quick_user(pool, "client")
    assert (await client.post(f"/api/notifications/{note['id']}/read", headers=stranger.headers)).status == 404
    resp = await client.post(f"/api/notifications/{note['id']}/read", headers=customer.headers)
    assert (await resp.json())["notification"]["readAt"]
    resp = await client.get("/api/notifications?unread=true", headers=customer.headers)
    assert (await resp.json()) == {"notifications": [], "unreadCount": 0}
    resp = await client.post("/api/notifications/read-all", headers=reader.headers)
    assert (await resp.json())["updated"] == 1
    assert (await client.get("/api/notifications")).status == 401
