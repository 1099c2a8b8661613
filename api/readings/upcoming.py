"""A user's booked readings still to come (the "Upcoming" list, as client or reader) and each one's ``.ics`` file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web

from api.accounts.auth import require
from api.core import validation as v
from api.core.errors import NotFound
from api.core.keys import DATABASE, SETTINGS
from api.core.openapi import operation
from api.core.times import iso
from api.readings import calendar
from api.readings.store import COLUMNS, FROM, fetch_for, session_json
from config import Settings

routes = web.RouteTableDef()


def opens_at(settings: Settings, row: asyncpg.Record) -> datetime:
    """When a booked reading's room opens: a little before its start (``schedule_early_join_seconds``)."""
    return row["scheduled_start"] - timedelta(seconds=settings.schedule_early_join_seconds)


def upcoming_json(settings: Settings, row: asyncpg.Record, user_id: str) -> dict[str, Any]:
    mine_as_client = str(row["client_id"]) == user_id
    return {**session_json(row), "role": "client" if mine_as_client else "reader",
            "withName": row["reader_name"] if mine_as_client else row["client_name"],
            "joinOpensAt": iso(opens_at(settings, row)),
            "calendarUrl": f"/api/webrtc/session/{row['id']}/calendar.ics"}


async def upcoming_of(db: asyncpg.Pool | asyncpg.Connection, user_id: str, *, limit: int = 50) -> list[asyncpg.Record]:
    """The user's booked readings not over yet, soonest first."""
    return list(await db.fetch(
        f"SELECT {COLUMNS} FROM {FROM} WHERE (s.client_id = $1 OR s.reader_id = $1)"  # noqa: S608
        " AND s.mode = 'scheduled' AND s.status IN ('accepted', 'active')"
        " AND s.scheduled_start + make_interval(mins => s.scheduled_minutes) > now()"
        " ORDER BY s.scheduled_start LIMIT $2", user_id, limit))


@routes.get("/api/webrtc/upcoming")
@operation(summary="The user's booked readings still to come, soonest first, with when each room opens",
           roles=("client", "reader"), response="{sessions: [session + {role, withName, joinOpensAt, calendarUrl}]}",
           tags=("booking",))
async def upcoming(request: web.Request) -> web.Response:
    user = await require(request, "client", "reader")
    settings = request.app[SETTINGS]
    rows = await upcoming_of(request.app[DATABASE].pool, user.id)
    return web.json_response({"sessions": [upcoming_json(settings, r, user.id) for r in rows]})


@routes.get("/api/webrtc/session/{sessionId}/calendar.ics")
@operation(summary="A booked reading as an iCalendar file (its two participants only)", roles=("client", "reader"),
           response="text/calendar", tags=("booking",))
async def calendar_file(request: web.Request) -> web.Response:
    user = await require(request, "client", "reader")
    row, _ = await fetch_for(request.app[DATABASE].pool, v.path_uuid(request, "sessionId"), user.id)
    if row["mode"] != "scheduled":
        raise NotFound("only a booked reading has a calendar file", code="not_scheduled")
    settings = request.app[SETTINGS]
    mine_as_client = str(row["client_id"]) == user.id
    other = row["reader_name"] if mine_as_client else row["client_name"]
    url = f"{settings.public_url}/readings/{row['id']}"
    body = calendar.event(
        uid=f"{row['id']}@soulseer", starts_at=row["scheduled_start"], ends_at=row["scheduled_end"],
        title=f"SoulSeer {row['session_type']} reading with {other}",
        description=f"{row['scheduled_minutes']}-minute {row['session_type']} reading with {other}. The room opens"
                    f" {settings.schedule_early_join_seconds // 60} minutes before the start: {url}",
        url=url, created=row["accepted_at"] or datetime.now(UTC))
    return web.Response(body=body.encode(), content_type="text/calendar", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="soulseer-reading-{row["id"]}.ics"',
        "Cache-Control": "private, no-store"})


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
