"""``/api/streams``: a reader goes live and ends the stream; anyone logged in lists, reads and ranks streams."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from aiohttp import web

from api import validation as v
from api.appkeys import DATABASE, SETTINGS
from api.auth import require
from api.errors import Conflict, Forbidden, NotFound
from api.leaderboard import Gifter, Leaderboard
from api.openapi import operation
from api.stream_hub import StreamHub

log = logging.getLogger(__name__)

STREAM_HUB = web.AppKey("stream_hub", StreamHub)
LEADERBOARD_SIZE = 10

_COLUMNS = ("s.id, s.reader_id, u.display_name AS reader_name, s.title, s.description, s.status,"
            " s.started_at, s.ended_at")


def stream_json(row: asyncpg.Record, hub: StreamHub) -> dict[str, Any]:
    stream_id = str(row["id"])
    return {
        "id": stream_id,
        "readerId": str(row["reader_id"]),
        "readerName": row["reader_name"],
        "title": row["title"],
        "description": row["description"],
        "status": row["status"],
        "viewerCount": hub.viewer_count(stream_id) if row["status"] == "live" else 0,
        "startedAt": row["started_at"].isoformat(),
        "endedAt": row["ended_at"].isoformat() if row["ended_at"] else None,
    }


async def fetch_stream(db: asyncpg.Pool | asyncpg.Connection, stream_id: str) -> asyncpg.Record:
    """The stream with its reader's name, or a 404."""
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM streams s JOIN users u ON u.id = s.reader_id"  # noqa: S608
                            " WHERE s.id = $1", stream_id)
    if row is None:
        raise NotFound("no such stream", code="stream_not_found")
    return row


async def leaderboard(db: asyncpg.Pool | asyncpg.Connection, stream_id: str) -> Leaderboard:
    """The stream's leaderboard, from every gift stored for it."""
    rows = await db.fetch(
        "SELECT g.sender_id, u.display_name, sum(g.price_cents)::bigint AS total, count(*) AS gifts,"
        " max(g.created_at) AS last_at FROM gift_sends g JOIN users u ON u.id = g.sender_id"
        " WHERE g.stream_id = $1 GROUP BY g.sender_id, u.display_name", stream_id)
    return Leaderboard([Gifter(str(r["sender_id"]), r["display_name"], r["total"], r["gifts"], r["last_at"])
                        for r in rows], limit=LEADERBOARD_SIZE)


@operation(summary="Go live: start a stream (at most one live stream per reader)", roles=("reader",),
           request="{title, description?}",
           response="{stream: {id, readerId, readerName, title, description, status, viewerCount, startedAt, endedAt}}",
           status=201, tags=("streams",))
