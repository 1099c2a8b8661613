"""Verified reviews: a client rates a reading they paid for (1-5 stars and up to 1,000 characters), once, and may
change it for 7 days; the reader answers once; an operator can hide one (kept, audited: :func:`hide`).

The rules are :mod:`api.marketplace.review_policy`'s; what a reading cost the client is the ledger's
(:func:`billing.goodwill.refundable_cents`: paid and not given back). The reader's average and count follow the
reviews in ``reader_ratings`` (a trigger, in the same transaction).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from api.accounts.auth import User, require
from api.cluster import CLUSTER
from api.cluster.limits import SharedUserAndAddressLimiter
from api.core import audit
from api.core import validation as v
from api.core.client_address import client_address
from api.core.errors import Conflict, Forbidden, Invalid, NotFound, TooManyRequests
from api.core.keys import DATABASE
from api.core.openapi import operation
from api.core.times import iso
from api.marketplace import review_policy as policy
from api.realtime import notifications
from billing.goodwill import refundable_cents

log = logging.getLogger(__name__)

REVIEW_LIMITER = web.AppKey("review_limiter", SharedUserAndAddressLimiter)
WRITES_PER_HOUR = 30
PER_PAGE = 10
REVIEW_SHAPE = ("{id, sessionId, readerId, author, stars, body, sessionType, createdAt, editedAt, editableUntil, "
                "reply, repliedAt, hidden}")

_SELECT = ("SELECT rv.*, s.session_type, c.display_name AS client_name FROM reviews rv"
           " JOIN rtc_sessions s ON s.id = rv.session_id JOIN users c ON c.id = rv.client_id")


def author_name(display_name: str) -> str:
    """How a reviewer is named in public: their first name and the initial of their last ("Sam K.")."""
    words = display_name.split()
    if not words:
        return "A client"
    return words[0] if len(words) == 1 else f"{words[0]} {words[-1][:1]}."


def review_json(row: asyncpg.Record | dict[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    hidden = row["hidden_at"] is not None
    return {"id": str(row["id"]), "sessionId": str(row["session_id"]), "readerId": str(row["reader_id"]),
            "author": author_name(row["client_name"]), "stars": row["stars"], "body": row["body"],
            "sessionType": row["session_type"], "createdAt": iso(row["created_at"]), "editedAt": iso(row["edited_at"]),
            "editableUntil": iso(policy.editable_until(row["created_at"])),
            "canEdit": policy.can_edit(row["created_at"], now, hidden=hidden),
            "reply": row["reply"], "repliedAt": iso(row["replied_at"]), "hidden": hidden}


async def _limit(request: web.Request, user: User) -> None:
    wait = await request.app[REVIEW_LIMITER].hit(user.id, client_address(request))
    if wait > 0:
        raise TooManyRequests("too many reviews at once; try again later", headers={"Retry-After": str(int(wait) + 1)})


def _stars(body: dict[str, Any]) -> int:
    return v.integer(body, "stars", options=range(1, policy.MAX_STARS + 1))


def _body(body: dict[str, Any], name: str = "body", *, min_len: int = 0) -> str:
    if name not in body and not min_len:
        return ""
    return v.text(body, name, min_len=min_len, max_len=policy.MAX_BODY_CHARS)


async def facts(conn: asyncpg.Connection | asyncpg.Pool, session_id: str, user_id: str
                ) -> tuple[asyncpg.Record, policy.ReadingFacts]:
    """The reading (404 when it is not the user's) and what the review rule needs to know of it."""
    row = await conn.fetchrow(
        "SELECT s.id, s.client_id, s.reader_id, s.status, s.started_at, u.display_name AS reader_name,"
        " EXISTS (SELECT 1 FROM reviews WHERE session_id = s.id) AS reviewed"
        " FROM rtc_sessions s JOIN users u ON u.id = s.reader_id WHERE s.id = $1 AND $2 IN (s.client_id, s.reader_id)",
        session_id, user_id)
    if row is None:
        raise NotFound("no such reading", code="reading_not_found")
    paid = await refundable_cents(conn, session_id)
    return row, policy.ReadingFacts(is_client=str(row["client_id"]) == user_id, status=row["status"],
                                    started=row["started_at"] is not None, paid_cents=paid, reviewed=row["reviewed"])


@operation(summary="A reading's review, and whether the user may write one", roles=("client", "reader"),
           response=f"{{review: {REVIEW_SHAPE} | null, canReview, reason}}", tags=("reviews",))
async def get_review(request: web.Request) -> web.Response:
    user = await require(request, "client", "reader")
    session_id = v.path_uuid(request, "sessionId")
    pool = request.app[DATABASE].pool
    _, found = await facts(pool, session_id, user.id)
    row = await pool.fetchrow(f"{_SELECT} WHERE rv.session_id = $1", session_id)
    refused = policy.refusal(found)
    return web.json_response({"review": review_json(row) if row else None, "canReview": refused is None,
                              "reason": refused.value if refused else None})


@operation(summary="Review a reading the client paid for (once; 1-5 stars, up to 1,000 characters)",
           roles=("client",), request="{stars: 1..5, body?}",
           response=f"{{review: {REVIEW_SHAPE}}}; 409 already_reviewed | reading_not_ended | reading_never_started "
           "| reading_not_paid", status=201, tags=("reviews",))
async def post_review(request: web.Request) -> web.Response:
    user = await require(request, "client")
    session_id = v.path_uuid(request, "sessionId")
    body = await v.read_json(request)
    stars, text = _stars(body), _body(body)
    await _limit(request, user)
    pool = request.app[DATABASE].pool
    async with pool.acquire() as conn, conn.transaction():
        reading, found = await facts(conn, session_id, user.id)
        refused = policy.refusal(found)
        if refused is not None:
            raise (Forbidden if refused is policy.Refusal.NOT_YOURS else Conflict)(
                policy.EXPLAIN[refused], code=refused.value)
        try:  # two reviews of one reading at once: the unique session_id lets one in
            review_id = await conn.fetchval(
                "INSERT INTO reviews (session_id, client_id, reader_id, stars, body) VALUES ($1, $2, $3, $4, $5)"
                " RETURNING id", session_id, user.id, reading["reader_id"], stars, text)
        except asyncpg.UniqueViolationError:
            refused = policy.Refusal.ALREADY_REVIEWED
            raise Conflict(policy.EXPLAIN[refused], code=refused.value) from None
        stored = await notifications.store(conn, str(reading["reader_id"]), "review-posted", {
            "sessionId": session_id, "stars": stars,
            "message": f"{author_name(user.display_name)} left you a {stars}-star review."})
        row = await conn.fetchrow(f"{_SELECT} WHERE rv.id = $1", review_id)
    notifications.deliver(request.app, [stored])
    log.info("review posted", extra={"sessionId": session_id, "userId": user.id, "stars": stars})
    return web.json_response({"review": review_json(row)}, status=201)


@operation(summary="Change one's review (for 7 days after writing it)", roles=("client",),
           request="{stars?: 1..5, body?}", response=f"{{review: {REVIEW_SHAPE}}}; 409 edit_window_over",
           tags=("reviews",))
async def edit_review(request: web.Request) -> web.Response:
    user = await require(request, "client")
    review_id = v.path_uuid(request, "reviewId")
    body = await v.read_json(request)
    if not {"stars", "body"} & set(body):
        raise Invalid("send stars or body", field="stars")
    stars = _stars(body) if "stars" in body else None
    text = _body(body) if "body" in body else None
    await _limit(request, user)
    pool = request.app[DATABASE].pool
    async with pool.acquire() as conn, conn.transaction():
        current = await conn.fetchrow("SELECT created_at, hidden_at FROM reviews WHERE id = $1 AND client_id = $2"
                                      " FOR UPDATE", review_id, user.id)
        if current is None:
            raise NotFound("no such review", code="review_not_found")
        if not policy.can_edit(current["created_at"], datetime.now(UTC), hidden=current["hidden_at"] is not None):
            raise Conflict("a review can be changed for 7 days after it was written", code="edit_window_over")
        await conn.execute("UPDATE reviews SET stars = coalesce($2, stars), body = coalesce($3, body),"
                           " edited_at = now() WHERE id = $1", review_id, stars, text)
        row = await conn.fetchrow(f"{_SELECT} WHERE rv.id = $1", review_id)
    return web.json_response({"review": review_json(row)})


@operation(summary="The reader's one answer to a review of them", roles=("reader",), request="{body}",
           response=f"{{review: {REVIEW_SHAPE}}}; 409 already_replied", tags=("reviews",))
async def reply(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    review_id = v.path_uuid(request, "reviewId")
    text = _body(await v.read_json(request), min_len=1)
    await _limit(request, user)
    pool = request.app[DATABASE].pool
    async with pool.acquire() as conn, conn.transaction():
        current = await conn.fetchrow("SELECT client_id, session_id, reply, hidden_at FROM reviews WHERE id = $1"
                                      " AND reader_id = $2 FOR UPDATE", review_id, user.id)
        if current is None:
            raise NotFound("no such review", code="review_not_found")
        if not policy.can_reply(current["reply"], hidden=current["hidden_at"] is not None):
            raise Conflict("a review takes one answer, and you have given it", code="already_replied")
        await conn.execute("UPDATE reviews SET reply = $2, replied_at = now() WHERE id = $1", review_id, text)
        stored = await notifications.store(conn, str(current["client_id"]), "review-reply", {
            "sessionId": str(current["session_id"]), "message": f"{user.display_name} answered your review."})
        row = await conn.fetchrow(f"{_SELECT} WHERE rv.id = $1", review_id)
    notifications.deliver(request.app, [stored])
    return web.json_response({"review": review_json(row)})


async def page_of(db: asyncpg.Pool | asyncpg.Connection, reader_id: str, page: int = 1,
                  per_page: int = PER_PAGE) -> list[dict[str, Any]]:
    """A reader's visible reviews, newest first (hidden ones are kept but shown nowhere)."""
    rows = await db.fetch(f"{_SELECT} WHERE rv.reader_id = $1 AND rv.hidden_at IS NULL"
                          " ORDER BY rv.created_at DESC, rv.id DESC LIMIT $2 OFFSET $3",
                          reader_id, per_page, (page - 1) * per_page)
    now = datetime.now(UTC)
    return [review_json(r, now=now) for r in rows]


@operation(summary="A reader's reviews, newest first", roles=(), query={"page": "1..1000"},
           response=f"{{reviews: [{REVIEW_SHAPE}], rating, reviewCount, page, pages}}", tags=("reviews",))
async def reader_reviews(request: web.Request) -> web.Response:
    await require(request)
    reader_id = v.path_uuid(request, "readerId")
    page = v.query_int(request, "page", default=1, low=1, high=1000)
    pool = request.app[DATABASE].pool
    summary = await pool.fetchrow("SELECT reviews, rating FROM reader_ratings WHERE reader_id = $1", reader_id)
    count = summary["reviews"] if summary else 0
    return web.json_response({
        "reviews": await page_of(pool, reader_id, page), "reviewCount": count, "page": page,
        "rating": float(summary["rating"]) if summary and summary["rating"] is not None else None,
        "pages": max(1, -(-count // PER_PAGE))})


# -- operators -------------------------------------------------------------------------------------------

async def hide(conn: asyncpg.Connection, *, admin_id: str, review_id: str, reason: str, hidden: bool = True) -> bool:
    """Hide (or show again) a review, in the caller's transaction, with its audit row; False when nothing changed."""
    done = await conn.execute(
        "UPDATE reviews SET hidden_at = CASE WHEN $2 THEN now() END, hidden_by = CASE WHEN $2 THEN $3::uuid END"
        " WHERE id = $1 AND (hidden_at IS NULL) = $2", review_id, hidden, admin_id)
    if done == "UPDATE 0":
        if not await conn.fetchval("SELECT true FROM reviews WHERE id = $1", review_id):
            raise NotFound("no such review", code="review_not_found")
        return False
    await audit.record(conn, admin_id=admin_id, action="review_hidden" if hidden else "review_shown",
                       target_kind="review", target_id=review_id, reason=reason)
    return True


async def hide_if_refunded(conn: asyncpg.Connection, *, admin_id: str, session_id: str) -> None:
    """A reading refunded in full after its review was written is no longer a paid reading: its review goes."""
    review_id = await conn.fetchval("SELECT id FROM reviews WHERE session_id = $1 AND hidden_at IS NULL", session_id)
    if review_id is not None and await refundable_cents(conn, session_id) <= 0:
        await hide(conn, admin_id=admin_id, review_id=str(review_id), reason="the reading was refunded in full")


async def search_for_operators(db: asyncpg.Pool | asyncpg.Connection, q: str, limit: int = 100
                               ) -> list[dict[str, Any]]:
    """Reviews by reader or client email or name, or by review or reading id; newest first, hidden ones too."""
    rows = await db.fetch(
        f"{_SELECT} JOIN users rd ON rd.id = rv.reader_id WHERE $1 = '' OR rv.id::text = $1 OR"
        " rv.session_id::text = $1 OR c.email ILIKE '%' || $1 || '%' OR rd.email ILIKE '%' || $1 || '%' OR"
        " rd.display_name ILIKE '%' || $1 || '%' ORDER BY rv.created_at DESC LIMIT $2", q, limit)
    return [review_json(r) | {"clientName": r["client_name"]} for r in rows]


def setup(app: web.Application) -> None:
    app[REVIEW_LIMITER] = SharedUserAndAddressLimiter("reviews", WRITES_PER_HOUR, 3 * WRITES_PER_HOUR, 3600.0,
                                                      node=app.get(CLUSTER))
    app.router.add_get("/api/readings/{sessionId}/review", get_review)
    app.router.add_post("/api/readings/{sessionId}/review", post_review)
    app.router.add_post("/api/reviews/{reviewId}", edit_review)
    app.router.add_post("/api/reviews/{reviewId}/reply", reply)
    app.router.add_get("/api/readers/{readerId}/reviews", reader_reviews)
