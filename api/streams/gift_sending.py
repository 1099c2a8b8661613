"""``POST /api/streams/{streamId}/gifts``: a viewer pays for a gift on a live stream, exactly once per request id.

The wallet debit and the reader's 70% / platform's 30% credit are one ledger transaction (``billing.ledger.charge``,
kind ``gift``, key ``gift:{senderId}:{requestId}``) committed together with the ``gift_sends`` row, so a retry
finds the first gift and moves nothing, and a failure moves nothing either.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg
from aiohttp import web

from api.accounts.auth import User, require
from api.cluster import CLUSTER
from api.cluster.limits import SharedRateLimiter
from api.core import validation as v
from api.core.errors import Conflict, NotFound, TooManyRequests
from api.core.keys import BILLING_METRICS, DATABASE, SETTINGS
from api.core.openapi import operation
from api.core.times import iso
from api.streams.gift_payment import GiftRequest, charge_gift, check_replay, read_gift_request
from api.streams.hub import STREAM_HUB
from billing import ledger

log = logging.getLogger(__name__)

GIFT_LIMITER = web.AppKey("gift_limiter", SharedRateLimiter)
# The per-viewer flood limit counts gifts per this many seconds (SOULSEER_GIFT_RATE_LIMIT of them).
GIFT_WINDOW_SECONDS = 10.0

_SENT = ("SELECT gs.id, gs.stream_id, gs.sender_id, u.display_name AS sender_name, gs.gift_id, g.name, g.icon,"
         " gs.price_cents, gs.request_id, gs.created_at FROM gift_sends gs JOIN gifts g ON g.id = gs.gift_id"
         " JOIN users u ON u.id = gs.sender_id")


def gift_key(sender_id: str, request_id: str) -> str:
    return f"gift:{sender_id}:{request_id}"


def sent_json(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "streamId": str(row["stream_id"]), "giftId": str(row["gift_id"]),
            "name": row["name"], "icon": row["icon"], "priceCents": row["price_cents"],
            "senderId": str(row["sender_id"]), "senderName": row["sender_name"], "requestId": row["request_id"],
            "createdAt": iso(row["created_at"])}


def broadcast_json(row: asyncpg.Record) -> dict[str, Any]:
    """The signaling ``gift`` message body: ``{streamId, from, giftId, name, priceCents}`` (+ fromName, icon, id);
    ``from`` is the sender's user id, as in a reading's ``chat-message``."""
    return {"streamId": str(row["stream_id"]), "from": str(row["sender_id"]), "fromName": row["sender_name"],
            "giftId": str(row["gift_id"]), "name": row["name"], "priceCents": row["price_cents"],
            "icon": row["icon"], "id": str(row["id"])}


async def _existing(db: asyncpg.Pool | asyncpg.Connection, user: User, request_id: str) -> asyncpg.Record | None:
    return await db.fetchrow(f"{_SENT} WHERE gs.sender_id = $1 AND gs.request_id = $2",
                             user.id, request_id)


def _replay(row: asyncpg.Record, stream_id: str, wanted: GiftRequest) -> web.Response:
    check_replay(row, wanted, place="stream_id", place_id=stream_id, what="gift")
    return web.json_response({"gift": sent_json(row), "replayed": True}, status=201)


@operation(summary="Send a gift on a live stream (70% reader / 30% platform, one ledger transaction)",
           roles=("client",),
           request="{giftId, expectedCents (the gift's priceCents shown), requestId} (requestId makes a retry"
                   " return the same gift)",
           response="{gift: {id, streamId, giftId, name, icon, priceCents, senderId, senderName, requestId, createdAt},"
           " balanceCents}; 402 insufficient_funds, 409 stream_ended | price_changed (error.priceCents: the price"
           " now), 429 rate_limited", status=201,
           tags=("streams",))
async def send_gift(request: web.Request) -> web.Response:
    user = await require(request, "client")
    stream_id = v.path_uuid(request, "streamId")
    wanted = await read_gift_request(request)
    gift_id, request_id = wanted.gift_id, wanted.request_id
    pool = request.app[DATABASE].pool

    # A retry of a gift already made answers with it, whatever happened since (stream ended, rate limit).
    found = await _existing(pool, user, request_id)
    if found is not None:
        return _replay(found, stream_id, wanted)
    # Concurrent retries of one requestId are one gift: they use one place in the limit, not one each.
    wait = await request.app[GIFT_LIMITER].hit(f"{user.id}:{stream_id}", token=request_id)
    if wait > 0:
        raise TooManyRequests("too many gifts at once; slow down", code="rate_limited",
                              headers={"Retry-After": str(int(wait) + 1)})

    send_id = str(uuid.uuid4())
    async with pool.acquire() as conn, conn.transaction():
        # The share lock makes ending the stream wait for gifts being paid, so none lands after the end.
        stream = await conn.fetchrow("SELECT reader_id, status FROM streams WHERE id = $1 FOR SHARE", stream_id)
        if stream is None:
            raise NotFound("no such stream", code="stream_not_found")
        if stream["status"] != "live":
            raise Conflict("this stream has ended", code="stream_ended")
        paid = await charge_gift(conn, wanted, client_id=user.id, reader_id=str(stream["reader_id"]),
                                 key=gift_key(user.id, request_id), ref=send_id,
                                 memo=lambda name: f"gift {name} on stream {stream_id}")
        inserted = await conn.fetchval(
            "INSERT INTO gift_sends (id, stream_id, sender_id, gift_id, request_id, price_cents, ledger_txn_id,"
            " ledger_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (sender_id, request_id) DO NOTHING RETURNING id",
            send_id, stream_id, user.id, gift_id, request_id, paid.price_cents, str(paid.txn.id), paid.txn.key)
        balance = await ledger.balance(conn, user.id)
    request.app[BILLING_METRICS].recorded(paid.txn)  # committed (a replay counts nothing)
    if inserted is None:
        # The same request raced itself: the other one paid (the ledger key made this charge a replay).
        row = await _existing(pool, user, request_id)
        assert row is not None
        return _replay(row, stream_id, wanted)
    row = await _existing(pool, user, request_id)
    assert row is not None
    log.info("gift sent", extra={"streamId": stream_id, "userId": user.id, "giftId": gift_id,
                                 "priceCents": paid.price_cents, "txnId": str(paid.txn.id)})
    await request.app[STREAM_HUB].gift_sent(stream_id, broadcast_json(row))
    return web.json_response({"gift": sent_json(row), "balanceCents": balance}, status=201)


def setup(app: web.Application) -> None:
    app[GIFT_LIMITER] = SharedRateLimiter("gifts", app[SETTINGS].gift_rate_limit, GIFT_WINDOW_SECONDS,
                                          node=app.get(CLUSTER))
    app.router.add_post("/api/streams/{streamId}/gifts", send_gift)
