"""The home page: the readers a client can book (online first) and, for a signed-in user, the live streams."""

from __future__ import annotations

from aiohttp import web

from api.accounts.auth import authenticate
from api.accounts.readers import reader_cards
from api.core.keys import DATABASE
from api.pages.rendering import render
from api.pages.streams import live_streams


async def home(request: web.Request) -> web.Response:
    auth = await authenticate(request)
    if auth is not None and auth.user.role == "reader":
        raise web.HTTPFound("/dashboard")
    rows = await reader_cards(request.app[DATABASE].pool, include_offline=True, limit=200)
    readers = [{
        "id": str(r["id"]), "display_name": r["display_name"], "status": r["status"], "bio": r["bio"],
        "specialties": list(r["specialties"]),
        "rates": {"chat": r["chat_cents"], "audio": r["audio_cents"], "video": r["video_cents"]},
    } for r in rows]
    available = [r for r in readers if r["status"] != "offline"]
    away = [r for r in readers if r["status"] == "offline"][:12]
    # Live streams are for signed-in users (watching needs an account).
    streams = await live_streams(request.app) if auth is not None else []
    return await render(request, "home.html", auth, script="home", available=available, away=away,
                        streams=streams)


def setup(app: web.Application) -> None:
    app.router.add_get("/", home, name="home")
