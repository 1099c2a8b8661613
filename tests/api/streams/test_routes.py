from __future__ import annotations

import asyncpg
from aiohttp.test_utils import TestClient

from tests.api.users import quick_user


async def go_live(client: TestClient, headers: dict[str, str], title: str = "Sunday tarot") -> dict:
    resp = await client.post("/api/streams", json={"title": title, "description": "Ask me anything"},
                             headers=headers)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["stream"]


async def test_a_reader_goes_live_and_everyone_logged_in_sees_the_stream(client: TestClient) -> None:
    reader, rh = await quick_user(client, "reader", name="Madame Iris")
    _, ch = await quick_user(client)
    stream = await go_live(client, rh)
    assert stream["readerId"] == reader["id"] and stream["title"] == "Sunday tarot"
    assert stream["status"] == "live" and stream["viewerCount"] == 0 and stream["readerName"] == "Madame Iris"
    listed = (await (await client.get("/api/streams", headers=ch)).json())["streams"]
    assert [s["id"] for s in listed] == [stream["id"]]
    one = await client.get(f"/api/streams/{stream['id']}", headers=ch)
    assert (await one.json())["stream"]["description"] == "Ask me anything"
    assert (await client.get("/api/streams")).status == 401


async def test_only_readers_go_live_and_only_once_at_a_time(client: TestClient) -> None:
    _, ch = await quick_user(client)
    _, rh = await quick_user(client, "reader")
    assert (await client.post("/api/streams", json={"title": "x"}, headers=ch)).status == 403
    await go_live(client, rh)
    again = await client.post("/api/streams", json={"title": "again"}, headers=rh)
    assert again.status == 409 and (await again.json())["error"]["code"] == "already_live"


async def test_a_title_is_required_and_bounded(client: TestClient) -> None:
    _, rh = await quick_user(client, "reader")
    for body in ({}, {"title": ""}, {"title": "x" * 121}, {"title": "ok", "description": "d" * 1001}):
        resp = await client.post("/api/streams", json=body, headers=rh)
        assert resp.status == 422, body


async def test_going_live_makes_the_reader_available_for_private_readings(client: TestClient,
                                                                         pool: asyncpg.Pool) -> None:
    reader, rh = await quick_user(client, "reader")
    await go_live(client, rh)
    status = await pool.fetchval("SELECT status FROM reader_availability WHERE reader_id = $1", reader["id"])
    assert status == "online"


async def test_only_its_reader_ends_a_stream_and_it_leaves_the_live_list(client: TestClient) -> None:
    _, rh = await quick_user(client, "reader")
    _, other = await quick_user(client, "reader")
    _, ch = await quick_user(client)
    stream = await go_live(client, rh)
    assert (await client.post(f"/api/streams/{stream['id']}/end", headers=other)).status == 403
    assert (await client.post(f"/api/streams/{stream['id']}/end", headers=ch)).status == 403
    resp = await client.post(f"/api/streams/{stream['id']}/end", headers=rh)
    ended = (await resp.json())["stream"]
    assert resp.status == 200 and ended["status"] == "ended" and ended["endedAt"]
    again = await client.post(f"/api/streams/{stream['id']}/end", headers=rh)
    assert again.status == 200 and (await again.json())["stream"]["endedAt"] == ended["endedAt"]
    assert (await (await client.get("/api/streams", headers=ch)).json())["streams"] == []
    # ...and the reader may go live again.
    await go_live(client, rh, "Encore")


async def test_unknown_streams_are_404(client: TestClient) -> None:
    _, ch = await quick_user(client)
    for path in ("/api/streams/00000000-0000-0000-0000-000000000000", "/api/streams/not-a-uuid",
                 "/api/streams/00000000-0000-0000-0000-000000000000/leaderboard"):
        assert (await client.get(path, headers=ch)).status == 404, path


async def test_a_new_stream_has_an_empty_leaderboard(client: TestClient) -> None:
    _, rh = await quick_user(client, "reader")
    stream = await go_live(client, rh)
    resp = await client.get(f"/api/streams/{stream['id']}/leaderboard", headers=rh)
    assert (await resp.json()) == {"streamId": stream["id"], "leaderboard": [], "totalCents": 0}
