"""The notifications page: every stored notification as a sentence and a link."""

from __future__ import annotations

from aiohttp import web

from api.core.keys import DATABASE
from api.pages import format as page_format
from api.pages.rendering import page_auth, render


async def notifications_page(request: web.Request) -> web.Response:
    auth = await page_auth(request)
    rows = await request.app[DATABASE].pool.fetch(
        "SELECT id, kind, payload, created_at, read_at FROM notifications WHERE user_id = $1"
        " ORDER BY created_at DESC LIMIT 100",
        auth.user.id,
    )
    items = []
    for r in rows:
        payload = r["payload"] if isinstance(r["payload"], dict) else {}
        text, link = page_format.notification(r["kind"], payload)
        items.append({"id": str(r["id"]), "kind": r["kind"], "text": text, "link": link,
                      "created_at": r["created_at"], "unread": r["read_at"] is None})
    return await render(request, "notifications.html", auth, script="notifications", items=items)


def setup(app: web.Application) -> None:
    app.router.add_get("/notifications", notifications_page)