async def create_stream(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    body = await v.read_json(request)
    title = v.text(body, "title", max_len=120)
    description = v.text(body, "description", min_len=0, max_len=1000) if body.get("description") is not None else ""
    pool = request.app[DATABASE].pool
    async with pool.acquire() as conn, conn.transaction():
        try:
            stream_id = await conn.fetchval(
                "INSERT INTO streams (reader_id, title, description) VALUES ($1, $2, $3) RETURNING id",
                user.id, title, description)
        except asyncpg.UniqueViolationError:
            raise Conflict("you are already live; end that stream first", code="already_live") from None
        # A streaming reader takes private readings too: viewers can ask for one from the stream.
        # (Going live is choosing to be online; a reading in progress keeps the reader busy until it ends.)
        await conn.execute(
            "INSERT INTO reader_availability (reader_id, status, chosen_status) VALUES ($1, 'online', 'online')"
            " ON CONFLICT (reader_id) DO UPDATE SET chosen_status = 'online', updated_at = now(),"
            " status = CASE WHEN reader_availability.status = 'busy' THEN 'busy' ELSE 'online' END", user.id)
        row = await fetch_stream(conn, stream_id)
    log.info("stream started", extra={"streamId": str(stream_id), "userId": user.id})
    await request.app[STREAM_HUB].started(str(stream_id))
    return web.json_response({"stream": stream_json(row, request.app[STREAM_HUB])}, status=201)


@operation(summary="The live streams, newest first", roles=(), response="{streams: [stream]}", tags=("streams",))
async def list_streams(request: web.Request) -> web.Response:
    await require(request)
    rows = await request.app[DATABASE].pool.fetch(
        f"SELECT {_COLUMNS} FROM streams s JOIN users u ON u.id = s.reader_id"  # noqa: S608
        " WHERE s.status = 'live' ORDER BY s.started_at DESC LIMIT 200")
    hub = request.app[STREAM_HUB]
    return web.json_response({"streams": [stream_json(r, hub) for r in rows]})


@operation(summary="One stream, live or ended", roles=(), response="{stream}", tags=("streams",))
async def get_stream(request: web.Request) -> web.Response:
    await require(request)
    row = await fetch_stream(request.app[DATABASE].pool, v.path_uuid(request, "streamId"))
    return web.json_response({"stream": stream_json(row, request.app[STREAM_HUB])})


async def finish_stream(app: web.Application, stream_id: str, *, reason: str, reader_gone: bool = False) -> bool:
    """End a live stream: store it ended, then tell everyone on it and let its media go.

    ``reader_gone``: the stream ended because its reader never came or left (not by their choice), so the
    online status going live gave them is taken back too (a reading in progress keeps them busy until it ends).
    Returns False when it had already ended. Waits for gifts being paid right now (they hold a share lock on the
    row), so no gift lands after the end.
    """
    async with app[DATABASE].pool.acquire() as conn, conn.transaction():
        reader_id = await conn.fetchval(
            "UPDATE streams SET status = 'ended', ended_at = now() WHERE id = $1 AND status = 'live'"
            " RETURNING reader_id", stream_id)
        if reader_id is None:
            return False
        if reader_gone:
            await conn.execute(
                "UPDATE reader_availability SET chosen_status = 'offline', updated_at = now(),"
                " status = CASE WHEN status = 'busy' THEN 'busy' ELSE 'offline' END WHERE reader_id = $1", reader_id)
    log.info("stream ended", extra={"streamId": stream_id, "reason": reason})
    await app[STREAM_HUB].ended(stream_id)
    return True


@operation(summary="End a live stream (its reader); everyone on it is told", roles=("reader",),
           response="{stream}", tags=("streams",))
async def end_stream(request: web.Request) -> web.Response:
    """End a live stream (its reader only). Ending an ended stream again answers with it unchanged."""
    user = await require(request, "reader")
    stream_id = v.path_uuid(request, "streamId")
    pool = request.app[DATABASE].pool
    row = await fetch_stream(pool, stream_id)
    if str(row["reader_id"]) != user.id:
        raise Forbidden("only the stream's reader can end it", code="not_your_stream")
    if await finish_stream(request.app, stream_id, reason="ended_by_reader"):
        row = await fetch_stream(pool, stream_id)
    return web.json_response({"stream": stream_json(row, request.app[STREAM_HUB])})


@operation(summary="A stream's top gifters by cents given", roles=(),
           response="{streamId, leaderboard: [{rank, userId, displayName, totalCents, gifts}], totalCents}",
           tags=("streams",))
async def get_leaderboard(request: web.Request) -> web.Response:
    await require(request)
    stream_id = v.path_uuid(request, "streamId")
    pool = request.app[DATABASE].pool
    await fetch_stream(pool, stream_id)
    board = await leaderboard(pool, stream_id)
    return web.json_response({"streamId": stream_id, "leaderboard": board.public(),
                              "totalCents": board.total_cents()})


async def _hub(app: web.Application):  # type: ignore[no-untyped-def]
    yield
    await app[STREAM_HUB].close()


def setup(app: web.Application) -> None:
    async def ranked(stream_id: str) -> list[dict[str, Any]]:
        return (await leaderboard(app[DATABASE].pool, stream_id)).public()

    app[STREAM_HUB] = StreamHub(max_viewers=app[SETTINGS].max_viewers_per_stream, leaderboard=ranked)
    app.cleanup_ctx.append(_hub)
    app.router.add_post("/api/streams", create_stream)
    app.router.add_get("/api/streams", list_streams)
    app.router.add_get("/api/streams/{streamId}", get_stream)
    app.router.add_post("/api/streams/{streamId}/end", end_stream)
    app.router.add_get("/api/streams/{streamId}/leaderboard", get_leaderboard)
