"""Verified reviews over HTTP with the real ledger: only a paid reading, once, by its client; editable for 7 days;
one reply; the rating follows; an operator hides one (kept, audited); a full refund takes it out of the rating."""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp.test_utils import TestClient

from tests.api.helpers import PASSWORD
from tests.api.marketplace.steps import ended_reading, profiled_reader
from tests.api.users import quick_user


async def _review(client: TestClient, session_id: str, headers: dict[str, str], stars: int = 5,
                  body: str = "Clear and kind.") -> tuple[int, dict]:
    resp = await client.post(f"/api/readings/{session_id}/review", json={"stars": stars, "body": body},
                             headers=headers)
    return resp.status, await resp.json()


async def test_a_client_reviews_a_paid_reading_once_and_the_rating_follows(client: TestClient,
                                                                           pool: asyncpg.Pool) -> None:
    reader, reader_headers = await profiled_reader(client)
    me, headers = await quick_user(client, "client", name="Sam Kowalski")
    session_id = await ended_reading(pool, me["id"], reader["id"], paid_cents=150, refunded_cents=60)
    shown = await (await client.get(f"/api/readings/{session_id}/review", headers=headers)).json()
    assert (shown["canReview"], shown["review"]) == (True, None)
    status, body = await _review(client, session_id, headers, stars=4)
    assert status == 201, body
    review = body["review"]
    assert (review["stars"], review["body"], review["author"], review["canEdit"], review["reply"]) == (
        4, "Clear and kind.", "Sam K.", True, None)
    status, body = await _review(client, session_id, headers)
    assert (status, body["error"]["code"]) == (409, "already_reviewed")
    profile = (await (await client.get(f"/api/readers/{reader['id']}", headers=headers)).json())["reader"]
    assert (profile["rating"], profile["reviewCount"], profile["reviews"][0]["id"]) == (4.0, 1, review["id"])
    html = await (await client.get(f"/readers/{reader['id']}")).text()
    assert "Clear and kind." in html and "Rated 4.0 out of 5 from 1 review" in html
    assert "Rated 4.0 out of 5 from 1 review" in await (await client.get("/")).text()
    # The reader heard of it.
    kinds = [n["kind"] for n in (await (await client.get("/api/notifications", headers=reader_headers)).json())[
        "notifications"]]
    assert "review-posted" in kinds


async def test_no_review_for_a_free_refunded_unstarted_unfinished_or_someone_elses_reading(
        client: TestClient, pool: asyncpg.Pool) -> None:
    reader, reader_headers = await profiled_reader(client)
    me, headers = await quick_user(client, "client")
    other, _ = await quick_user(client, "client")
    cases = {
        "reading_not_paid": await ended_reading(pool, me["id"], reader["id"], paid_cents=0),
        "reading_not_paid ": await ended_reading(pool, me["id"], reader["id"], paid_cents=200, refunded_cents=200),
        "reading_not_paid  ": await ended_reading(pool, me["id"], reader["id"], paid_cents=2000, mode="scheduled",
                                                  refunded_cents=2000),
        "reading_never_started": await ended_reading(pool, me["id"], reader["id"], paid_cents=0, started=False),
        "reading_not_ended": await ended_reading(pool, me["id"], reader["id"], status="active"),
    }
    for code, session_id in cases.items():
        shown = await (await client.get(f"/api/readings/{session_id}/review", headers=headers)).json()
        assert (shown["canReview"], shown["reason"]) == (False, code.strip())
        status, body = await _review(client, session_id, headers)
        assert (status, body["error"]["code"]) == (409, code.strip()), code
    theirs = await ended_reading(pool, other["id"], reader["id"])
    status, body = await _review(client, theirs, headers)
    assert (status, body["error"]["code"]) == (404, "reading_not_found")
    status, body = await _review(client, theirs, reader_headers)
    assert status == 403  # readers do not review
    scheduled = await ended_reading(pool, me["id"], reader["id"], paid_cents=2000, mode="scheduled")
    assert (await _review(client, scheduled, headers))[0] == 201  # a scheduled reading that happened


