"""Live streams in PostgreSQL (``streams``): the JSON shape clients see, one stream, its leaderboard, its end."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from aiohttp import web

from api.core.errors import NotFound
from api.core.keys import DATABASE
from api.core.times import iso
from api.streams.hub import STREAM_HUB, StreamHub
from api.streams.leaderboard import Gifter, Leaderboard

log = logging.getLogger(__name__)

LEADERBOARD_SIZE = 10

COLUMNS = ("s.id, s.reader_id, u.display_name AS reader_name, s.title, s.description, s.status,"
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
        "startedAt": iso(row["started_at"]),
        "endedAt": iso(row["ended_at"]),
    }


async def fetch_stream(db: asyncpg.Pool | asyncpg.Connection, stream_id: str) -> asyncpg.Record:
    """The stream with its reader's name, or a 404."""
    row = await db.fetchrow(f"SELECT {COLUMNS} FROM streams s JOIN users u ON u.id = s.reader_id"  # noqa: S608
                            " WHERE s.id = $1", stream_id)
    if row is None:
        raise NotFound("no such stream", code="stream_not_found")
    return row


async def live_streams(db: asyncpg.Pool | asyncpg.Connection, *, limit: int) -> list[asyncpg.Record]:
    """The live streams, newest first (the REST list and the home page)."""
    return list(await db.fetch(f"SELECT {COLUMNS} FROM streams s JOIN users u ON u.id = s.reader_id"  # noqa: S608
                               " WHERE s.status = 'live' ORDER BY s.started_at DESC LIMIT $1", limit))


async def leaderboard(db: asyncpg.Pool | asyncpg.Connection, stream_id: str) -> Leaderboard:
    """The stream's leaderboard, from every gift stored for it."""
    rows = await db.fetch(
        "SELECT g.sender_id, u.display_name, sum(g.price_cents)::bigint AS total, count(*) AS gifts,"
        " max(g.created_at) AS last_at FROM gift_sends g JOIN users u ON u.id = g.sender_id"
        " WHERE g.stream_id = $1 GROUP BY g.sender_id, u.display_name", stream_id)
    return Leaderboard([Gifter(str(r["sender_id"]), r["display_name"], r["total"], r["gifts"], r["last_at"])
                        for r in rows], limit=LEADERBOARD_SIZE)


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
