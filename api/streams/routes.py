"""``/api/streams``: a reader goes live and ends the stream; anyone logged in lists, reads and ranks streams."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from aiohttp import web

from api.accounts.auth import require
from api.core import validation as v
from api.core.errors import Conflict, Forbidden
from api.core.keys import DATABASE, SETTINGS
from api.core.openapi import operation
from api.streams.hub import STREAM_HUB, StreamHub
from api.streams.store import fetch_stream, finish_stream, leaderboard, live_streams, stream_json

log = logging.getLogger(__name__)

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
    rows = await live_streams(request.app[DATABASE].pool, limit=200)
    hub = request.app[STREAM_HUB]
    return web.json_response({"streams": [stream_json(r, hub) for r in rows]})


@operation(summary="One stream, live or ended", roles=(), response="{stream}", tags=("streams",))
async def get_stream(request: web.Request) -> web.Response:
    await require(request)
    row = await fetch_stream(request.app[DATABASE].pool, v.path_uuid(request, "streamId"))
    return web.json_response({"stream": stream_json(row, request.app[STREAM_HUB])})


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