async def test_stars_and_length_are_checked(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, _ = await profiled_reader(client)
    me, headers = await quick_user(client, "client")
    session_id = await ended_reading(pool, me["id"], reader["id"])
    for stars, body in ((0, "x"), (6, "x"), ("5", "x"), (True, "x"), (5, "x" * 1001)):
        resp = await client.post(f"/api/readings/{session_id}/review", json={"stars": stars, "body": body},
                                 headers=headers)
        assert resp.status == 422, (stars, len(body))
    assert (await _review(client, session_id, headers, stars=5, body="x" * 1000))[0] == 201


async def test_a_review_is_editable_for_seven_days_and_the_reader_replies_once(client: TestClient,
                                                                             pool: asyncpg.Pool) -> None:
    reader, reader_headers = await profiled_reader(client)
    me, headers = await quick_user(client, "client")
    _, other_reader = await quick_user(client, "reader")
    session_id = await ended_reading(pool, me["id"], reader["id"])
    review = (await _review(client, session_id, headers, stars=2))[1]["review"]
    resp = await client.post(f"/api/reviews/{review['id']}", json={"stars": 5, "body": "Better on reflection."},
                             headers=headers)
    edited = (await resp.json())["review"]
    assert (edited["stars"], edited["body"], edited["editedAt"] is not None) == (5, "Better on reflection.", True)
    assert (await (await client.get(f"/api/readers/{reader['id']}/reviews", headers=headers)).json())["rating"] == 5.0
    resp = await client.post(f"/api/reviews/{review['id']}/reply", json={"body": "Thank you."}, headers=other_reader)
    assert resp.status == 404  # not their review
    resp = await client.post(f"/api/reviews/{review['id']}/reply", json={"body": "Thank you."},
                             headers=reader_headers)
    assert (await resp.json())["review"]["reply"] == "Thank you."
    resp = await client.post(f"/api/reviews/{review['id']}/reply", json={"body": "Again"}, headers=reader_headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (409, "already_replied")
    await pool.execute("UPDATE reviews SET created_at = now() - interval '7 days 1 second' WHERE id = $1",
                       review["id"])
    resp = await client.post(f"/api/reviews/{review['id']}", json={"stars": 1}, headers=headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (409, "edit_window_over")


async def test_two_reviews_of_one_reading_at_once_let_one_in(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, _ = await profiled_reader(client)
    me, headers = await quick_user(client, "client")
    session_id = await ended_reading(pool, me["id"], reader["id"])
    statuses = sorted(s for s, _ in await asyncio.gather(*(_review(client, session_id, headers) for _ in range(4))))
    assert statuses == [201, 409, 409, 409]
    assert await pool.fetchval("SELECT reviews FROM reader_ratings WHERE reader_id = $1", reader["id"]) == 1


async def test_an_operator_hides_a_review_kept_and_audited(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, _ = await profiled_reader(client)
    me, headers = await quick_user(client, "client")
    _, admin = await quick_user(client, "admin")
    review = (await _review(client, await ended_reading(pool, me["id"], reader["id"]), headers,
                            body="Buy my course at spam.example"))[1]["review"]
    found = (await (await client.get("/api/admin/reviews?q=spam", headers=admin)).json())
    assert found == {"reviews": []}  # the search is by people and ids, not words
    found = (await (await client.get(f"/api/admin/reviews?q={review['id']}", headers=admin)).json())["reviews"]
    assert [r["id"] for r in found] == [review["id"]]
    resp = await client.post(f"/api/admin/reviews/{review['id']}/hide", json={"reason": "x"}, headers=admin)
    assert resp.status == 422  # a reason is needed
    resp = await client.post(f"/api/admin/reviews/{review['id']}/hide", json={"reason": "advertising"},
                             headers=admin)
    assert (await resp.json()) == {"changed": True}
    assert await pool.fetchval("SELECT count(*) FROM reviews WHERE id = $1", review["id"]) == 1  # kept
    profile = (await (await client.get(f"/api/readers/{reader['id']}", headers=headers)).json())["reader"]
    assert (profile["reviewCount"], profile["rating"], profile["reviews"]) == (0, None, [])
    assert "spam.example" not in await (await client.get(f"/readers/{reader['id']}")).text()
    resp = await client.post(f"/api/reviews/{review['id']}", json={"stars": 1}, headers=headers)
    assert resp.status == 409  # a hidden review is not edited back into view
    trail = (await (await client.get("/api/admin/audit", headers=admin)).json())["audit"]
    assert (trail[0]["action"], trail[0]["targetId"], trail[0]["reason"]) == ("review_hidden", review["id"],
                                                                             "advertising")
    resp = await client.post(f"/api/admin/reviews/{review['id']}/show", json={"reason": "appeal upheld"},
                             headers=admin)
    assert (await resp.json()) == {"changed": True}
    assert await pool.fetchval("SELECT reviews FROM reader_ratings WHERE reader_id = $1", reader["id"]) == 1
    assert (await client.post(f"/api/admin/reviews/{review['id']}/hide", json={"reason": "advertising"},
                              headers=headers)).status == 403


async def test_a_goodwill_refund_of_everything_takes_the_review_out(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, _ = await profiled_reader(client)
    me, headers = await quick_user(client, "client")
    _, admin = await quick_user(client, "admin")
    session_id = await ended_reading(pool, me["id"], reader["id"], paid_cents=300)
    await _review(client, session_id, headers, stars=1)
    resp = await client.post(f"/api/admin/readings/{session_id}/refund", headers=admin,
                             json={"amountCents": 100, "reason": "partly poor audio"})
    assert resp.status == 201
    assert await pool.fetchval("SELECT reviews FROM reader_ratings WHERE reader_id = $1", reader["id"]) == 1
    resp = await client.post(f"/api/admin/readings/{session_id}/refund", headers=admin,
                             json={"amountCents": 200, "reason": "the rest"})
    assert resp.status == 201
    assert await pool.fetchval("SELECT reviews FROM reader_ratings WHERE reader_id = $1", reader["id"]) == 0
    assert await pool.fetchval("SELECT hidden_at IS NOT NULL FROM reviews WHERE session_id = $1", session_id)


async def test_the_console_lists_and_hides_reviews(client: TestClient, pool: asyncpg.Pool) -> None:
    reader, _ = await profiled_reader(client)
    me, headers = await quick_user(client, "client")
    review = (await _review(client, await ended_reading(pool, me["id"], reader["id"]), headers))[1]["review"]
    admin, _ = await quick_user(client, "admin")
    resp = await client.post("/api/auth/login", json={"email": admin["email"], "password": PASSWORD})
    assert resp.status == 200
    page = await (await client.get("/admin/reviews")).text()
    assert "Clear and kind." in page and f"/admin/reviews/{review['id']}/hide" in page
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    resp = await client.post(f"/admin/reviews/{review['id']}/hide", data={"csrf": csrf, "reason": "rude"},
                             allow_redirects=False)
    assert resp.status == 303 and "Hidden" in resp.headers["Location"]
    assert await pool.fetchval("SELECT hidden_at IS NOT NULL FROM reviews WHERE id = $1", review["id"])
