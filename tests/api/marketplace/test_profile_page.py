"""The reader profile page and its REST twin: everything a client chooses by, the photo served with caching
headers (initials without one), buttons that match who is looking, and home cards that lead to it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import asyncpg
from aiohttp.test_utils import TestClient

from tests.api.marketplace.steps import a_jpeg, profiled_reader
from tests.api.users import quick_user


async def test_the_profile_page_shows_what_a_client_chooses_by(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, headers = await profiled_reader(client)
    starts = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    resp = await client.post("/api/webrtc/reader/slots", headers=headers,
                             json={"startsAt": starts.isoformat(), "minutes": 30})
    assert resp.status == 201
    html = await (await client.get(f"/readers/{reader['id']}")).text()
    for shown in ("Luna Hart", "Tarot for thirty years.", "Tarot", "Dream work", "Speaks English, Español",
                  "$1.50", "$2.99", "$20.00", "$35.00", "$60.00", "$0.75", "30 min · $35.00", "No reviews yet",
                  'class="status online"', ">LH<"):
        assert shown in html, shown
    # A visitor's buttons ask them to log in and come back here.
    assert f'href="/login?next=/readers/{reader["id"]}">Start chat' in html
    assert "Start audio" not in html  # not offered


async def test_a_signed_in_client_gets_the_working_buttons(client: TestClient) -> None:
    reader, _ = await profiled_reader(client)
    _, client_headers = await quick_user(client, "client")
    html = await (await client.get(f"/readers/{reader['id']}", headers=client_headers)).text()
    assert 'data-start="chat" data-rate-cents="150"' in html and 'data-start="video"' in html
    assert f'href="/readers/{reader["id"]}/book"' in html and f'href="/messages?reader={reader["id"]}"' in html
    assert 'data-favourite aria-pressed="false"' in html
    assert "data-notify-once" not in html  # they are online already


async def test_an_unknown_or_malformed_reader_is_a_styled_404(client: TestClient) -> None:
    for path in ("/readers/7d3b6a2e-93b8-4d6f-9f35-5a6a1c8e2a10", "/readers/nope"):
        resp = await client.get(path)
        assert resp.status == 404 and "couldn't find" in await resp.text()
    client_user, _ = await quick_user(client, "client")
    assert (await client.get(f"/readers/{client_user['id']}")).status == 404  # a client has no profile


async def test_the_profile_over_rest(client: TestClient) -> None:
    reader, _ = await profiled_reader(client)
    _, headers = await quick_user(client, "client")
    assert (await client.get(f"/api/readers/{reader['id']}")).status == 401
    body = await (await client.get(f"/api/readers/{reader['id']}", headers=headers)).json()
    found = body["reader"]
    assert (found["displayName"], found["status"], found["languages"], found["rates"]["flatCents"]["30"],
            found["rates"]["messageCents"], found["photoUrl"], found["rating"], found["reviewCount"],
            found["interest"]) == ("Luna Hart", "online", ["English", "Español"], 3500, 75, None, None, 0,
                                   {"favourite": False, "watching": False})
    resp = await client.get("/api/readers/7d3b6a2e-93b8-4d6f-9f35-5a6a1c8e2a10", headers=headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (404, "reader_not_found")


async def test_a_photo_is_stored_stripped_and_served_with_caching_headers(client: TestClient) -> None:
    reader, headers = await profiled_reader(client)
    resp = await client.post("/api/webrtc/reader/photo", data=a_jpeg(), headers={**headers,
                                                                                  "Content-Type": "image/jpeg"})
    assert resp.status == 201, await resp.text()
    url = (await resp.json())["photoUrl"]
    assert re.fullmatch(rf"/readers/{reader['id']}/photo\?v=[0-9a-f]{{16}}", url)
    served = await client.get(url)
    image = await served.read()
    assert served.headers["Content-Type"] == "image/jpeg" and b"SpyCam" not in image
    assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    etag = served.headers["ETag"]
    again = await client.get(url, headers={"If-None-Match": etag})
    assert again.status == 304 and await again.read() == b""
    bare = await client.get(f"/readers/{reader['id']}/photo")
    assert bare.headers["Cache-Control"] == "public, max-age=300, must-revalidate"
    html = await (await client.get(f"/readers/{reader['id']}")).text()
    assert f'src="{url}"' in html and ">LH<" not in html
    home = await (await client.get("/")).text()
    assert f'src="{url}"' in home
    assert (await client.delete("/api/webrtc/reader/photo", headers=headers)).status == 204
    assert (await client.get(url)).status == 404
    assert ">LH<" in await (await client.get(f"/readers/{reader['id']}")).text()


async def test_a_photo_upload_that_is_not_an_image_or_not_a_readers_is_refused(client: TestClient) -> None:
    _, headers = await profiled_reader(client)
    resp = await client.post("/api/webrtc/reader/photo", data=b"<html>no</html>",
                             headers={**headers, "Content-Type": "image/png"})
    assert resp.status == 422 and (await resp.json())["error"] == {
        "code": "invalid_image", "message": "this file is not an image we can read", "field": "photo"}
    resp = await client.post("/api/webrtc/reader/photo", data=a_jpeg(), headers={**headers,
                                                                                  "Content-Type": "text/plain"})
    assert resp.status == 422
    resp = await client.post("/api/webrtc/reader/photo", data=b"x" * (6 * 1024 * 1024),
                             headers={**headers, "Content-Type": "image/jpeg"})
    assert resp.status == 413
    _, client_headers = await quick_user(client, "client")
    resp = await client.post("/api/webrtc/reader/photo", data=a_jpeg(), headers={**client_headers,
                                                                                  "Content-Type": "image/jpeg"})
    assert resp.status == 403


async def test_home_cards_link_to_the_profile_and_show_the_rating(client: TestClient) -> None:
    reader, _ = await profiled_reader(client)
    home = await (await client.get("/")).text()
    assert f'href="/readers/{reader["id"]}">Luna Hart</a>' in home
    assert "No reviews yet" in home


async def test_next_open_times_are_the_booking_pages_own_offers_from_weekly_hours(client: TestClient) -> None:
    """A reader with weekly hours and no published slot showed "No open times right now" on the profile while
    the booking page listed dozens: both now read the same offers."""
    reader, headers = await profiled_reader(client)
    resp = await client.put("/api/webrtc/reader/schedule", headers=headers, json={
        "timeZone": "UTC", "lengths": [30], "noticeMinutes": 60, "horizonDays": 7,
        "weekly": [{"weekday": day, "start": 0, "end": 1440} for day in range(7)]})
    assert resp.status == 200, await resp.text()
    _, client_headers = await quick_user(client, "client")
    found = (await (await client.get(f"/api/readers/{reader['id']}", headers=client_headers)).json())["reader"]
    offers = await (await client.get(f"/api/webrtc/readers/{reader['id']}/offers", headers=client_headers)).json()
    assert [t["startsAt"] for t in found["nextSlots"]] == offers["offers"]["30"][:6]
    assert {(t["minutes"], t["priceCents"]) for t in found["nextSlots"]} == {(30, 3500)}
    html = await (await client.get(f"/readers/{reader['id']}", headers=client_headers)).text()
    assert "No open times right now" not in html and "30 min · $35.00" in html
