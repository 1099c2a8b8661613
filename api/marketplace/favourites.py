"""A client's favourite readers and "notify me once": ``PUT|DELETE /api/favourites/{readerId}``,
``GET /api/favourites``, ``PUT|DELETE /api/readers/{readerId}/notify-once``. The alerts themselves are
:mod:`api.marketplace.online_alerts`'."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from aiohttp import web

from api.accounts.auth import User, require
from api.cluster import CLUSTER
from api.cluster.limits import SharedUserAndAddressLimiter
from api.core.client_address import client_address
from api.core.errors import NotFound, TooManyRequests
from api.core.keys import DATABASE
from api.core.openapi import operation
from api.core.validation import path_uuid
from api.marketplace import search

log = logging.getLogger(__name__)

FAVOURITE_LIMITER = web.AppKey("favourite_limiter", SharedUserAndAddressLimiter)
CHANGES_PER_MINUTE = 60


async def interest_of(db: asyncpg.Pool | asyncpg.Connection, client_id: str, reader_id: str) -> dict[str, bool]:
    """Whether the client favourited the reader and asked to be notified once (what the profile's buttons show)."""
    row = await db.fetchrow(
        "SELECT EXISTS (SELECT 1 FROM favourites WHERE client_id = $1 AND reader_id = $2) AS favourite,"
        " EXISTS (SELECT 1 FROM online_watches WHERE client_id = $1 AND reader_id = $2) AS watching",
        client_id, reader_id)
    assert row is not None
    return {"favourite": row["favourite"], "watching": row["watching"]}


async def _checked(request: web.Request) -> tuple[User, str]:
    user = await require(request, "client")
    reader_id = path_uuid(request, "readerId")
    wait = await request.app[FAVOURITE_LIMITER].hit(user.id, client_address(request))
    if wait > 0:
        raise TooManyRequests("too many changes at once; slow down", headers={"Retry-After": str(int(wait) + 1)})
    if not await request.app[DATABASE].pool.fetchval(
            "SELECT true FROM users WHERE id = $1 AND role = 'reader'", reader_id):
        raise NotFound("no such reader", code="reader_not_found")
    return user, reader_id


async def _set(request: web.Request, table: str, on: bool) -> web.Response:
    user, reader_id = await _checked(request)
    pool = request.app[DATABASE].pool
    # Fixed table names only (never from input).
    if on:
        await pool.execute(f"INSERT INTO {table} (client_id, reader_id) VALUES ($1, $2)"  # noqa: S608
                           " ON CONFLICT DO NOTHING", user.id, reader_id)
    else:
        await pool.execute(f"DELETE FROM {table} WHERE client_id = $1 AND reader_id = $2",  # noqa: S608
                           user.id, reader_id)
    log.info("reader interest set", extra={"userId": user.id, "readerId": reader_id, "what": table, "on": on})
    return web.json_response(await interest_of(pool, user.id, reader_id))


INTEREST_SHAPE = "{favourite, watching}"


@operation(summary="Favourite a reader (alerts when they go online, at most once an hour)", roles=("client",),
           response=INTEREST_SHAPE, tags=("favourites",))
async def add_favourite(request: web.Request) -> web.Response:
    return await _set(request, "favourites", True)


@operation(summary="Stop favouriting a reader", roles=("client",), response=INTEREST_SHAPE, tags=("favourites",))
async def remove_favourite(request: web.Request) -> web.Response:
    return await _set(request, "favourites", False)


@operation(summary="Be notified the next time a reader goes online (once)", roles=("client",),
           response=INTEREST_SHAPE, tags=("favourites",))
async def watch(request: web.Request) -> web.Response:
    return await _set(request, "online_watches", True)


@operation(summary="Cancel a notify-me-once", roles=("client",), response=INTEREST_SHAPE, tags=("favourites",))
async def unwatch(request: web.Request) -> web.Response:
    return await _set(request, "online_watches", False)


async def favourite_cards(db: asyncpg.Pool | asyncpg.Connection, client_id: str) -> list[dict[str, Any]]:
    rows = await db.fetch("SELECT reader_id FROM favourites WHERE client_id = $1 ORDER BY created_at DESC LIMIT 200",
                          client_id)
    return await search.cards_of(db, [str(r["reader_id"]) for r in rows])


@operation(summary="The client's favourite readers, as cards", roles=("client",),
           response="{readers: [card]}", tags=("favourites",))
async def list_favourites(request: web.Request) -> web.Response:
    user = await require(request, "client")
    return web.json_response({"readers": await favourite_cards(request.app[DATABASE].pool, user.id)})


def setup(app: web.Application) -> None:
    app[FAVOURITE_LIMITER] = SharedUserAndAddressLimiter("favourites", CHANGES_PER_MINUTE, 3 * CHANGES_PER_MINUTE, 60.0,
                                                         node=app.get(CLUSTER))
    app.router.add_get("/api/favourites", list_favourites)
    app.router.add_put("/api/favourites/{readerId}", add_favourite)
    app.router.add_delete("/api/favourites/{readerId}", remove_favourite)
    app.router.add_put("/api/readers/{readerId}/notify-once", watch)
    app.router.add_delete("/api/readers/{readerId}/notify-once", unwatch)
