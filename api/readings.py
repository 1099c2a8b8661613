"""Reading endpoints: request, accept, decline, cancel, end, details, history, transcript, scheduling.

Handlers are thin: they check who is asking, change the reading through :func:`api.reading_store.apply`
(the pure state machine under a row lock), store the notifications in the same transaction, and hand
running readings to the node's :class:`api.live_readings.LiveReadings`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from api import notifications, scheduling
from api import validation as v
from api.appkeys import DATABASE, SETTINGS
from api.auth import require
from api.errors import ApiError, Conflict, Invalid, NotFound
from api.live_readings import LIVE_READINGS
from api.openapi import operation
from api.readers import history_filters, rate_for
from api.reading_states import Actor, Event, State
from api.reading_store import apply as apply_event
from api.reading_store import fetch_for, history, iso, session_json, set_reader_busy
from billing.prices import confirm_price

log = logging.getLogger(__name__)

SESSION_TYPES = ("chat", "audio", "video")


class PaymentRequired(ApiError):
    status, code = 402, "insufficient_funds"


def session_payload(row: asyncpg.Record) -> dict[str, Any]:
    return {"session": session_json(row)}


@operation(summary="Ask an online reader for a pay-per-minute reading (the reader's rate is locked now)",
           roles=("client",),
           request='{readerId, sessionType: "chat" | "audio" | "video", expectedCents (the per-minute rate shown)}',
           response="{session}; 409 price_changed (error.priceCents: the rate now)", status=201)
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
        balance = await conn.fetchval("SELECT balance_cents FROM client_balances WHERE client_id = $1", user.id)
        if (balance or 0) < rate:
            raise PaymentRequired(f"the balance must cover at least one minute ({rate} cents)")
        try:
            async with conn.transaction():
                session_id = await conn.fetchval(
                    "INSERT INTO rtc_sessions (client_id, reader_id, session_type, rate_cents, expires_at)"
                    " VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) RETURNING id",
                    user.id, reader_id, session_type, rate, settings.request_expiry_seconds,
                )
        except asyncpg.UniqueViolationError:
            raise Conflict("you already have a reading requested or in progress",
                           code="session_pending") from None
        row, _ = await fetch_for(conn, str(session_id), user.id)
        stored = [await notifications.store(conn, reader_id, "session-requested", session_payload(row))]
    notifications.deliver(request.app, stored)
    log.info("reading requested", extra={"sessionId": str(session_id), "userId": user.id, "readerId": reader_id,
                                         "sessionType": session_type, "rateCents": rate})
    return web.json_response(session_payload(row), status=201)


@operation(summary="Accept a requested reading (the reader becomes busy)", roles=("reader",), response="{session}")
async def accept_session(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    session_id = v.path_uuid(request, "sessionId")
    pool = request.app[DATABASE].pool
    try:
        async with pool.acquire() as conn, conn.transaction():
            _, row = await apply_event(conn, session_id, Event.ACCEPT, Actor.READER, user_id=user.id)
            await set_reader_busy(conn, user.id, True)
            stored = [await notifications.store(conn, str(row["client_id"]), "session-accepted",
                                                session_payload(row))]
    except asyncpg.UniqueViolationError:
        raise Conflict("you already have a reading in progress", code="reader_busy") from None
    notifications.deliver(request.app, stored)
    await request.app[LIVE_READINGS].accepted(row)
    log.info("reading accepted", extra={"sessionId": session_id, "userId": user.id})
    return web.json_response(session_payload(row))


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


@operation(summary="End an accepted or active reading (either participant); settles the bill",
           roles=("client", "reader"), response="{session}")
async def end_session(request: web.Request) -> web.Response:
    user = await require(request, "client", "reader")
    session_id = v.path_uuid(request, "sessionId")
    _, actor = await fetch_for(request.app[DATABASE].pool, session_id, user.id)
    row = await request.app[LIVE_READINGS].end(session_id, actor, f"ended_by_{actor.value}")
    return web.json_response(session_payload(row))


@operation(summary="One reading (its two participants only)", roles=("client", "reader"), response="{session}")
async def session_details(request: web.Request) -> web.Response:
    user = await require(request)
    session_id = v.path_uuid(request, "sessionId")
    row, _ = await fetch_for(request.app[DATABASE].pool, session_id, user.id)
    return web.json_response(session_payload(row))


@operation(summary="The signed-in user's readings (as client or reader), newest first", roles=(),
           response="{sessions: [session]}",
           query={"status": "comma-separated statuses to keep", "limit": "1..200 (50)"})
async def session_history(request: web.Request) -> web.Response:
    user = await require(request)
    statuses, limit = history_filters(request)
    rows = await history(request.app[DATABASE].pool, user.id, limit=limit, statuses=statuses)
    return web.json_response({"sessions": [session_json(r) for r in rows]})


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


def setup(app: web.Application) -> None:
    app.router.add_post("/api/webrtc/client/request-session", request_session)
    app.router.add_post("/api/webrtc/client/schedule-session", schedule_session)
    app.router.add_post("/api/webrtc/client/cancel-session/{sessionId}", cancel_session)
    app.router.add_post("/api/webrtc/reader/accept-session/{sessionId}", accept_session)
    app.router.add_post("/api/webrtc/reader/decline-session/{sessionId}", decline_session)
    app.router.add_get("/api/webrtc/sessions", session_history)
    app.router.add_get("/api/webrtc/session/{sessionId}", session_details)
    app.router.add_post("/api/webrtc/session/{sessionId}/end", end_session)
    app.router.add_get("/api/webrtc/session/{sessionId}/transcript", transcript)
