"""The message inbox page: threads with unread counts; ``/messages/{id}`` opens one, ``?reader=`` starts one."""

from __future__ import annotations

import uuid

from aiohttp import web

from api.core.errors import NotFound
from api.core.keys import DATABASE, SETTINGS
from api.core.validation import path_uuid
from api.messages.routes import MAX_BODY_CHARS
from api.pages.rendering import page_auth, render


async def inbox_page(request: web.Request) -> web.Response:
    """The message inbox: threads with unread counts; ``/messages/{id}`` opens one, ``?reader=`` starts one."""
    auth = await page_auth(request, "client", "reader")
    pool = request.app[DATABASE].pool
    thread_id = None
    if "thread_id" in request.match_info:
        try:
            thread_id = path_uuid(request, "thread_id")
        except NotFound:
            return await render(request, "not_found.html", auth, script="layout", status=404)
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
    return await render(request, "inbox.html", auth, script="inbox", new_reader=new_reader, thread_id=thread_id,
                         data={"threadId": thread_id, "newReader": new_reader, "messageCents": price,
                               "maxBody": MAX_BODY_CHARS,
                               "refundHours": request.app[SETTINGS].message_refund_after_seconds // 3600})


def setup(app: web.Application) -> None:
    app.router.add_get("/messages", inbox_page)
    app.router.add_get("/messages/{thread_id}", inbox_page)
