"""Pages for live streams and premium messages: watch a stream, go live, and the message inbox.

They follow api/pages.py's conventions (cookie login, the layout's context, page data in a JSON block read by
an ES module, no inline script) and reuse its rendering; the data comes from the same queries as the REST API.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from aiohttp import web

from api.core.errors import NotFound
from api.core.keys import DATABASE, SETTINGS
from api.core.validation import path_uuid
from api.messages.routes import MAX_BODY_CHARS
from api.pages import _page_auth, _render
from api.streams.gift_catalogue import BUILTIN_ICONS
from api.streams.hub import STREAM_HUB
from api.streams.signaling import MAX_CHAT_CHARS
from api.streams.store import fetch_stream, leaderboard, stream_json


def gift_view(row: asyncpg.Record) -> dict[str, Any]:
    """A catalogue gift for a template: built-in icons are SVG files, anything else an emoji shown as text."""
    icon = row["icon"]
    return {"id": str(row["id"]), "name": row["name"], "priceCents": row["price_cents"], "icon": icon,
            "svg": f"/static/icons/gifts/{icon}.svg" if icon in BUILTIN_ICONS else None}


async def _catalogue(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT id, name, price_cents, icon FROM gifts WHERE active ORDER BY price_cents, name")
    return [gift_view(r) for r in rows]


async def live_streams(app: web.Application, limit: int = 24) -> list[dict[str, Any]]:
    """The live streams for the home page, newest first."""
    rows = await app[DATABASE].pool.fetch(
        "SELECT s.id, s.reader_id, u.display_name AS reader_name, s.title, s.description, s.status,"
        " s.started_at, s.ended_at FROM streams s JOIN users u ON u.id = s.reader_id"
        " WHERE s.status = 'live' ORDER BY s.started_at DESC LIMIT $1", limit)
    return [stream_json(r, app[STREAM_HUB]) for r in rows]


async def watch_page(request: web.Request) -> web.Response:
    auth = await _page_auth(request)
    pool = request.app[DATABASE].pool
    try:
        row = await fetch_stream(pool, path_uuid(request, "stream_id"))
    except NotFound:
        return await _render(request, "not_found.html", auth, script="layout", status=404)
    stream = stream_json(row, request.app[STREAM_HUB])
    if stream["readerId"] == auth.user.id and stream["status"] == "live":
        raise web.HTTPFound("/live")
    rates = await pool.fetchrow("SELECT chat_cents, audio_cents, video_cents, message_cents FROM reader_rates"
                                " WHERE reader_id = $1", stream["readerId"])
    rate_data = {k: (rates[f"{k}_cents"] if rates else 0) for k in ("chat", "audio", "video", "message")}
    board = await leaderboard(pool, stream["id"])
    gifts = await _catalogue(pool)
    return await _render(request, "stream_watch.html", auth, script="stream-watch", stream=stream, gifts=gifts,
                         rates=rate_data, board=board.public(), data={
                             "stream": stream, "gifts": gifts, "leaderboard": board.public(), "rates": rate_data,
                             "maxChat": MAX_CHAT_CHARS})


async def live_page(request: web.Request) -> web.Response:
    """The reader's studio: start a stream, or run the one that is live (preview, viewers, gifts, chat)."""
    auth = await _page_auth(request, "reader")
    pool = request.app[DATABASE].pool
    row = await pool.fetchrow(
        "SELECT s.id, s.reader_id, u.display_name AS reader_name, s.title, s.description, s.status,"
        " s.started_at, s.ended_at FROM streams s JOIN users u ON u.id = s.reader_id"
        " WHERE s.reader_id = $1 AND s.status = 'live'", auth.user.id)
    stream = stream_json(row, request.app[STREAM_HUB]) if row is not None else None
    board = (await leaderboard(pool, stream["id"])).public() if stream else []
    gifts = await _catalogue(pool)
    return await _render(request, "stream_live.html", auth, script="stream-live", stream=stream, board=board, data={
        "stream": stream, "leaderboard": board, "gifts": gifts, "maxChat": MAX_CHAT_CHARS})


async def inbox_page(request: web.Request) -> web.Response:
    """The message inbox: threads with unread counts; ``/messages/{id}`` opens one, ``?reader=`` starts one."""
    auth = await _page_auth(request, "client", "reader")
    pool = request.app[DATABASE].pool
    thread_id = None
    if "thread_id" in request.match_info:
        try:
            thread_id = path_uuid(request, "thread_id")
        except NotFound:
            return await _render(request, "not_found.html", auth, script="layout", status=404)
    new_reader = None
    if auth.user.role == "client" and request.query.get("reader"):
        reader_id: str | None
        try:
            reader_id = str(uuid.UUID(request.query["reader"]))
        except ValueError:
            reader_id = None
        if reader_id:
            found = await pool.fetchrow(
                "SELECT u.id, u.display_name, coalesce(r.message_cents, 0) AS message_cents,"
                " (SELECT t.id FROM message_threads t WHERE t.client_id = $2 AND t.reader_id = u.id) AS thread_id"
                " FROM users u LEFT JOIN reader_rates r ON r.reader_id = u.id WHERE u.id = $1 AND u.role = 'reader'",
                reader_id, auth.user.id)
            if found is not None and found["thread_id"] is not None:
                raise web.HTTPFound(f"/messages/{found['thread_id']}")
            if found is not None:
                new_reader = {"id": str(found["id"]), "displayName": found["display_name"],
                              "messageCents": found["message_cents"]}
    price = None
    if auth.user.role == "client" and thread_id is not None:
        price = await pool.fetchval(
            "SELECT coalesce(r.message_cents, 0) FROM message_threads t LEFT JOIN reader_rates r"
            " ON r.reader_id = t.reader_id WHERE t.id = $1 AND t.client_id = $2", thread_id, auth.user.id)
    return await _render(request, "inbox.html", auth, script="inbox", new_reader=new_reader, thread_id=thread_id,
                         data={"threadId": thread_id, "newReader": new_reader, "messageCents": price,
                               "maxBody": MAX_BODY_CHARS,
                               "refundHours": request.app[SETTINGS].message_refund_after_seconds // 3600})


def setup(app: web.Application) -> None:
    app.router.add_get("/streams/{stream_id}", watch_page)
    app.router.add_get("/live", live_page)
    app.router.add_get("/messages", inbox_page)
    app.router.add_get("/messages/{thread_id}", inbox_page)
