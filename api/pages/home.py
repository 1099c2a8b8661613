"""The home page: live streams for a signed-in user, then the readers a client can choose from, with the
search's filters, sort and pages (:mod:`api.marketplace.search`), online readers first by default."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from api.accounts.auth import authenticate
from api.core.errors import Invalid
from api.core.keys import DATABASE
from api.marketplace import search
from api.pages.rendering import render
from api.pages.streams import live_streams

# The specialties offered in the filter change slowly: counted at most once a minute per node.
SPECIALTIES_TTL = 60.0
SPECIALTIES = web.AppKey("home_specialties", dict)


def _card(reader: dict[str, Any]) -> dict[str, Any]:
    """A search result as the card template reads it."""
    rates = reader["rates"]
    return {"id": reader["id"], "display_name": reader["displayName"], "status": reader["status"],
            "bio": reader["bio"], "specialties": reader["specialties"], "photo_url": reader["photoUrl"],
            "rating": reader["rating"], "review_count": reader["reviewCount"], "profile_url": reader["profileUrl"],
            "rates": {"chat": rates["chatCents"], "audio": rates["audioCents"], "video": rates["videoCents"]}}


async def _specialties(app: web.Application) -> list[str]:
    cached = app[SPECIALTIES]
    if time.monotonic() - cached.get("at", -SPECIALTIES_TTL) >= SPECIALTIES_TTL:
        cached.update(at=time.monotonic(), labels=await search.specialties_in_use(app[DATABASE].pool))
    return list(cached["labels"])


async def home(request: web.Request) -> web.Response:
    auth = await authenticate(request)
    if auth is not None and auth.user.role == "reader":
        raise web.HTTPFound("/dashboard")
    problem = None
    try:
        query = search.parse(request.query)
    except Invalid as exc:
        query, problem = search.ReaderQuery(), exc.message
    pool = request.app[DATABASE].pool
    found = await search.search(pool, query)
    online = await pool.fetchval(
        "SELECT count(*) FROM reader_availability a JOIN users u ON u.id = a.reader_id"
        " WHERE a.status = 'online' AND u.role = 'reader' AND u.suspended_at IS NULL")
    # Live streams are for signed-in users (watching needs an account).
    streams = await live_streams(request.app) if auth is not None else []
    return await render(request, "home.html", auth, script="home", readers=[_card(r) for r in found.readers],
                        online=online, results=found, query=query, problem=problem,
                        specialties=await _specialties(request.app), streams=streams)


def setup(app: web.Application) -> None:
    app[SPECIALTIES] = {}
    app.router.add_get("/", home, name="home")
