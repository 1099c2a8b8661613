"""Reader endpoints: rates, availability, and the list of readers clients can book."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from aiohttp import web

from api.accounts.auth import require
from api.core import validation as v
from api.core.errors import Conflict, Invalid
from api.core.keys import DATABASE
from api.core.openapi import operation

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

FLAT_MINUTES = ("15", "30", "45", "60")
MAX_RATE_CENTS = 100_000  # per minute or per reading: $1,000 is a typo, not a price
RATES_SHAPE = '{chatCents, audioCents, videoCents, flatCents: {"15", "30", "45", "60"}, messageCents}'
_PER_MINUTE = {"chatCents": "chat_cents", "audioCents": "audio_cents", "videoCents": "video_cents",
               "messageCents": "message_cents"}
RATE_COLUMN = {"chat": "chat_cents", "audio": "audio_cents", "video": "video_cents"}


def rates_json(row: asyncpg.Record) -> dict[str, Any]:
    """A reader's prices; 0 means the reader does not offer that kind of reading."""
    return {
        "chatCents": row["chat_cents"], "audioCents": row["audio_cents"], "videoCents": row["video_cents"],
        "flatCents": {m: row[f"flat_{m}_cents"] for m in FLAT_MINUTES},
        "messageCents": row["message_cents"],
    }


async def _rates_row(db: asyncpg.Pool | asyncpg.Connection, reader_id: str) -> asyncpg.Record:
    row = await db.fetchrow("SELECT * FROM reader_rates WHERE reader_id = $1", reader_id)
    if row is None:  # a reader created outside the API: give them the default row
        row = await db.fetchrow(
            "INSERT INTO reader_rates (reader_id) VALUES ($1) ON CONFLICT (reader_id) DO UPDATE"
            " SET reader_id = EXCLUDED.reader_id RETURNING *", reader_id)
    assert row is not None
    return row


async def rate_for(db: asyncpg.Pool | asyncpg.Connection, reader_id: str, session_type: str) -> int:
    """The reader's current per-minute rate for a kind of reading (0: not offered)."""
    return int((await _rates_row(db, reader_id))[RATE_COLUMN[session_type]])


