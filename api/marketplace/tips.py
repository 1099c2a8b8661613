"""``POST /api/readings/{sessionId}/tips``: after a reading, its client thanks the reader with a gift from the
catalogue, without a stream. Like a stream's gift it is one ledger charge (kind ``gift``: 70% reader, 30%
platform, key ``tip:{clientId}:{requestId}``) committed with its ``reading_tips`` row, at the price the client
confirmed (``expectedCents``); a retry with the same ``requestId`` returns the first tip and moves nothing.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg
from aiohttp import web

from api.accounts.auth import require
from api.cluster import CLUSTER
from api.cluster.limits import SharedUserAndAddressLimiter
from api.core import validation as v
from api.core.client_address import client_address
from api.core.errors import Conflict, NotFound, TooManyRequests
from api.core.keys import BILLING_METRICS, DATABASE
from api.core.openapi import operation
from api.core.times import iso
from api.realtime import notifications
from api.streams.gift_payment import GiftRequest, charge_gift, check_replay, read_gift_request
from billing import ledger

log = logging.getLogger(__name__)

TIP_LIMITER = web.AppKey("tip_limiter", SharedUserAndAddressLimiter)
TIPS_PER_MINUTE = 10
_SELECT = ("SELECT t.*, g.name, g.icon FROM reading_tips t JOIN gifts g ON g.id = t.gift_id")


def tip_key(client_id: str, request_id: str) -> str:
    return f"tip:{client_id}:{request_id}"


def tip_json(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "sessionId": str(row["session_id"]), "readerId": str(row["reader_id"]),
            "giftId": str(row["gift_id"]), "name": row["name"], "icon": row["icon"], "priceCents": row["price_cents"],
            "requestId": row["request_id"], "createdAt": iso(row["created_at"])}


def _replay(row: asyncpg.Record, session_id: str, wanted: GiftRequest) -> web.Response:
    check_replay(row, wanted, place="session_id", place_id=session_id, what="tip")
    return web.json_response({"tip": tip_json(row), "replayed": True}, status=201)


@operation(summary="Tip the reader of an ended reading with a gift from the catalogue (70% reader / 30% platform)",
           roles=("client",), request="{giftId, expectedCents (the gift's priceCents shown), requestId}",
           response="{tip: {id, sessionId, readerId, giftId, name, icon, priceCents, requestId, createdAt},"
           " balanceCents}; 402 insufficient_funds, 409 reading_not_ended | price_changed", status=201,
           tags=("tips",))
async def send_tip(request: web.Request) -> web.Response:
    user = await require(request, "client")
    session_id = v.path_uuid(request, "sessionId")
    wanted = await read_gift_request(request)
    gift_id, request_id = wanted.gift_id, wanted.request_id
    pool = request.app[DATABASE].pool
    found = await pool.fetchrow(f"{_SELECT} WHERE t.client_id = $1 AND t.request_id = $2", user.id, request_id)
    if found is not None:  # a retry answers with the first tip, whatever happened since
        return _replay(found, session_id, wanted)
    wait = await request.app[TIP_LIMITER].hit(user.id, client_address(request), token=request_id)
    if wait > 0:
        raise TooManyRequests("too many tips at once; slow down", headers={"Retry-After": str(int(wait) + 1)})

    tip_id = str(uuid.uuid4())
    async with pool.acquire() as conn, conn.transaction():
        reading = await conn.fetchrow(
            "SELECT reader_id, status, started_at FROM rtc_sessions WHERE id = $1 AND client_id = $2",
            session_id, user.id)
        if reading is None:
            raise NotFound("no such reading", code="reading_not_found")
        if reading["status"] != "ended" or reading["started_at"] is None:
            raise Conflict("a reader can be tipped after a reading that took place", code="reading_not_ended")
        reader_id = str(reading["reader_id"])
        paid = await charge_gift(conn, wanted, client_id=user.id, reader_id=reader_id,
                                 key=tip_key(user.id, request_id), ref=tip_id,
                                 memo=lambda name: f"tip {name} after reading {session_id}")
        inserted = await conn.fetchval(
            "INSERT INTO reading_tips (id, session_id, client_id, reader_id, gift_id, price_cents, request_id,"
            " ledger_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (client_id, request_id) DO NOTHING"
            " RETURNING id", tip_id, session_id, user.id, reader_id, gift_id, paid.price_cents, request_id,
            paid.txn.key)
        stored = None
        if inserted is not None:
            stored = await notifications.store(conn, reader_id, "tip-received", {
                "sessionId": session_id, "priceCents": paid.price_cents,
                "message": f"{user.display_name} sent you a {paid.name} after your reading."})
        balance = await ledger.balance(conn, user.id)
    request.app[BILLING_METRICS].recorded(paid.txn)
    row = await pool.fetchrow(f"{_SELECT} WHERE t.client_id = $1 AND t.request_id = $2", user.id, request_id)
    assert row is not None
    if stored is None:  # the same request raced itself: the other one paid (the ledger key made this a replay)
        return _replay(row, session_id, wanted)
    notifications.deliver(request.app, [stored])
    log.info("tip sent", extra={"sessionId": session_id, "userId": user.id, "giftId": gift_id, "txnId": paid.txn.id})
    return web.json_response({"tip": tip_json(row), "balanceCents": balance}, status=201)


def setup(app: web.Application) -> None:
    app[TIP_LIMITER] = SharedUserAndAddressLimiter("tips", TIPS_PER_MINUTE, 3 * TIPS_PER_MINUTE, 60.0,
                                                   node=app.get(CLUSTER))
    app.router.add_post("/api/readings/{sessionId}/tips", send_tip)
