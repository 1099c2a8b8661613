"""Premium messages (``/api/messages``): threads between a client and a reader; a client's message costs the
reader's ``messageCents`` (70/30, paid when sent), the reader's replies are free, and an unanswered paid message
is refunded by the sweeper (api/refund_sweeper.py)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import asyncpg
from aiohttp import web

from api.accounts.auth import User, require
from api.cluster import CLUSTER
from api.cluster.limits import SharedRateLimiter
from api.core import validation as v
from api.core.errors import Conflict, Invalid, NotFound, PaymentRequired, TooManyRequests
from api.core.keys import BILLING_METRICS, DATABASE, SETTINGS
from api.core.openapi import operation
from api.core.times import iso
from api.messages.refund_rule import answers
from api.realtime import notifications
from billing import ledger
from billing.errors import InsufficientFunds
from billing.prices import confirm_price, dollars

log = logging.getLogger(__name__)

MAX_BODY_CHARS = 2000
PREVIEW_CHARS = 140
MESSAGE_LIMITER = web.AppKey("message_limiter", SharedRateLimiter)
# Message ids made from (sender, requestId), so a retried request maps to the message it first created.
_RETRY_NAMESPACE = uuid.UUID("6f1c2a52-3d0e-4f5e-9a43-5b1a7f0e2c11")

_THREAD = ("SELECT t.id, t.client_id, t.reader_id, t.created_at, t.last_message_at,"
           " c.display_name AS client_name, r.display_name AS reader_name"
           " FROM message_threads t JOIN users c ON c.id = t.client_id JOIN users r ON r.id = t.reader_id")
_MESSAGE = ("id, thread_id, sender_id, body, price_cents, created_at, read_at, answered_at, refunded_at,"
            " refunded_cents")


def message_key(message_id: str) -> str:
    return f"message:{message_id}"


def message_json(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "threadId": str(row["thread_id"]), "senderId": str(row["sender_id"]),
            "body": row["body"], "priceCents": row["price_cents"], "createdAt": iso(row["created_at"]),
            "readAt": iso(row["read_at"]), "answeredAt": iso(row["answered_at"]), "refundedAt": iso(row["refunded_at"]),
            "refundedCents": row["refunded_cents"] or 0}


def thread_json(row: asyncpg.Record, user: User, *, unread: int = 0,
                last: Mapping[str, Any] | None = None) -> dict[str, Any]:
    mine_is_client = str(row["client_id"]) == user.id
    other_id, other_name = ((row["reader_id"], row["reader_name"]) if mine_is_client
                            else (row["client_id"], row["client_name"]))
    thread: dict[str, Any] = {
        "id": str(row["id"]), "clientId": str(row["client_id"]), "readerId": str(row["reader_id"]),
        "with": {"id": str(other_id), "displayName": other_name}, "unreadCount": unread,
        "lastMessageAt": iso(row["last_message_at"]),
    }
    if last is not None:
        thread["lastMessage"] = {"senderId": str(last["sender_id"]), "preview": last["body"][:PREVIEW_CHARS],
                                 "createdAt": iso(last["created_at"])}
    return thread


async def _thread_for(db: asyncpg.Pool | asyncpg.Connection, thread_id: str, user: User) -> asyncpg.Record:
    """The thread, if ``user`` is one of its two parties; anyone else is told it does not exist."""
    row = await db.fetchrow(f"{_THREAD} WHERE t.id = $1", thread_id)
    if row is None or user.id not in (str(row["client_id"]), str(row["reader_id"])):
        raise NotFound("no such thread", code="thread_not_found")
    return row


@operation(summary="The user's message threads with unread counts", roles=("client", "reader"),
           response="{threads: [{id, clientId, readerId, with, unreadCount, lastMessage, lastMessageAt}], unreadCount}",
           tags=("messages",))
async def list_threads(request: web.Request) -> web.Response:
    user = await require(request, "client", "reader")
    pool = request.app[DATABASE].pool
    rows = await pool.fetch(
        f"SELECT t.*, (SELECT count(*) FROM messages m WHERE m.thread_id = t.id AND m.sender_id <> $1"  # noqa: S608
        "  AND m.read_at IS NULL) AS unread,"
        " (SELECT row(m.sender_id, m.body, m.created_at) FROM messages m WHERE m.thread_id = t.id"
        "  ORDER BY m.created_at DESC LIMIT 1) AS last"
        f" FROM ({_THREAD} WHERE t.client_id = $1 OR t.reader_id = $1) t"
        " ORDER BY t.last_message_at DESC LIMIT 200", user.id)
    threads = []
    for r in rows:
        last = None
        if r["last"] is not None:
            sender_id, body, created_at = r["last"]
            last = {"sender_id": sender_id, "body": body, "created_at": created_at}
        threads.append(thread_json(r, user, unread=r["unread"], last=last))
    return web.json_response({"threads": threads, "unreadCount": sum(t["unreadCount"] for t in threads)})


@operation(summary="One thread and its messages (its two parties only)", roles=("client", "reader"),
           response="{thread, messages: [message]}", tags=("messages",))
async def get_thread(request: web.Request) -> web.Response:
    user = await require(request, "client", "reader")
    thread_id = v.path_uuid(request, "threadId")
    pool = request.app[DATABASE].pool
    thread = await _thread_for(pool, thread_id, user)
    # The newest 500, oldest first.
    rows = await pool.fetch(
        f"SELECT * FROM (SELECT {_MESSAGE} FROM messages WHERE thread_id = $1"  # noqa: S608
        " ORDER BY created_at DESC LIMIT 500) m ORDER BY created_at", thread_id)
    unread = sum(1 for r in rows if str(r["sender_id"]) != user.id and r["read_at"] is None)
    return web.json_response({"thread": thread_json(thread, user, unread=unread),
                              "messages": [message_json(r) for r in rows]})


@operation(summary="Mark the other party's messages in a thread read", roles=("client", "reader"),
           response="{threadId, marked, unreadCount}", tags=("messages",))
async def mark_read(request: web.Request) -> web.Response:
    user = await require(request, "client", "reader")
    thread_id = v.path_uuid(request, "threadId")
    pool = request.app[DATABASE].pool
    await _thread_for(pool, thread_id, user)
    marked = await pool.fetch(
        "UPDATE messages SET read_at = now() WHERE thread_id = $1 AND sender_id <> $2 AND read_at IS NULL"
        " RETURNING id", thread_id, user.id)
    return web.json_response({"threadId": thread_id, "marked": len(marked), "unreadCount": 0})


@operation(summary="Send a message; a client pays the reader's messageCents (70/30), replies are free",
           roles=("client", "reader"),
           request="{readerId | threadId, body (1..2000 chars), expectedCents (a client's: the messageCents shown,"
                   " 0 when free), requestId? (a retry returns the same message)}",
           response="{message, thread}; 402 insufficient_funds, 409 price_changed (error.priceCents: the price now)",
           status=201, tags=("messages",))
async def post_message(request: web.Request) -> web.Response:
    """A client writes to a reader (``readerId``) or in a thread; a reader answers in a thread (``threadId``)."""
    user = await require(request, "client", "reader")
    body = await v.read_json(request)
    text = v.text(body, "body", max_len=MAX_BODY_CHARS)
    # A client confirms the price of every message (0 for a reader who charges nothing); a reader's are free.
    expected = v.cents(body, "expectedCents") if user.role == "client" else None
    if (body.get("readerId") is None) == (body.get("threadId") is None):
        raise Invalid("give exactly one of readerId or threadId", field="readerId")
    pool = request.app[DATABASE].pool
    request_id = None
    message_id = str(uuid.uuid4())
    if body.get("requestId") is not None:
        # A retry with the same requestId finds the first message (same id, so the same ledger key): paid once.
        request_id = v.text(body, "requestId", max_len=64)
        message_id = str(uuid.uuid5(_RETRY_NAMESPACE, f"{user.id}:{request_id}"))
        sent = await pool.fetchrow(f"SELECT {_MESSAGE} FROM messages WHERE id = $1", message_id)  # noqa: S608
        if sent is not None:
            return await _replay(pool, user, sent, text)
    # Concurrent retries of one requestId are one message: they use one place in the limit, not one each.
    wait = await request.app[MESSAGE_LIMITER].hit(user.id, token=request_id)
    if wait > 0:
        raise TooManyRequests("too many messages at once; slow down", headers={"Retry-After": str(int(wait) + 1)})
    async with pool.acquire() as conn, conn.transaction():
        if body.get("threadId") is not None:
            thread_id = v.uuid_value(body["threadId"], "threadId")
            thread = await _thread_for(conn, thread_id, user)
        elif user.role == "client":
            reader_id = v.uuid_value(body["readerId"], "readerId")
            thread = await _open_thread(conn, user, reader_id)
        else:
            raise Invalid("a reader answers in a thread: give threadId", field="threadId")
        thread_id = str(thread["id"])
        is_client = str(thread["client_id"]) == user.id
        recipient = str(thread["reader_id"] if is_client else thread["client_id"])
        price = 0
        if is_client:
            price = await conn.fetchval(
                "SELECT COALESCE((SELECT message_cents FROM reader_rates WHERE reader_id = $1), 0)", recipient)
            assert expected is not None
            confirm_price(expected, price, what=f"A message to {thread['reader_name']}")
        txn: ledger.Txn | None = None
        if price > 0:
            try:
                txn = await ledger.charge(conn, client_id=user.id, reader_id=recipient, cents=price,
                                          key=message_key(message_id), kind="message", ref=message_id,
                                          memo=f"message to {thread['reader_name']}")
            except InsufficientFunds:
                raise PaymentRequired(f"a message to {thread['reader_name']} costs {dollars(price)}; "
                                      "add funds first") from None
        row = await conn.fetchrow(
            f"INSERT INTO messages (id, thread_id, sender_id, body, price_cents, ledger_key, ledger_txn_id,"  # noqa: S608
            f" request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING RETURNING {_MESSAGE}",
            message_id, thread_id, user.id, text, price, message_key(message_id) if price else None,
            str(txn.id) if txn is not None else None, request_id)
        if row is not None:
            stored = await _record(request.app, conn, user, thread, row, price)
    request.app[BILLING_METRICS].recorded(txn)  # committed (a replay counts nothing)
    if row is None:
        # The same request raced itself and the other copy committed first (this charge was a replay).
        sent = await pool.fetchrow(f"SELECT {_MESSAGE} FROM messages WHERE id = $1", message_id)  # noqa: S608
        assert sent is not None
        return await _replay(pool, user, sent, text)
    log.info("message sent", extra={"threadId": thread_id, "messageId": message_id, "userId": user.id,
                                    "priceCents": price})
    notifications.deliver(request.app, [stored])
    return web.json_response({"message": message_json(row), "thread": thread_json(thread, user)}, status=201)


async def _record(app: web.Application, conn: asyncpg.Connection, user: User, thread: asyncpg.Record,
                  row: asyncpg.Record, price: int) -> tuple[str, dict[str, Any]]:
    """What a new message changes besides itself (same transaction): the thread's time, the paid messages a
    reader's reply answers, and the recipient's notification (returned, to push after the commit)."""
    thread_id, message_id, text = str(thread["id"]), str(row["id"]), row["body"]
    is_client = str(thread["client_id"]) == user.id
    recipient = str(thread["reader_id"] if is_client else thread["client_id"])
    await conn.execute("UPDATE message_threads SET last_message_at = $2 WHERE id = $1",
                       thread_id, row["created_at"])
    if not is_client:
        await _mark_answered(conn, thread_id, str(thread["client_id"]), row["created_at"],
                             timedelta(seconds=app[SETTINGS].message_refund_after_seconds))
    payload = {"threadId": thread_id, "messageId": message_id,
               "from": {"id": user.id, "displayName": user.display_name}, "fromName": user.display_name,
               "preview": text[:PREVIEW_CHARS], "priceCents": price}
    # Stored with the message (the reader sees it later if offline), pushed live after the commit.
    return await notifications.store(conn, recipient, "message", payload)


async def _replay(pool: asyncpg.Pool, user: User, sent: asyncpg.Record, text: str) -> web.Response:
    if sent["body"] != text:
        raise Conflict("this requestId was already used for another message", code="request_id_reused",
                       field="requestId")
    thread = await _thread_for(pool, str(sent["thread_id"]), user)
    return web.json_response({"message": message_json(sent), "thread": thread_json(thread, user),
                              "replayed": True}, status=201)


async def _open_thread(conn: asyncpg.Connection, user: User, reader_id: str) -> asyncpg.Record:
    role = await conn.fetchval("SELECT role FROM users WHERE id = $1", reader_id)
    if role != "reader":
        raise NotFound("no such reader", code="reader_not_found", field="readerId")
    thread_id = await conn.fetchval(
        "INSERT INTO message_threads (client_id, reader_id) VALUES ($1, $2)"
        " ON CONFLICT (client_id, reader_id) DO UPDATE SET client_id = EXCLUDED.client_id RETURNING id",
        user.id, reader_id)
    return await _thread_for(conn, str(thread_id), user)


async def _mark_answered(conn: asyncpg.Connection, thread_id: str, client_id: str, reply_at: Any,
                         window: timedelta) -> None:
    """A reader's reply answers the client's paid messages still inside their refund window."""
    waiting = await conn.fetch(
        "SELECT id, created_at FROM messages WHERE thread_id = $1 AND sender_id = $2 AND price_cents > 0"
        " AND answered_at IS NULL AND refunded_at IS NULL", thread_id, client_id)
    answered = [r["id"] for r in waiting if answers(r["created_at"], reply_at, window)]
    if answered:
        # refunded_at is checked again: a sweeper may have refunded one while we looked.
        await conn.execute("UPDATE messages SET answered_at = $2 WHERE id = ANY($1::uuid[]) AND refunded_at IS NULL",
                           answered, reply_at)


def setup(app: web.Application) -> None:
    app[MESSAGE_LIMITER] = SharedRateLimiter("messages", 30, 60.0, node=app.get(CLUSTER))
    app.router.add_get("/api/messages/threads", list_threads)
    app.router.add_get("/api/messages/threads/{threadId}", get_thread)
    app.router.add_post("/api/messages/threads/{threadId}/read", mark_read)
    app.router.add_post("/api/messages", post_message)
