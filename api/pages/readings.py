"""The reading page (the live room, or the transcript once ended) and the history of a user's readings."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
from aiohttp import web

from api.core.errors import NotFound
from api.core.keys import DATABASE, SETTINGS
from api.core.times import iso
from api.core.validation import path_uuid
from api.pages.rendering import page_auth, render
from api.readings import store as reading_store
from api.readings import upcoming
from api.readings.states import Actor
from api.realtime.turn import ice_servers_for
from api.streams.gift_catalogue import active_gifts, gift_json
from billing.statements import ReadingTotals, readings_totals


async def reading_page(request: web.Request) -> web.Response:
    auth = await page_auth(request, "client", "reader")
    pool = request.app[DATABASE].pool
    try:
        row, actor = await reading_store.fetch_for(pool, path_uuid(request, "session_id"), auth.user.id)
    except NotFound:  # unknown, malformed, or someone else's: the same page
        return await render(request, "not_found.html", auth, script="layout", status=404)
    session = reading_store.session_json(row)
    is_client = actor is Actor.CLIENT
    other_id = str(row["reader_id"] if is_client else row["client_id"])
    other_name = row["reader_name"] if is_client else row["client_name"]
    transcript: list[dict[str, Any]] = []
    if session["status"] in ("accepted", "active", "ended"):
        # The chat so far: a reload mid-reading shows it again, and the summary's transcript is complete.
        messages = await pool.fetch(
            "SELECT sender_id, body, created_at FROM reading_messages WHERE session_id = $1 ORDER BY id", session["id"])
        transcript = [{"who": "You" if str(m["sender_id"]) == auth.user.id else other_name, "text": m["body"],
                       "mine": str(m["sender_id"]) == auth.user.id, "at": iso(m["created_at"])} for m in messages]
    settings = request.app[SETTINGS]
    data: dict[str, Any] = {
        "session": session,
        "role": actor.value,
        "counterpart": {"id": other_id, "displayName": other_name},
        "graceSeconds": settings.grace_seconds,
        # The user's own ICE servers (as `joined` gives them), so the room's first peer connection and offer are
        # made while the signaling socket connects.
        "iceServers": ice_servers_for(settings, auth.user.id, time.time()),
        "requestExpirySeconds": settings.request_expiry_seconds,
        "transcript": transcript,
        # The summary's figures come from the ledger, the same query as GET /api/webrtc/session/{id}.
        "money": await reading_store.money_for(pool, session["id"], actor),
    }
    if row["mode"] == "scheduled":
        data["opensAt"] = iso(upcoming.opens_at(settings, row))
    # After a reading its client can tip the reader with a gift from the catalogue (api/marketplace/tips.py).
    gifts = [gift_json(g) for g in await active_gifts(pool)] if is_client else []
    return await render(request, "reading.html", auth, script="reading", data={**data, "gifts": gifts},
                         session=session, counterpart=data["counterpart"], other_id=other_id, role=actor.value,
                         gifts=gifts)


async def readings_of(pool: asyncpg.Pool, user_id: str, limit: int) -> list[dict[str, Any]]:
    """A user's readings, newest first, each with the other participant's id and name."""
    readings = []
    rows = await reading_store.history(pool, user_id, limit=limit)
    totals = await readings_totals(pool, [str(r["id"]) for r in rows])
    for row in rows:
        mine_as_client = str(row["client_id"]) == user_id
        money = totals.get(str(row["id"]), ReadingTotals(0, 0))
        readings.append({
            **reading_store.session_json(row),
            "other_id": str(row["reader_id"] if mine_as_client else row["client_id"]),
            "other_name": row["reader_name"] if mine_as_client else row["client_name"],
            "requested_at": row["requested_at"],
            # From the ledger: what the client paid net of refunds, or what the reader earned.
            "money_cents": money.charged_cents if mine_as_client else money.earned_cents,
        })
    return readings


async def history_page(request: web.Request) -> web.Response:
    auth = await page_auth(request, "client", "reader")
    readings = await readings_of(request.app[DATABASE].pool, auth.user.id, 200)
    return await render(request, "history.html", auth, script="layout", readings=readings)


def setup(app: web.Application) -> None:
    app.router.add_get("/history", history_page)
    app.router.add_get("/readings/{session_id}", reading_page)
