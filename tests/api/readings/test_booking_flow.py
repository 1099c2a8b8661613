"""Booking from a reader's weekly availability over HTTP: hours and exceptions, the offers a client sees with
prices and policy, booking (and no double booking under concurrent clicks), the upcoming list, the .ics file,
and the durable reminders."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from api.readings import reminders
from billing import ledger
from tests.api.users import quick_user

ALL_DAY = [{"weekday": d, "start": 0, "end": 1440} for d in range(7)]


def parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


async def open_reader(client: TestClient, pool: asyncpg.Pool, *, zone: str = "UTC",
                      weekly: list[dict[str, int]] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    reader, headers = await quick_user(client, "reader", name="Luna")
    await pool.execute("UPDATE reader_rates SET flat_30_cents = 3000, flat_60_cents = 5500 WHERE reader_id = $1",
                       reader["id"])
    resp = await client.put("/api/webrtc/reader/schedule", headers=headers, json={
        "timeZone": zone, "lengths": [30, 60], "noticeMinutes": 60, "horizonDays": 14,
        "weekly": ALL_DAY if weekly is None else weekly})
    assert resp.status == 200, await resp.text()
    return reader, headers


async def funded_client(client: TestClient, pool: asyncpg.Pool, cents: int = 20_000,
                        name: str = "Client") -> tuple[dict[str, Any], dict[str, str]]:
    user, headers = await quick_user(client, "client", name=name)
    await ledger.deposit(pool, client_id=user["id"], cents=cents, key=f"test:{uuid.uuid4()}", source="manual")
    return user, headers


async def offers(client: TestClient, reader_id: str, headers: dict[str, str]) -> dict[str, Any]:
    resp = await client.get(f"/api/webrtc/readers/{reader_id}/offers", headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def book(client: TestClient, headers: dict[str, str], reader_id: str, starts_at: str, minutes: int,
               cents: int) -> Any:
    return await client.post("/api/webrtc/client/schedule-session", headers=headers, json={
        "readerId": reader_id, "sessionType": "video", "startsAt": starts_at, "minutes": minutes,
        "expectedCents": cents})


async def test_a_reader_sets_weekly_hours_in_their_zone(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, headers = await open_reader(client, pool, zone="America/New_York",
                                        weekly=[{"weekday": 0, "start": 540, "end": 720}])
    shown = (await (await client.get("/api/webrtc/reader/schedule", headers=headers)).json())["availability"]
    assert shown["timeZone"] == "America/New_York"
    assert shown["weekly"] == [{"weekday": 0, "start": 540, "end": 720}]
    _, client_headers = await quick_user(client, "client")
    found = await offers(client, reader["id"], client_headers)
    assert found["timeZone"] == "America/New_York" and found["prices"]["30"] == 3000
    assert "full refund" in found["cancellation"]["text"] and found["cancellation"]["fullRefundHours"] == 24
    for start in found["offers"]["30"]:
        local = parse(start).astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
        assert local.weekday() == 0 and 9 * 60 <= local.hour * 60 + local.minute <= 11 * 60 + 30


async def test_bad_hours_are_a_422_naming_the_field(client: TestClient, pool: asyncpg.Pool) -> None:
    _, headers = await quick_user(client, "reader")
    base = {"timeZone": "UTC", "lengths": [30], "noticeMinutes": 60, "horizonDays": 14, "weekly": []}
    for change, field in [({"timeZone": "Mars/Olympus"}, "timeZone"), ({"lengths": [20]}, "lengths"),
                          ({"lengths": []}, "lengths"),
                          ({"weekly": [{"weekday": 0, "start": 10, "end": 70}]}, "weekly"),
                          ({"weekly": [{"weekday": 9, "start": 0, "end": 60}]}, "weekly"),
                          ({"weekly": ["x"]}, "weekly"), ({"horizonDays": 0}, "horizonDays")]:
        resp = await client.put("/api/webrtc/reader/schedule", headers=headers, json={**base, **change})
        assert resp.status == 422, (change, await resp.text())
        assert (await resp.json())["error"]["field"] == field
    _, client_headers = await quick_user(client, "client")
    assert (await client.put("/api/webrtc/reader/schedule", headers=client_headers, json=base)).status == 403


async def test_exceptions_take_time_off_and_add_hours(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, headers = await open_reader(client, pool, weekly=[])
    _, client_headers = await quick_user(client, "client")
    assert (await offers(client, reader["id"], client_headers))["offers"] == {}
    day = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    resp = await client.post("/api/webrtc/reader/schedule/exceptions", headers=headers,
                             json={"day": day, "available": True, "start": 600, "end": 720})
    assert resp.status == 201, await resp.text()
    extra = (await resp.json())["exception"]
    found = await offers(client, reader["id"], client_headers)
    assert found["offers"]["60"] == [f"{day}T10:00:00.000Z", f"{day}T10:15:00.000Z", f"{day}T10:30:00.000Z",
                                     f"{day}T10:45:00.000Z", f"{day}T11:00:00.000Z"]
    resp = await client.post("/api/webrtc/reader/schedule/exceptions", headers=headers,
                             json={"day": day, "available": False, "start": 600, "end": 660})
    assert resp.status == 201
    assert (await offers(client, reader["id"], client_headers))["offers"]["60"] == [f"{day}T11:00:00.000Z"]
    assert (await client.delete(f"/api/webrtc/reader/schedule/exceptions/{extra['id']}", headers=headers)).status == 204
    assert (await offers(client, reader["id"], client_headers))["offers"] == {}
    bad = await client.post("/api/webrtc/reader/schedule/exceptions", headers=headers,
                            json={"day": "yesterday", "available": False})
    assert bad.status == 422 and (await bad.json())["error"]["field"] == "day"


async def test_a_client_books_an_offer_both_are_told_and_see_it_upcoming(client: TestClient,
                                                                          pool: asyncpg.Pool) -> None:
    reader, reader_headers = await open_reader(client, pool)
    me, headers = await funded_client(client, pool)
    found = await offers(client, reader["id"], headers)
    starts_at = next(s for s in found["offers"]["60"] if parse(s) > datetime.now(UTC) + timedelta(hours=25))
    resp = await book(client, headers, reader["id"], starts_at, 60, 5500)
    assert resp.status == 201, await resp.text()
    session = (await resp.json())["session"]
    assert (session["status"], session["mode"], session["startsAt"], session["chargedCents"]) == (
        "accepted", "scheduled", starts_at, 5500)
    assert await ledger.balance(pool, me["id"]) == 20_000 - 5500
    # Gone from the offers, and so is every offer overlapping it.
    after = await offers(client, reader["id"], headers)
    start = parse(starts_at)
    for length in ("30", "60"):
        for other in after["offers"][length]:
            s = parse(other)
            assert not (s < start + timedelta(minutes=60) and start < s + timedelta(minutes=int(length)))
    kinds = {r["user_id"]: r["kind"] for r in await pool.fetch("SELECT user_id::text, kind FROM notifications")}
    assert kinds == {reader["id"]: "session-booked", me["id"]: "booking-confirmed"}
    for h in (headers, reader_headers):
        upcoming = (await (await client.get("/api/webrtc/upcoming", headers=h)).json())["sessions"]
        assert [u["id"] for u in upcoming] == [session["id"]]
        assert upcoming[0]["joinOpensAt"] == (start - timedelta(minutes=10)).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")
        ics = await client.get(upcoming[0]["calendarUrl"], headers=h)
        assert ics.status == 200 and ics.content_type == "text/calendar"
        text = await ics.text()
        assert f"DTSTART:{start.strftime('%Y%m%dT%H%M%SZ')}" in text and "TRIGGER:-PT10M" in text
        assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    assert await pool.fetchval("SELECT count(*) FROM booking_reminders WHERE session_id = $1", session["id"]) == 2
    _, stranger = await quick_user(client, "client")
    assert (await client.get(f"/api/webrtc/session/{session['id']}/calendar.ics", headers=stranger)).status == 404


async def test_a_time_that_is_not_offered_cannot_be_booked(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, _ = await open_reader(client, pool, weekly=[{"weekday": 0, "start": 540, "end": 600}])
    _, headers = await funded_client(client, pool)
    starts = (datetime.now(UTC) + timedelta(days=2)).replace(hour=3, minute=7, second=0, microsecond=0)
    resp = await book(client, headers, reader["id"], starts.isoformat(), 30, 3000)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "slot_not_found"
    assert await pool.fetchval("SELECT count(*) FROM reader_slots") == 0


async def test_two_clients_clicking_the_same_time_at_once_book_it_once(client: TestClient,
                                                                       pool: asyncpg.Pool) -> None:
    reader, _ = await open_reader(client, pool)
    found = None
    for round_ in range(6):
        (a, a_headers), (b, b_headers) = [await funded_client(client, pool, name=f"C{round_}{n}") for n in "ab"]
        found = found or await offers(client, reader["id"], a_headers)
        start = parse(found["offers"]["60"][round_ * 12])
        # The same hour; or, every other round, a 60-minute and an overlapping 30-minute booking.
        other_start, other_minutes = (start, 60) if round_ % 2 == 0 else (start + timedelta(minutes=30), 30)
        first, second = await asyncio.gather(
            book(client, a_headers, reader["id"], start.isoformat(), 60, 5500),
            book(client, b_headers, reader["id"], other_start.isoformat(), other_minutes,
                 3000 if other_minutes == 30 else 5500))
        statuses = sorted([first.status, second.status])
        assert statuses == [201, 409], (await first.text(), await second.text())
        loser = first if first.status == 409 else second
        assert (await loser.json())["error"]["code"] == "slot_taken"
        paid = [await ledger.balance(pool, who["id"]) for who in (a, b)]
        assert sorted(paid) in ([20_000 - 5500, 20_000], [20_000 - 3000, 20_000])
    assert await pool.fetchval("SELECT count(*) FROM rtc_sessions WHERE mode = 'scheduled'") == 6
    overlapping = await pool.fetchval(
        "SELECT count(*) FROM reader_slots a JOIN reader_slots b ON a.reader_id = b.reader_id AND a.id < b.id"
        " AND tstzrange(a.starts_at, a.starts_at + make_interval(mins => a.minutes))"
        " && tstzrange(b.starts_at, b.starts_at + make_interval(mins => b.minutes))")
    assert overlapping == 0


async def test_a_client_cannot_hold_two_readings_at_once(client: TestClient, pool: asyncpg.Pool) -> None:
    luna, _ = await open_reader(client, pool)
    sol, _ = await open_reader(client, pool)
    _, headers = await funded_client(client, pool)
    start = (await offers(client, luna["id"], headers))["offers"]["60"][4]
    assert (await book(client, headers, luna["id"], start, 60, 5500)).status == 201
    clash = await book(client, headers, sol["id"], start, 30, 3000)
    assert clash.status == 409 and (await clash.json())["error"]["code"] == "client_busy"


async def test_reminders_are_sent_once_each_at_24_hours_and_10_minutes(client: TestClient,
                                                                       pool: asyncpg.Pool) -> None:
    reader, _ = await open_reader(client, pool)
    me, headers = await funded_client(client, pool)
    found = (await offers(client, reader["id"], headers))["offers"]["30"]
    far = next(s for s in found if parse(s) > datetime.now(UTC) + timedelta(days=2))
    near = found[0]  # about an hour from now: too late for the 24-hour reminder
    far_session = (await (await book(client, headers, reader["id"], far, 30, 3000)).json())["session"]
    near_session = (await (await book(client, headers, reader["id"], near, 30, 3000)).json())["session"]
    kinds = await pool.fetch("SELECT session_id::text, kind FROM booking_reminders ORDER BY session_id, kind")
    assert sorted((r["session_id"], r["kind"]) for r in kinds) == sorted(
        [(far_session["id"], "10m"), (far_session["id"], "24h"), (near_session["id"], "10m")])
    pool_ = client.app[reminders.REMINDER_SWEEPER]._pool()
    day_before = parse(far) - timedelta(hours=24)
    mails: list[tuple[str, str]] = []

    async def on_due(conn: asyncpg.Connection, row: asyncpg.Record, kind: str) -> None:
        mails.append((str(row["id"]), kind))

    sent = await reminders.sweep(pool_, now=day_before, on_due=on_due)
    assert {(m["sessionId"], m["reminder"]) for _, m in sent} == {(far_session["id"], "24h"),
                                                                  (near_session["id"], "10m")}
    assert {u for u, _ in sent} == {me["id"], reader["id"]}
    assert all(m["kind"] == "booking-reminder" for _, m in sent)
    assert sorted(mails) == sorted([(far_session["id"], "24h"), (near_session["id"], "10m")])
    assert await reminders.sweep(pool_, now=day_before) == []  # once
    # Cancelled meanwhile: its last reminder is not sent.
    resp = await client.post(f"/api/webrtc/client/cancel-session/{far_session['id']}", headers=headers)
    assert resp.status == 200, await resp.text()
    assert await reminders.sweep(pool_, now=parse(far)) == []
    assert await pool.fetchval("SELECT count(*) FROM booking_reminders WHERE sent_at IS NULL") == 0


async def test_two_sweepers_at_once_send_each_reminder_once(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, _ = await open_reader(client, pool)
    _, headers = await funded_client(client, pool, cents=100_000)
    found = (await offers(client, reader["id"], headers))["offers"]["30"]
    for start in found[:40:4][:8]:
        assert (await book(client, headers, reader["id"], start, 30, 3000)).status == 201
    pool_ = client.app[reminders.REMINDER_SWEEPER]._pool()
    later = datetime.now(UTC) + timedelta(days=30)
    results = await asyncio.gather(*(reminders.sweep(pool_, now=later, batch=3) for _ in range(3)))
    sent = [(m["sessionId"], m["reminder"], user) for stored in results for user, m in stored]
    assert len(sent) == len(set(sent)) == 2 * await pool.fetchval("SELECT count(*) FROM booking_reminders")


async def test_the_database_refuses_the_second_of_two_overlapping_slots_while_the_first_is_uncommitted(
        client: TestClient, pool: asyncpg.Pool) -> None:
    # What makes the race above safe even when both requests passed the offer check: the insert of the second
    # waits on the first's per-reader lock, then sees its committed slot.
    reader, _ = await open_reader(client, pool)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    first, second = await pool.acquire(), await pool.acquire()
    try:
        async with first.transaction():
            await first.execute("INSERT INTO reader_slots (reader_id, starts_at, minutes) VALUES ($1, $2, 60)",
                                reader["id"], start)
            blocked = asyncio.ensure_future(second.execute(
                "INSERT INTO reader_slots (reader_id, starts_at, minutes) VALUES ($1, $2, 30)",
                reader["id"], start + timedelta(minutes=30)))
            done, _ = await asyncio.wait([blocked], timeout=0.5)
            assert not done  # waiting for the first transaction
        try:
            await asyncio.wait_for(blocked, 10)
            raise AssertionError("the overlapping slot was inserted")
        except asyncpg.ExclusionViolationError:
            pass
    finally:
        await pool.release(first)
        await pool.release(second)
    assert await pool.fetchval("SELECT count(*) FROM reader_slots") == 1
