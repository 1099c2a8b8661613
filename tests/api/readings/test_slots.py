"""Reader slots over HTTP: readers publish and withdraw open time; clients see it and book it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from aiohttp.test_utils import TestClient

from billing import ledger
from tests.api.helpers import bearer_user


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


TOMORROW = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=1)


async def priced_reader(client: TestClient, pool: asyncpg.Pool) -> tuple[dict, dict[str, str]]:
    reader, headers = await bearer_user(client, "reader")
    await pool.execute("UPDATE reader_rates SET flat_15_cents = 1500, flat_30_cents = 2800, flat_60_cents = 5000"
                       " WHERE reader_id = $1", reader["id"])
    return reader, headers


async def test_a_reader_publishes_lists_and_withdraws_slots(client: TestClient, pool: asyncpg.Pool) -> None:
    _, headers = await priced_reader(client, pool)
    resp = await client.post("/api/webrtc/reader/slots", json={"startsAt": iso(TOMORROW), "minutes": 30},
                             headers=headers)
    assert resp.status == 201, await resp.text()
    slot = (await resp.json())["slot"]
    assert (slot["startsAt"], slot["minutes"], slot["priceCents"], slot["booked"]) == (iso(TOMORROW), 30, 2800,
                                                                                       False)
    overlap = await client.post("/api/webrtc/reader/slots", headers=headers,
                                json={"startsAt": iso(TOMORROW + timedelta(minutes=15)), "minutes": 15})
    assert overlap.status == 409 and (await overlap.json())["error"]["code"] == "slot_taken"
    listed = await (await client.get("/api/webrtc/reader/slots", headers=headers)).json()
    assert [s["id"] for s in listed["slots"]] == [slot["id"]]
    assert (await client.delete(f"/api/webrtc/reader/slots/{slot['id']}", headers=headers)).status == 204
    assert (await client.delete(f"/api/webrtc/reader/slots/{slot['id']}", headers=headers)).status == 404
    assert (await client.delete("/api/webrtc/reader/slots/not-a-uuid", headers=headers)).status == 404


async def test_slot_input_is_validated(client: TestClient, pool: asyncpg.Pool) -> None:
    _, headers = await priced_reader(client, pool)
    for body, field in [({"startsAt": iso(TOMORROW), "minutes": 20}, "minutes"),
                        ({"startsAt": "tomorrow", "minutes": 15}, "startsAt"),
                        ({"startsAt": "2030-01-01T10:00:00", "minutes": 15}, "startsAt"),
                        ({"startsAt": iso(datetime.now(UTC) - timedelta(hours=1)), "minutes": 15}, "startsAt"),
                        ({"startsAt": iso(datetime.now(UTC) + timedelta(days=400)), "minutes": 15}, "startsAt")]:
        resp = await client.post("/api/webrtc/reader/slots", json=body, headers=headers)
        assert resp.status == 422 and (await resp.json())["error"]["field"] == field
    _, client_headers = await bearer_user(client, "client")
    resp = await client.post("/api/webrtc/reader/slots", json={"startsAt": iso(TOMORROW), "minutes": 15},
                             headers=client_headers)
    assert resp.status == 403


async def test_a_client_sees_open_slots_and_books_one_paid_at_the_flat_rate(client: TestClient,
                                                                            pool: asyncpg.Pool) -> None:
    reader, reader_headers = await priced_reader(client, pool)
    slots = []
    for hours, minutes in [(0, 60), (2, 15)]:
        resp = await client.post("/api/webrtc/reader/slots", headers=reader_headers,
                                 json={"startsAt": iso(TOMORROW + timedelta(hours=hours)), "minutes": minutes})
        slots.append((await resp.json())["slot"])
    buyer, headers = await bearer_user(client, "client")
    await ledger.deposit(pool, client_id=buyer["id"], cents=6000, key="seed")
    seen = await (await client.get(f"/api/webrtc/readers/{reader['id']}/slots", headers=headers)).json()
    assert [(s["minutes"], s["priceCents"]) for s in seen["slots"]] == [(60, 5000), (15, 1500)]
    assert "sessionId" not in seen["slots"][0]

    resp = await client.post(f"/api/webrtc/client/slots/{slots[0]['id']}/book",
                             json={"sessionType": "video", "expectedCents": 5000}, headers=headers)
    assert resp.status == 201, await resp.text()
    session = (await resp.json())["session"]
    assert (session["mode"], session["status"], session["chargedCents"], session["readerId"]) == (
        "scheduled", "accepted", 5000, reader["id"])
    assert await ledger.balance(pool, buyer["id"]) == 1000

    again = await client.post(f"/api/webrtc/client/slots/{slots[0]['id']}/book",
                              json={"sessionType": "video", "expectedCents": 5000}, headers=headers)
    assert again.status == 409 and (await again.json())["error"]["code"] == "slot_taken"
    broke = await client.post(f"/api/webrtc/client/slots/{slots[1]['id']}/book",
                              json={"sessionType": "chat", "expectedCents": 1500}, headers=headers)
    assert broke.status == 402 and (await broke.json())["error"]["code"] == "insufficient_funds"
    seen = await (await client.get(f"/api/webrtc/readers/{reader['id']}/slots", headers=headers)).json()
    assert [s["id"] for s in seen["slots"]] == [slots[1]["id"]]
    mine = await (await client.get("/api/webrtc/reader/slots", headers=reader_headers)).json()
    assert [s["booked"] for s in mine["slots"]] == [True, False]
    assert mine["slots"][0]["sessionId"] == session["id"]
    missing = await client.post("/api/webrtc/client/slots/00000000-0000-0000-0000-000000000000/book",
                                json={"sessionType": "chat", "expectedCents": 1500}, headers=headers)
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "slot_not_found"


async def test_booking_a_slot_at_a_price_that_changed_is_refused(client: TestClient, pool: asyncpg.Pool) -> None:
    _, reader_headers = await priced_reader(client, pool)
    resp = await client.post("/api/webrtc/reader/slots", headers=reader_headers,
                             json={"startsAt": iso(TOMORROW), "minutes": 15})
    slot = (await resp.json())["slot"]
    buyer, headers = await bearer_user(client, "client")
    await ledger.deposit(pool, client_id=buyer["id"], cents=6000, key="seed")
    await client.post("/api/webrtc/reader/rates", headers=reader_headers, json={"flatCents": {"15": 4000}})
    stale = await client.post(f"/api/webrtc/client/slots/{slot['id']}/book",
                              json={"sessionType": "chat", "expectedCents": 1500}, headers=headers)
    assert stale.status == 409
    error = (await stale.json())["error"]
    assert (error["code"], error["priceCents"]) == ("price_changed", 4000)
    assert await ledger.balance(pool, buyer["id"]) == 6000
    unconfirmed = await client.post(f"/api/webrtc/client/slots/{slot['id']}/book", json={"sessionType": "chat"},
                                    headers=headers)
    assert unconfirmed.status == 422 and (await unconfirmed.json())["error"]["field"] == "expectedCents"
    assert await ledger.balance(pool, buyer["id"]) == 6000
