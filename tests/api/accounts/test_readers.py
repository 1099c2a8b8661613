"""Reader endpoints: rates, availability (busy set by the system), and the readers a client can book."""

from __future__ import annotations

import asyncpg
from aiohttp.test_utils import TestClient

from tests.reading_steps import accepted_session, quick_user, reader_and_client

RATES = "/api/webrtc/reader/rates"
AVAILABILITY = "/api/webrtc/reader/availability"
READERS = "/api/webrtc/client/available-readers"


async def test_a_new_reader_offers_nothing_until_they_set_rates(client: TestClient, pool: asyncpg.Pool) -> None:
    reader = await quick_user(pool, "reader")
    resp = await client.get(RATES, headers=reader.headers)
    assert resp.status == 200
    assert await resp.json() == {"chatCents": 0, "audioCents": 0, "videoCents": 0, "messageCents": 0,
                                 "flatCents": {"15": 0, "30": 0, "45": 0, "60": 0}}


async def test_rates_are_set_in_integer_cents_and_fields_left_out_keep_their_value(
        client: TestClient, pool: asyncpg.Pool) -> None:
    reader = await quick_user(pool, "reader")
    resp = await client.post(RATES, headers=reader.headers, json={"chatCents": 150, "flatCents": {"30": 4000}})
    assert resp.status == 200
    resp = await client.post(RATES, headers=reader.headers, json={"videoCents": 399, "messageCents": 50})
    body = await resp.json()
    assert body["chatCents"] == 150 and body["videoCents"] == 399 and body["messageCents"] == 50
    assert body["flatCents"] == {"15": 0, "30": 4000, "45": 0, "60": 0}
    assert await (await client.get(RATES, headers=reader.headers)).json() == body


async def test_bad_rates_are_refused_with_the_field_named(client: TestClient, pool: asyncpg.Pool) -> None:
    reader = await quick_user(pool, "reader")
    for body, field in [({"chatCents": 1.5}, "chatCents"), ({"audioCents": -1}, "audioCents"),
                        ({"videoCents": "300"}, "videoCents"), ({"chatCents": True}, "chatCents"),
                        ({"flatCents": {"20": 100}}, "flatCents"), ({"flatCents": [1, 2]}, "flatCents"),
                        ({"flatCents": {"15": 2.5}}, "15"), ({"priceCents": 5}, "priceCents")]:
        resp = await client.post(RATES, headers=reader.headers, json=body)
        assert resp.status == 422, body
        assert (await resp.json())["error"]["field"] == field
    assert (await (await client.get(RATES, headers=reader.headers)).json())["chatCents"] == 0


async def test_reader_endpoints_are_for_readers_only(client: TestClient, pool: asyncpg.Pool) -> None:
    someone = await quick_user(pool, "client")
    for method, path in [("GET", RATES), ("POST", RATES), ("POST", AVAILABILITY),
                         ("GET", "/api/webrtc/reader/sessions")]:
        resp = await client.request(method, path, headers=someone.headers, json={"status": "online"})
        assert resp.status == 403, path
        assert (await resp.json())["error"]["code"] == "wrong_role"
        assert (await client.request(method, path, json={})).status == 401


async def test_available_readers_are_the_online_ones_with_their_rates(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, customer = await reader_and_client(client, pool)
    offline = await quick_user(pool, "reader", "Away")
    resp = await client.get(READERS, headers=customer.headers)
    readers = (await resp.json())["readers"]
    assert [r["id"] for r in readers] == [reader.id]
    assert readers[0]["status"] == "online" and readers[0]["rates"]["chatCents"] == 120
    assert offline.id not in {r["id"] for r in readers}
    assert (await client.get(READERS, headers=reader.headers)).status == 403
    resp = await client.post(AVAILABILITY, headers=reader.headers, json={"status": "offline"})
    assert await resp.json() == {"status": "offline", "chosenStatus": "offline"}
    assert (await (await client.get(READERS, headers=customer.headers)).json())["readers"] == []


async def test_availability_must_be_online_or_offline(client: TestClient, pool: asyncpg.Pool) -> None:
    reader = await quick_user(pool, "reader")
    for status in ("busy", "away", None, 1):
        resp = await client.post(AVAILABILITY, headers=reader.headers, json={"status": status})
        assert resp.status == 422


async def test_a_reader_in_a_reading_is_busy_and_returns_to_their_choice_after(
        client: TestClient, pool: asyncpg.Pool) -> None:
    reader, customer = await reader_and_client(client, pool)
    session_id = await accepted_session(client, reader, customer)
    listed = (await (await client.get(READERS, headers=customer.headers)).json())["readers"]
    assert listed[0]["status"] == "busy"
    # Going offline during the reading is remembered, but the reader stays busy until it ends.
    resp = await client.post(AVAILABILITY, headers=reader.headers, json={"status": "offline"})
    assert await resp.json() == {"status": "busy", "chosenStatus": "offline"}
    resp = await client.post(f"/api/webrtc/session/{session_id}/end", headers=reader.headers)
    assert resp.status == 200
    resp = await client.get(AVAILABILITY, headers=reader.headers)
    assert await resp.json() == {"status": "offline", "chosenStatus": "offline"}


async def test_reader_sessions_list_their_requests_newest_first(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, first = await reader_and_client(client, pool)
    _, second = await reader_and_client(client, pool)
    ids = []
    for customer in (first, second):
        resp = await client.post("/api/webrtc/client/request-session", headers=customer.headers,
                                 json={"readerId": reader.id, "sessionType": "chat", "expectedCents": 120})
        ids.append((await resp.json())["session"]["id"])
    resp = await client.get("/api/webrtc/reader/sessions?status=requested", headers=reader.headers)
    sessions = (await resp.json())["sessions"]
    assert [s["id"] for s in sessions] == ids[::-1]
    assert all(s["readerId"] == reader.id and s["status"] == "requested" for s in sessions)
    assert (await client.get("/api/webrtc/reader/sessions?status=bogus", headers=reader.headers)).status == 422
