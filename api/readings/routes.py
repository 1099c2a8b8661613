"""Reading endpoints: request, accept, decline, cancel, end, details, history, transcript, scheduling.

Handlers are thin: they check who is asking, change the reading through :func:`api.readings.store.apply`
(the pure state machine under a row lock), store the notifications in the same transaction, and hand
running readings to the node's :class:`api.readings.live.LiveReadings`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from api.accounts.auth import require
from api.accounts.readers import rate_for
from api.core import validation as v
from api.core.errors import ApiError, Conflict, Invalid, NotFound
from api.core.keys import DATABASE, SETTINGS
from api.core.openapi import operation
from api.core.times import iso
from api.readings import scheduling
from api.readings.live import LIVE_READINGS
from api.readings.states import Actor, Event, Mode, State
from api.readings.store import apply as apply_event
from api.readings.store import create as create_reading
from api.readings.store import fetch_for, history, money_for, session_json, set_reader_busy
from api.realtime import notifications
from billing import intro_offer, ledger
from billing.prices import confirm_price

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

SESSION_TYPES = ("chat", "audio", "video")


class PaymentRequired(ApiError):
    status, code = 402, "insufficient_funds"


def session_payload(row: asyncpg.Record) -> dict[str, Any]:
    return {"session": session_json(row)}


@routes.post("/api/webrtc/client/request-session")
@operation(summary="Ask an online reader for a pay-per-minute reading (the reader's rate is locked now)",
           roles=("client",),
           request='{readerId, sessionType: "chat" | "audio" | "video", expectedCents (the per-minute rate shown)}',
           response="{session}; 409 price_changed (error.priceCents: the rate now), 409 session_pending"
                    " (error.sessionId: the reading the client already has open)", status=201)
async def request_session(request: web.Request) -> web.Response:
    user = await require(request, "client")
    body = await v.read_json(request)
    reader_id = v.uuid_value(body.get("readerId"), "readerId")
    session_type = v.choice(body, "sessionType", SESSION_TYPES)
    expected = v.cents(body, "expectedCents")
    assert expected is not None
    settings = request.app[SETTINGS]
    pool = request.app[DATABASE].pool
    async with pool.acquire() as conn, conn.transaction():
        reader = await conn.fetchrow(
            "SELECT u.role, u.display_name, a.status FROM users u LEFT JOIN reader_availability a ON a.reader_id = u.id"
            " WHERE u.id = $1 FOR SHARE OF u", reader_id)
        if reader is None or reader["role"] != "reader":
            raise NotFound("no such reader", code="unknown_reader", field="readerId")
        if reader["status"] == "busy":
            raise Conflict("the reader is in another reading", code="reader_busy")
        if reader["status"] != "online":
            raise Conflict("the reader is not online", code="reader_offline")
        rate = await rate_for(conn, reader_id, session_type)
        if rate <= 0:
            raise Conflict(f"the reader does not offer {session_type} readings", code="not_offered",
                           field="sessionType")
        confirm_price(expected, rate, what=f"A {session_type} reading with {reader['display_name']}", per="/min")
        if await ledger.balance(conn, user.id) < rate:
            raise PaymentRequired(f"the balance must cover at least one minute ({rate} cents)")
        try:
            async with conn.transaction():
                session_id = await create_reading(conn, client_id=user.id, reader_id=reader_id,
                                                  session_type=session_type, mode=Mode.PER_MINUTE, rate_cents=rate,
                                                  expires_in=settings.request_expiry_seconds)
        except asyncpg.UniqueViolationError:
            # The page links to it: the one open per-minute reading the client holds (migration 0003's index).
            open_id = await conn.fetchval(
                "SELECT id FROM rtc_sessions WHERE client_id = $1 AND mode = 'per_minute'"
                " AND status IN ('requested', 'accepted', 'active')", user.id)
            raise Conflict("you already have a reading requested or in progress", code="session_pending",
                           details={"sessionId": str(open_id)} if open_id else None) from None
        await intro_offer.claim(conn, client_id=user.id, reader_id=reader_id, session_id=str(session_id),
                                minutes=settings.intro_free_minutes, readers=settings.intro_readers)
        row, _ = await fetch_for(conn, str(session_id), user.id)
        stored = [await notifications.store(conn, reader_id, "session-requested", session_payload(row))]
    notifications.deliver(request.app, stored)
    log.info("reading requested", extra={"sessionId": str(session_id), "userId": user.id, "readerId": reader_id,
                                         "sessionType": session_type, "rateCents": rate,
                                         "introMinutes": row["intro_minutes"]})
    return web.json_response(session_payload(row), status=201)


@routes.get("/api/webrtc/client/intro-offer")
@operation(summary="The client's intro offer: free minutes at the start of a first reading with a new reader",
           roles=("client",), response="{freeMinutes, readers, readersLeft, usedReaderIds}")
async def intro(request: web.Request) -> web.Response:
    """What the pages show before a reading starts: a reader not in ``usedReaderIds`` gives the first
    ``freeMinutes`` free while ``readersLeft`` is above 0."""
    user = await require(request, "client")
    settings = request.app[SETTINGS]
    used = await intro_offer.previous_readers(request.app[DATABASE].pool, user.id)
    left = max(0, settings.intro_readers - len(used)) if settings.intro_free_minutes > 0 else 0
    return web.json_response({"freeMinutes": settings.intro_free_minutes, "readers": settings.intro_readers,
                              "readersLeft": left, "usedReaderIds": sorted(used)})


@routes.post("/api/webrtc/reader/accept-session/{sessionId}")
@operation(summary="Accept a requested reading (the reader becomes busy)", roles=("reader",), response="{session}")
async def accept_session(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    session_id = v.path_uuid(request, "sessionId")
    pool = request.app[DATABASE].pool
    live = request.app[LIVE_READINGS]
    home = None
    if live.homes is not None:  # in a cluster: where it will run, placed first (503 while Redis does not answer)
        await fetch_for(pool, session_id, user.id)  # someone else's reading is a 404 before anything is placed
        home = await live.place(session_id)
    try:
        async with pool.acquire() as conn, conn.transaction():
            _, row = await apply_event(conn, session_id, Event.ACCEPT, Actor.READER, user_id=user.id)
            await set_reader_busy(conn, user.id, True)
            stored = [await notifications.store(conn, str(row["client_id"]), "session-accepted",
                                                session_payload(row))]
    except asyncpg.UniqueViolationError:
        raise Conflict("you already have a reading in progress", code="reader_busy") from None
    notifications.deliver(request.app, stored)
    await live.accepted(row, home)
    log.info("reading accepted", extra={"sessionId": session_id, "userId": user.id, "home": home})
    return web.json_response(session_payload(row))


@routes.post("/api/webrtc/reader/decline-session/{sessionId}")
@operation(summary="Decline a requested reading", roles=("reader",), response="{session}")
async def decline_session(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    session_id = v.path_uuid(request, "sessionId")
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        _, row = await apply_event(conn, session_id, Event.DECLINE, Actor.READER, user_id=user.id,
                                   reason="declined")
        stored = [await notifications.store(conn, str(row["client_id"]), "session-declined", session_payload(row))]
    notifications.deliver(request.app, stored)
    log.info("reading declined", extra={"sessionId": session_id, "userId": user.id})
    return web.json_response(session_payload(row))


@routes.post("/api/webrtc/client/cancel-session/{sessionId}")
@operation(summary="Cancel a request before the reader accepts it (or a scheduled booking, refunded by policy)",
           roles=("client",), response="{session, refundedCents}")
async def cancel_session(request: web.Request) -> web.Response:
    user = await require(request, "client")
    session_id = v.path_uuid(request, "sessionId")
    app = request.app
    before, actor = await fetch_for(app[DATABASE].pool, session_id, user.id)
    if actor is not Actor.CLIENT:
        raise NotFound("no such session", code="unknown_session")
    if before["mode"] == "scheduled" and before["status"] == State.ACCEPTED:
        # A paid booking: its owner (the runtime) cancels it by the scheduled rules.
        row = await app[LIVE_READINGS].end(session_id, Actor.CLIENT, "cancelled_by_client")
        refunded = int(row["refunded_cents"])
    else:
        async with app[DATABASE].pool.acquire() as conn, conn.transaction():
            _, row = await apply_event(conn, session_id, Event.CANCEL, Actor.CLIENT, user_id=user.id,
                                       reason="cancelled_by_client")
            stored = [await notifications.store(conn, str(row["reader_id"]), "session-cancelled",
                                                session_payload(row))]
        notifications.deliver(app, stored)
        refunded = 0
    log.info("reading cancelled", extra={"sessionId": session_id, "userId": user.id, "refundedCents": refunded})
    return web.json_response({**session_payload(row), "refundedCents": refunded})


@routes.post("/api/webrtc/session/{sessionId}/end")
@operation(summary="End an accepted or active reading (either participant); settles the bill",
           roles=("client", "reader"), response="{session, money}")
async def end_session(request: web.Request) -> web.Response:
    user = await require(request, "client", "reader")
    session_id = v.path_uuid(request, "sessionId")
    pool = request.app[DATABASE].pool
    _, actor = await fetch_for(pool, session_id, user.id)
    row = await request.app[LIVE_READINGS].end(session_id, actor, f"ended_by_{actor.value}")
    return web.json_response({**session_payload(row), "money": await money_for(pool, session_id, actor)})


@routes.get("/api/webrtc/session/{sessionId}")
@operation(summary="One reading (its two participants only), with its money from the ledger",
           roles=("client", "reader"),
           response="{session, money: {chargedCents (net of refunds), earnedCents (the reader alone)}}")
async def session_details(request: web.Request) -> web.Response:
    user = await require(request)
    session_id = v.path_uuid(request, "sessionId")
    pool = request.app[DATABASE].pool
    row, actor = await fetch_for(pool, session_id, user.id)
    return web.json_response({**session_payload(row), "money": await money_for(pool, session_id, actor)})


@routes.get("/api/webrtc/sessions")
@operation(summary="The signed-in user's readings (as client or reader), newest first", roles=(),
           response="{sessions: [session]}",
           query={"status": "comma-separated statuses to keep", "limit": "1..200 (50)"})
async def session_history(request: web.Request) -> web.Response:
    user = await require(request)
    statuses, limit = history_filters(request)
    rows = await history(request.app[DATABASE].pool, user.id, limit=limit, statuses=statuses)
    return web.json_response({"sessions": [session_json(r) for r in rows]})


@routes.get("/api/webrtc/session/{sessionId}/transcript")
@operation(summary="A reading's chat transcript (its two participants only)", roles=("client", "reader"),
           response="{messages: [{id, from, role, text, at}]}")
async def transcript(request: web.Request) -> web.Response:
    user = await require(request)
    session_id = v.path_uuid(request, "sessionId")
    pool = request.app[DATABASE].pool
    row, _ = await fetch_for(pool, session_id, user.id)
    messages = await pool.fetch(
        "SELECT id, sender_id, body, created_at FROM reading_messages WHERE session_id = $1 ORDER BY id", session_id)
    client_id = str(row["client_id"])
    return web.json_response({"messages": [
        {"id": m["id"], "from": str(m["sender_id"]),
         "role": "client" if str(m["sender_id"]) == client_id else "reader",
         "text": m["body"], "at": iso(m["created_at"])} for m in messages]})


@routes.post("/api/webrtc/client/schedule-session")
@operation(summary="Book and pay a scheduled reading at the reader's flat rate", roles=("client",),
           request='{readerId, sessionType, startsAt (ISO-8601), minutes: 15 | 30 | 45 | 60,'
                   ' expectedCents (the flat price shown)}',
           response="{session}; 409 price_changed (error.priceCents: the price now)", status=201)
async def schedule_session(request: web.Request) -> web.Response:
    user = await require(request, "client")
    body = await v.read_json(request)
    reader_id = v.uuid_value(body.get("readerId"), "readerId")
    session_type = v.choice(body, "sessionType", SESSION_TYPES)
    minutes = v.integer(body, "minutes", options=scheduling.LENGTHS)
    starts_at = scheduling.parse_start(body.get("startsAt"))
    expected = v.cents(body, "expectedCents")
    assert expected is not None
    if starts_at <= datetime.now(UTC):
        raise Invalid("startsAt must be in the future", field="startsAt")
    row, stored = await scheduling.book(request.app, user.id, reader_id, session_type, starts_at, minutes,
                                        expected_cents=expected)
    notifications.deliver(request.app, stored)
    return web.json_response(session_payload(row), status=201)


@routes.get("/api/webrtc/reader/sessions")
@operation(summary="The reader's readings, newest first (pending requests first when status=requested)",
           roles=("reader",), response="{sessions: [session]}",
           query={"status": "comma-separated statuses to keep", "limit": "1..200 (50)"})
async def reader_sessions(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    statuses, limit = history_filters(request)
    rows = await history(request.app[DATABASE].pool, user.id, limit=limit, statuses=statuses)
    rows = [r for r in rows if str(r["reader_id"]) == user.id]
    return web.json_response({"sessions": [session_json(r) for r in rows]})


def history_filters(request: web.Request) -> tuple[list[str] | None, int]:
    """``?status=a,b&limit=n`` checked against the known statuses."""
    raw = request.query.get("status")
    statuses = None
    if raw:
        statuses = [s.strip() for s in raw.split(",") if s.strip()]
        bad = [s for s in statuses if s not in {st.value for st in State}]
        if bad:
            raise Invalid(f"unknown status {bad[0]}", field="status")
    limit = v.query_int(request, "limit", default=50, low=1, high=200)
    return statuses, limit


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
