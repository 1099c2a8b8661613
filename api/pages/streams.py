"""Pages for live streams: watch a stream, go live, and the live streams on the home page.

The data comes from the same queries as the REST API (api/streams/store.py, api/streams/gift_catalogue.py).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from api.core.errors import NotFound
from api.core.keys import DATABASE
from api.core.validation import path_uuid
from api.pages.rendering import page_auth, render
from api.streams import store
from api.streams.gift_catalogue import BUILTIN_ICONS, active_gifts
from api.streams.hub import STREAM_HUB
from api.streams.signaling import MAX_CHAT_CHARS
from api.streams.store import fetch_stream, leaderboard, stream_json


def gift_view(row: asyncpg.Record) -> dict[str, Any]:
    """A catalogue gift for a template: built-in icons are SVG files, anything else an emoji shown as text."""
    icon = row["icon"]
    return {"id": str(row["id"]), "name": row["name"], "priceCents": row["price_cents"], "icon": icon,
            "svg": f"/static/icons/gifts/{icon}.svg" if icon in BUILTIN_ICONS else None}


async def _catalogue(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [gift_view(r) for r in await active_gifts(pool)]


async def live_streams(app: web.Application, limit: int = 24) -> list[dict[str, Any]]:
    """The live streams for the home page, newest first."""
    rows = await store.live_streams(app[DATABASE].pool, limit=limit)
    return [stream_json(r, app[STREAM_HUB]) for r in rows]


async def watch_page(request: web.Request) -> web.Response:
    auth = await page_auth(request)
    pool = request.app[DATABASE].pool
    try:
        row = await fetch_stream(pool, path_uuid(request, "stream_id"))
    except NotFound:
        return await render(request, "not_found.html", auth, script="layout", status=404)
    stream = stream_json(row, request.app[STREAM_HUB])
    if stream["readerId"] == auth.user.id and stream["status"] == "live":
        raise web.HTTPFound("/live")
    rates = await pool.fetchrow("SELECT chat_cents, audio_cents, video_cents, message_cents FROM reader_rates"
                                " WHERE reader_id = $1", stream["readerId"])
    rate_data = {k: (rates[f"{k}_cents"] if rates else 0) for k in ("chat", "audio", "video", "message")}
    board = await leaderboard(pool, stream["id"])
    gifts = await _catalogue(pool)
    return await render(request, "stream_watch.html", auth, script="stream-watch", stream=stream, gifts=gifts,
                         rates=rate_data, board=board.public(), data={
                             "stream": stream, "gifts": gifts, "leaderboard": board.public(), "rates": rate_data,
                             "maxChat": MAX_CHAT_CHARS})


async def live_page(request: web.Request) -> web.Response:
    """The reader's studio: start a stream, or run the one that is live (preview, viewers, gifts, chat)."""
    auth = await page_auth(request, "reader")
    pool = request.app[DATABASE].pool
    row = await pool.fetchrow(
        "SELECT s.id, s.reader_id, u.display_name AS reader_name, s.title, s.description, s.status,"
        " s.started_at, s.ended_at FROM streams s JOIN users u ON u.id = s.reader_id"
        " WHERE s.reader_id = $1 AND s.status = 'live'", auth.user.id)
    stream = stream_json(row, request.app[STREAM_HUB]) if row is not None else None
    board = (await leaderboard(pool, stream["id"])).public() if stream else []
    gifts = await _catalogue(pool)
    return await render(request, "stream_live.html", auth, script="stream-live", stream=stream, board=board, data={
        "stream": stream, "leaderboard": board, "gifts": gifts, "maxChat": MAX_CHAT_CHARS})


def setup(app: web.Application) -> None:
    app.router.add_get("/streams/{stream_id}", watch_page)
    app.router.add_get("/live", live_page)