@routes.get("/api/webrtc/reader/rates")
@operation(summary="The reader's own rates", roles=("reader",), response=RATES_SHAPE)
async def get_rates(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    return web.json_response(rates_json(await _rates_row(request.app[DATABASE].pool, user.id)))


@routes.post("/api/webrtc/reader/rates")
@operation(summary="Set the reader's rates (fields left out keep their value)", roles=("reader",),
           request=RATES_SHAPE + " (integer cents; per minute, flat per scheduled reading)", response=RATES_SHAPE)
async def set_rates(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    body = await v.read_json(request)
    updates: dict[str, int] = {}
    for field, column in _PER_MINUTE.items():
        value = v.cents(body, field, high=MAX_RATE_CENTS, required=False)
        if value is not None:
            updates[column] = value
    flat = body.get("flatCents")
    if flat is not None:
        if not isinstance(flat, dict) or not set(flat) <= set(FLAT_MINUTES):
            raise Invalid('flatCents must be an object with keys "15", "30", "45", "60"', field="flatCents")
        for minutes in FLAT_MINUTES:
            value = v.cents(flat, minutes, high=MAX_RATE_CENTS * 60, required=False)
            if value is not None:
                updates[f"flat_{minutes}_cents"] = value
    unknown = set(body) - set(_PER_MINUTE) - {"flatCents"}
    if unknown:
        raise Invalid(f"unknown field {sorted(unknown)[0]}", field=sorted(unknown)[0])
    pool = request.app[DATABASE].pool
    await _rates_row(pool, user.id)
    if updates:
        assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(updates, start=2))
        await pool.execute(
            f"UPDATE reader_rates SET {assignments}, updated_at = now() WHERE reader_id = $1",  # noqa: S608
            user.id, *updates.values(),
        )
        log.info("reader rates set", extra={"userId": user.id, "fields": sorted(updates)})
    return web.json_response(rates_json(await _rates_row(pool, user.id)))


# What a reader needs before clients may see them online (so no client ever sees an empty card), in the order
# the dashboard's checklist shows them.
READINESS = {"displayName": "a display name", "rates": "a per-minute rate for chat, audio or video"}


def missing_for_online(rates: asyncpg.Record, display_name: str) -> list[str]:
    """What keeps a reader from going online: ``displayName``, ``rates`` (none when ready)."""
    missing = []
    if not display_name.strip():
        missing.append("displayName")
    if not any(rates[column] > 0 for column in RATE_COLUMN.values()):
        missing.append("rates")
    return missing


@routes.post("/api/webrtc/reader/availability")
@operation(summary="Go online or offline (busy is set by the system during a reading)", roles=("reader",),
           request='{status: "online" | "offline"}', response='{status: "online" | "offline" | "busy"}; 409'
           ' not_ready (error.missing: what to add first: "displayName", "rates")')
async def set_availability(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    status = v.choice(await v.read_json(request), "status", ("online", "offline"))
    pool = request.app[DATABASE].pool
    if status == "online":
        missing = missing_for_online(await _rates_row(pool, user.id), user.display_name)
        if missing:
            raise Conflict(f"add {' and '.join(READINESS[m] for m in missing)} before going online",
                           code="not_ready", details={"missing": missing})
    row = await pool.fetchrow(
        "INSERT INTO reader_availability (reader_id, status, chosen_status) VALUES ($1, $2, $2)"
        " ON CONFLICT (reader_id) DO UPDATE SET chosen_status = $2, updated_at = now(),"
        " status = CASE WHEN reader_availability.status = 'busy' THEN 'busy' ELSE $2 END"
        " RETURNING status",
        user.id, status,
    )
    assert row is not None
    log.info("reader availability set", extra={"userId": user.id, "status": status})
    return web.json_response({"status": row["status"], "chosenStatus": status})


@routes.get("/api/webrtc/reader/availability")
@operation(summary="The reader's own availability", roles=("reader",),
           response='{status: "online" | "offline" | "busy", chosenStatus}')
async def get_availability(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    row = await request.app[DATABASE].pool.fetchrow(
        "SELECT status, chosen_status FROM reader_availability WHERE reader_id = $1", user.id)
    status, chosen = (row["status"], row["chosen_status"]) if row else ("offline", "offline")
    return web.json_response({"status": status, "chosenStatus": chosen})


async def reader_cards(db: asyncpg.Pool | asyncpg.Connection, *, include_offline: bool,
                       limit: int) -> list[asyncpg.Record]:
    """Readers as clients browse them (the home page and ``available-readers``): availability, every rate, bio
    and specialties; online first, then busy, then offline, each by name."""
    return list(await db.fetch(
        "SELECT u.id, u.display_name, a.status, r.*, coalesce(p.bio, '') AS bio,"
        " coalesce(p.specialties, '{}') AS specialties FROM users u"
        " JOIN reader_availability a ON a.reader_id = u.id JOIN reader_rates r ON r.reader_id = u.id"
        " LEFT JOIN reader_profiles p ON p.reader_id = u.id"
        " WHERE u.role = 'reader' AND ($1 OR a.status IN ('online', 'busy'))"
        " ORDER BY CASE a.status WHEN 'online' THEN 0 WHEN 'busy' THEN 1 ELSE 2 END, u.display_name, u.id LIMIT $2",
        include_offline, limit))


@routes.get("/api/webrtc/client/available-readers")
@operation(summary="Readers a client can book now: online or busy, with their rates", roles=("client",),
           response="{readers: [{id, displayName, status, rates}]}")
async def available_readers(request: web.Request) -> web.Response:
    await require(request, "client")
    rows = await reader_cards(request.app[DATABASE].pool, include_offline=False, limit=500)
    readers = [{"id": str(r["id"]), "displayName": r["display_name"], "status": r["status"],
                "rates": rates_json(r)} for r in rows]
    return web.json_response({"readers": readers})


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
