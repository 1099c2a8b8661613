"""Notifications: stored first (so an offline user sees them later), then pushed live to connected tabs.

A notification written together with a state change is stored in the same transaction
(:func:`store`) and pushed only after the commit (:func:`deliver`), so nobody hears of a change that
was rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import asyncpg
from aiohttp import web

from api.accounts.auth import require
from api.core import validation as v
from api.core.errors import NotFound
from api.core.keys import DATABASE
from api.core.openapi import operation
from api.core.times import iso
from api.realtime.fanout import FANOUT

log = logging.getLogger(__name__)

# Every kind a client or reader may receive (the payload's other fields depend on the kind); ``store``
# refuses any other, so this set is the one list the pages (api/pages/format.py) and the JS can rely on.
KINDS = frozenset({
    "session-requested", "session-accepted", "session-declined", "session-cancelled", "session-expired",
    "session-ended", "session-booked", "booking-confirmed", "booking-reminder", "low-balance", "message",
    "message-refund", "reader-online", "review-posted", "review-reply", "tip-received",
})


def _message(row: asyncpg.Record) -> dict[str, Any]:
    payload = row["payload"] if isinstance(row["payload"], dict) else {}
    return {"type": "notification", **payload, "id": str(row["id"]), "kind": row["kind"],
            "createdAt": iso(row["created_at"]), "readAt": iso(row["read_at"])}


async def store(db: asyncpg.Connection | asyncpg.Pool, user_id: str, kind: str,
                payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Insert a notification; returns (user_id, the message to push) for :func:`deliver` after commit."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    row = await db.fetchrow(
        "INSERT INTO notifications (user_id, kind, payload) VALUES ($1, $2, $3)"
        " RETURNING id, kind, payload, created_at, read_at",
        user_id, kind, payload,
    )
    assert row is not None
    return user_id, _message(row)


def deliver(app: web.Application, stored: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """Push stored notifications to whoever is connected now, on any node."""
    fanout = app[FANOUT]
    for user_id, message in stored:
        fanout.push(user_id, message)


async def notify(app: web.Application, user_id: str, kind: str, payload: dict[str, Any]) -> None:
    """Store and push one notification outside any transaction."""
    deliver(app, [await store(app[DATABASE].pool, user_id, kind, payload)])


@operation(summary="The user's notifications, newest first", response="{notifications: [notification], "
           "unreadCount}", query={"unread": "true to list unread ones only", "limit": "1..200 (50)"})
async def list_notifications(request: web.Request) -> web.Response:
    user = await require(request)
    unread = request.query.get("unread", "").lower() in {"1", "true", "yes"}
    limit = v.query_int(request, "limit", default=50, low=1, high=200)
    pool = request.app[DATABASE].pool
    rows = await pool.fetch(
        "SELECT id, kind, payload, created_at, read_at FROM notifications WHERE user_id = $1"
        " AND (NOT $2 OR read_at IS NULL) ORDER BY created_at DESC, id LIMIT $3",
        user.id, unread, limit,
    )
    count = await pool.fetchval("SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL",
                                user.id)
    return web.json_response({"notifications": [_public(r) for r in rows], "unreadCount": count})


@operation(summary="Mark one notification read", response="{notification}")
async def mark_read(request: web.Request) -> web.Response:
    user = await require(request)
    notification_id = v.path_uuid(request, "notificationId")
    row = await request.app[DATABASE].pool.fetchrow(
        "UPDATE notifications SET read_at = coalesce(read_at, now()) WHERE id = $1 AND user_id = $2"
        " RETURNING id, kind, payload, created_at, read_at",
        notification_id, user.id,
    )
    if row is None:
        raise NotFound("no such notification")
    return web.json_response({"notification": _public(row)})


@operation(summary="Mark all the user's notifications read", response="{updated}")
async def mark_all_read(request: web.Request) -> web.Response:
    user = await require(request)
    status = await request.app[DATABASE].pool.execute(
        "UPDATE notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL", user.id
    )
    return web.json_response({"updated": int(status.split()[-1])})


def _public(row: asyncpg.Record) -> dict[str, Any]:
    message = _message(row)
    message.pop("type")
    return message


def setup(app: web.Application) -> None:
    app.router.add_get("/api/notifications", list_notifications)
    app.router.add_post("/api/notifications/read-all", mark_all_read)
    app.router.add_post("/api/notifications/{notificationId}/read", mark_read)
