"""Tips after a reading: a gift without a stream, 70/30 through the ledger, at the price the client confirmed,
once per request id; and, as a property, any mix of tips, retries and races leaves every movement balanced."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from api.app import create_app
from api.core.keys import DATABASE
from billing import ledger
from billing.split import split
from config import Settings
from tests.api.marketplace.steps import ended_reading, profiled_reader
from tests.api.users import quick_user
from tests.billing.invariants import assert_ledger_invariants


async def _gifts(client: TestClient, headers: dict[str, str]) -> list[dict]:
    return (await (await client.get("/api/gifts", headers=headers)).json())["gifts"]


async def _tip(client: TestClient, session_id: str, headers: dict[str, str], gift: dict, request_id: str,
               expected: int | None = None) -> tuple[int, dict]:
    resp = await client.post(f"/api/readings/{session_id}/tips", headers=headers, json={
        "giftId": gift["id"], "expectedCents": gift["priceCents"] if expected is None else expected,
        "requestId": request_id})
    return resp.status, await resp.json()


async def test_a_tip_pays_the_reader_70_percent_once_per_request(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, reader_headers = await profiled_reader(client)
    me, headers = await quick_user(client, "client")
    session_id = await ended_reading(pool, me["id"], reader["id"], paid_cents=300)
    await ledger.deposit(pool, client_id=me["id"], cents=1000, key=f"more:{me['id']}", source="manual")
    star = next(g for g in await _gifts(client, headers) if g["priceCents"] == 500)
    earned_before = await ledger.earnings(pool, reader["id"])
    status, body = await _tip(client, session_id, headers, star, "tip-1")
    assert status == 201, body
    assert (body["tip"]["name"], body["tip"]["priceCents"], body["balanceCents"]) == ("Lucky Star", 500, 500)
    assert await ledger.earnings(pool, reader["id"]) - earned_before == 350
    status, again = await _tip(client, session_id, headers, star, "tip-1")
    assert (status, again["replayed"], again["tip"]["id"]) == (201, True, body["tip"]["id"])
    assert await ledger.balance(pool, me["id"]) == 500
    kinds = [n["kind"] for n in (await (await client.get("/api/notifications", headers=reader_headers)).json())[
        "notifications"]]
    assert kinds.count("tip-received") == 1


async def test_a_tip_at_a_price_not_shown_or_not_covered_moves_nothing(client: TestClient,
                                                                       pool: asyncpg.Pool) -> None:
    reader, _ = await profiled_reader(client)
    me, headers = await quick_user(client, "client")
    session_id = await ended_reading(pool, me["id"], reader["id"], paid_cents=300)
    moon = next(g for g in await _gifts(client, headers) if g["priceCents"] == 2500)
    status, body = await _tip(client, session_id, headers, moon, "a", expected=2000)
    assert (status, body["error"]["code"], body["error"]["priceCents"]) == (409, "price_changed", 2500)
    status, body = await _tip(client, session_id, headers, moon, "b")
    assert (status, body["error"]["code"]) == (402, "insufficient_funds")
    assert await pool.fetchval("SELECT count(*) FROM reading_tips") == 0


async def test_only_the_client_of_a_reading_that_took_place_tips(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, reader_headers = await profiled_reader(client)
    me, headers = await quick_user(client, "client")
    other, other_headers = await quick_user(client, "client")
    rose = (await _gifts(client, headers))[0]
    live = await ended_reading(pool, me["id"], reader["id"], status="active")
    status, body = await _tip(client, live, headers, rose, "c")
    assert (status, body["error"]["code"]) == (409, "reading_not_ended")
    never = await ended_reading(pool, me["id"], reader["id"], paid_cents=0, started=False)
    assert (await _tip(client, never, headers, rose, "d"))[0] == 409
    mine = await ended_reading(pool, me["id"], reader["id"])
    assert (await _tip(client, mine, other_headers, rose, "e"))[0] == 404
    assert (await _tip(client, mine, reader_headers, rose, "f"))[0] == 403
    assert other  # a second client exists and is refused


async def test_one_request_sent_many_times_at_once_is_one_tip(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, _ = await profiled_reader(client)
    me, headers = await quick_user(client, "client")
    session_id = await ended_reading(pool, me["id"], reader["id"], paid_cents=300)
    await ledger.deposit(pool, client_id=me["id"], cents=1000, key=f"more:{me['id']}", source="manual")
    candle = next(g for g in await _gifts(client, headers) if g["priceCents"] == 200)
    results = await asyncio.gather(*(_tip(client, session_id, headers, candle, "same") for _ in range(5)))
    assert {s for s, _ in results} == {201} and len({b["tip"]["id"] for _, b in results}) == 1
    assert await ledger.balance(pool, me["id"]) == 800


TIP = st.tuples(st.integers(0, 4), st.integers(0, 5), st.booleans())  # gift, request id, shown price stale


@pytest.mark.slow
@hypothesis_settings(max_examples=8, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(rounds=st.lists(st.lists(TIP, min_size=1, max_size=4), min_size=1, max_size=4),
       funds=st.integers(0, 6000))
def test_any_mix_of_tips_retries_and_races_keeps_every_movement_balanced(
        settings: Settings, rounds: list[list[tuple[int, int, bool]]], funds: int) -> None:
    async def example() -> None:
        async with TestClient(TestServer(create_app(settings))) as client:
            pool = client.app[DATABASE].pool
            reader, _ = await profiled_reader(client, name=f"Reader {uuid.uuid4().hex[:6]}")
            me, headers = await quick_user(client, "client")
            session_id = await ended_reading(pool, me["id"], reader["id"], paid_cents=0)
            await pool.execute("UPDATE rtc_sessions SET started_at = now() WHERE id = $1", session_id)
            if funds:
                await ledger.deposit(pool, client_id=me["id"], cents=funds, key=f"f:{me['id']}", source="manual")
            gifts = await _gifts(client, headers)
            run = uuid.uuid4().hex[:6]
            for tips in rounds:
                results = await asyncio.gather(*(
                    _tip(client, session_id, headers, gifts[g], f"{run}-{r}", gifts[g]["priceCents"] + stale)
                    for g, r, stale in tips))
                assert {s for s, _ in results} <= {201, 402, 409}
            await assert_ledger_invariants(pool)
            paid = await pool.fetch("SELECT price_cents FROM reading_tips WHERE client_id = $1", me["id"])
            assert await ledger.balance(pool, me["id"]) == funds - sum(p["price_cents"] for p in paid) >= 0
            assert await ledger.earnings(pool, reader["id"]) == sum(split(p["price_cents"])[0] for p in paid)
            assert await pool.fetchval("SELECT count(*) FROM ledger_transactions WHERE kind = 'gift'"
                                       " AND client_id = $1", me["id"]) == len(paid)

    asyncio.run(example())


async def test_the_summary_offers_its_client_rate_tip_message_and_book_again(client: TestClient,
                                                                            pool: asyncpg.Pool) -> None:
    reader, reader_headers = await profiled_reader(client)
    me, headers = await quick_user(client, "client")
    session_id = await ended_reading(pool, me["id"], reader["id"])
    html = await (await client.get(f"/readings/{session_id}", headers=headers)).text()
    for shown in ("data-after-reading", "data-review-form", 'aria-label="Tip Rose, $1.00"',
                  f'href="/messages?reader={reader["id"]}"', f'href="/readers/{reader["id"]}/book"'):
        assert shown in html, shown
    assert "data-after-reading" not in await (await client.get(f"/readings/{session_id}",
                                                               headers=reader_headers)).text()
