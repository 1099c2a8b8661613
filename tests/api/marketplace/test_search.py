"""The reader search: each filter, each sort and the pages, on the home page and at GET /api/readers."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from api.core.errors import Invalid
from api.marketplace.search import ReaderQuery, parse
from tests.api.marketplace.steps import ended_reading, profiled_reader
from tests.api.users import quick_user


def test_a_query_is_read_from_url_parameters_and_written_back() -> None:
    query = parse({"specialty": "  dream   work ", "type": "video", "minCents": "100", "maxCents": "300",
                   "online": "1", "rating": "4", "sort": "price", "page": "2"})
    assert query == ReaderQuery(specialty="dream work", reading_type="video", min_cents=100, max_cents=300,
                                online=True, min_rating=4, sort="price", page=2)
    assert parse(query.params()) == query and query.filtered
    assert parse({}) == ReaderQuery() and not ReaderQuery(sort="newest", page=3).filtered
    assert ReaderQuery().params(page=2) == {"page": "2"}


@pytest.mark.parametrize("params, field", [
    ({"type": "tarot"}, "type"), ({"sort": "random"}, "sort"), ({"minCents": "-1"}, "minCents"),
    ({"maxCents": "1e3"}, "maxCents"), ({"rating": "6"}, "rating"), ({"page": "0"}, "page"),
    ({"minCents": "300", "maxCents": "100"}, "minCents"), ({"page": "٣"}, "page"),
])
def test_a_wrong_parameter_is_a_422_naming_it(params: dict[str, str], field: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse(params)
    assert caught.value.field == field


async def _names(client: TestClient, headers: dict[str, str], **params: str) -> list[str]:
    resp = await client.get("/api/readers", params=params, headers=headers)
    assert resp.status == 200, await resp.text()
    return [r["displayName"] for r in (await resp.json())["readers"]]


async def test_filters_and_sorts_over_rest(client: TestClient, pool: asyncpg.Pool) -> None:
    luna, _ = await profiled_reader(client, name="Luna", specialties="Tarot")
    orion, orion_h = await profiled_reader(client, name="Orion", specialties="Astrology", status="offline")
    sage, sage_h = await profiled_reader(client, name="Sage", specialties="tarot, Dreams")
    await client.post("/api/webrtc/reader/rates", json={"chatCents": 90, "videoCents": 0}, headers=sage_h)
    await client.post("/api/webrtc/reader/rates", json={"chatCents": 500, "audioCents": 400, "videoCents": 0},
                      headers=orion_h)
    me, headers = await quick_user(client, "client")
    for reader, stars in ((luna, 3), (orion, 5), (sage, 4)):
        session_id = await ended_reading(pool, me["id"], reader["id"])
        resp = await client.post(f"/api/readings/{session_id}/review", json={"stars": stars}, headers=headers)
        assert resp.status == 201
    assert await _names(client, headers) == ["Sage", "Luna", "Orion"]  # online first, then by rating
    assert await _names(client, headers, sort="rating") == ["Orion", "Sage", "Luna"]
    assert await _names(client, headers, sort="price") == ["Sage", "Luna", "Orion"]  # cheapest offered per minute
    assert await _names(client, headers, sort="newest") == ["Sage", "Orion", "Luna"]
    assert await _names(client, headers, specialty="TAROT") == ["Sage", "Luna"]
    assert await _names(client, headers, type="video") == ["Luna"]
    assert await _names(client, headers, type="audio") == ["Orion"]
    assert await _names(client, headers, online="1") == ["Sage", "Luna"]
    assert await _names(client, headers, rating="4") == ["Sage", "Orion"]
    assert await _names(client, headers, minCents="100", maxCents="200") == ["Luna"]
    assert await _names(client, headers, type="chat", maxCents="100") == ["Sage"]
    body = await (await client.get("/api/readers", headers=headers)).json()
    assert (body["total"], body["page"], body["pages"], body["perPage"]) == (3, 1, 1, 24)
    card = body["readers"][0]
    assert (card["rating"], card["reviewCount"], card["profileUrl"]) == (4.0, 1, f"/readers/{sage['id']}")
    resp = await client.get("/api/readers", params={"sort": "nope"}, headers=headers)
    assert (resp.status, (await resp.json())["error"]["field"]) == (422, "sort")
    assert (await client.get("/api/readers")).status == 401


async def test_the_home_page_pages_through_readers_and_keeps_the_filters(client: TestClient,
                                                                         pool: asyncpg.Pool) -> None:
    await pool.execute(
        "WITH u AS (INSERT INTO users (email, password_hash, display_name, role)"
        " SELECT 'r' || n || '@x.test', 'x', 'Reader ' || lpad(n::text, 2, '0'), 'reader'"
        " FROM generate_series(1, 30) n RETURNING id), a AS (INSERT INTO reader_availability (reader_id, status)"
        " SELECT id, 'online' FROM u) INSERT INTO reader_rates (reader_id, chat_cents) SELECT id, 100 FROM u")
    first = await (await client.get("/?type=chat&online=1")).text()
    assert "30 readers" in first and "Page 1 of 2" in first and first.count('class="card reader-card') == 24
    assert 'href="/?type=chat&amp;online=1&amp;page=2"' in first
    second = await (await client.get("/?type=chat&online=1&page=2")).text()
    assert second.count('class="card reader-card') == 6 and "Reader 30" in second
    assert 'rel="prev" href="/?type=chat&amp;online=1"' in second
    beyond = await (await client.get("/?page=9")).text()
    assert "30 readers" in beyond and "No reader matches" not in beyond
    wrong = await client.get("/?sort=nope")
    assert wrong.status == 200 and "sort must be one of" in await wrong.text()
