"""Server-rendered pages (web/templates) and the static files behind them (web/static).

Pages read the same tables the REST API owns and hand what the browser module needs to it in one
``<script type="application/json" id="page-data">`` block (never inline script: see :mod:`api.csp`). Pages
need the cookie login: a visitor without one is sent to ``/login?next=<the page>``; a signed-in user of the
other role is sent to their own home. The CSRF token of the login is rendered into a ``<meta>`` tag for the
module to send back as ``X-CSRF-Token``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
import asyncpg
import jinja2
from aiohttp import web

import web as web_package
from api import csp, page_format, profiles, reading_store
from api.appkeys import DATABASE, SETTINGS
from api.auth import AuthContext, authenticate
from api.errors import NotFound
from api.reading_states import Actor
from api.validation import path_uuid

log = logging.getLogger(__name__)

WEB_DIR = Path(web_package.__file__).resolve().parent
HOME_BY_ROLE = {"client": "/", "reader": "/dashboard", "admin": "/"}

# Characters a browser strips from a URL or reads as a separator before it parses it (tabs and newlines
# anywhere, C0/C1 controls and spaces at the ends, backslash as "/"): a ``next`` holding one can turn
# "/<tab>/evil.example" into "//evil.example" (WHATWG URL standard, "basic URL parser").
_REWRITTEN_BY_BROWSERS = re.compile(r"[\x00-\x20\x7f-\x9f\\]")


def safe_next(raw: str | None, default: str = "/") -> str:
    """Where to go after logging in: a path on this site, or ``default`` (no open redirect).

    The value is parsed as a URL and must be a same-origin path: no scheme, no host, one leading slash,
    and nothing a browser would strip or rewrite into a different URL than the one checked here.
    """
    if not raw or _REWRITTEN_BY_BROWSERS.search(raw) or not raw.isprintable():
        return default
    if not raw.startswith("/") or raw.startswith("//"):  # "//host" and "///host" name another host
        return default
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return default
    return raw


async def _render(request: web.Request, template: str, auth: AuthContext | None, *, script: str,
                  data: dict[str, Any] | None = None, status: int = 200, **context: Any) -> web.Response:
    """Render a page with the layout's context: who is signed in, their CSRF token, unread notifications."""
    user = auth.user if auth is not None else None
    unread = 0
    balance = None
    if user is not None:
        pool = request.app[DATABASE].pool
        unread = await pool.fetchval(
            "SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL", user.id)
        if user.role == "client":
            balance = await pool.fetchval("SELECT balance_cents FROM client_balances WHERE client_id = $1", user.id)
    page_data = {
        "user": {"id": user.id, "displayName": user.display_name, "role": user.role} if user else None,
        **(data or {}),
    }
    response = aiohttp_jinja2.render_template(template, request, {
        "user": user,
        "csrf": auth.csrf_token if auth is not None and auth.via == "cookie" else None,
        "script": script,
        "page_data": page_data,
        "unread": unread,
        "nav_balance": balance,
        "path": request.path,
        **context,
    }, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


async def _page_auth(request: web.Request, *roles: str) -> AuthContext:
    """The signed-in user of a page; redirects visitors to log in and other roles to their own home."""
    auth = await authenticate(request)
    if auth is None:
        raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='/')}")
    if roles and auth.user.role not in roles:
        raise web.HTTPFound(HOME_BY_ROLE.get(auth.user.role, "/"))
    return auth


async def home(request: web.Request) -> web.Response:
    auth = await authenticate(request)
    if auth is not None and auth.user.role == "reader":
        raise web.HTTPFound("/dashboard")
    rows = await request.app[DATABASE].pool.fetch(
        "SELECT u.id, u.display_name, a.status, r.chat_cents, r.audio_cents, r.video_cents,"
        " coalesce(p.bio, '') AS bio, coalesce(p.specialties, '{}') AS specialties"
        " FROM users u JOIN reader_availability a ON a.reader_id = u.id JOIN reader_rates r ON r.reader_id = u.id"
        " LEFT JOIN reader_profiles p ON p.reader_id = u.id"
        " WHERE u.role = 'reader'"
        " ORDER BY CASE a.status WHEN 'online' THEN 0 WHEN 'busy' THEN 1 ELSE 2 END, u.display_name"
        " LIMIT 200"
    )
    readers = [{
        "id": str(r["id"]), "display_name": r["display_name"], "status": r["status"], "bio": r["bio"],
        "specialties": list(r["specialties"]),
        "rates": {"chat": r["chat_cents"], "audio": r["audio_cents"], "video": r["video_cents"]},
    } for r in rows]
    available = [r for r in readers if r["status"] != "offline"]
    away = [r for r in readers if r["status"] == "offline"][:12]
    # Live streams are for signed-in users (watching needs an account).
    from api.stream_pages import live_streams

    streams = await live_streams(request.app) if auth is not None else []
    return await _render(request, "home.html", auth, script="home", available=available, away=away,
                         streams=streams)


async def login_page(request: web.Request) -> web.Response:
    auth = await authenticate(request)
    target = safe_next(request.query.get("next"), "")
    if auth is not None:
        raise web.HTTPFound(target or HOME_BY_ROLE.get(auth.user.role, "/"))
    return await _render(request, "login.html", None, script="login", data={"next": target})


async def register_page(request: web.Request) -> web.Response:
    auth = await authenticate(request)
    if auth is not None:
        raise web.HTTPFound(HOME_BY_ROLE.get(auth.user.role, "/"))
    role = request.query.get("role", "client")
    return await _render(request, "register.html", None, script="register",
                         data={"next": safe_next(request.query.get("next"), "")},
                         role=role if role in ("client", "reader") else "client")


async def wallet_page(request: web.Request) -> web.Response:
    auth = await _page_auth(request, "client")
    settings = request.app[SETTINGS]
    balance = await request.app[DATABASE].pool.fetchval(
        "SELECT balance_cents FROM client_balances WHERE client_id = $1", auth.user.id) or 0
    return await _render(request, "wallet.html", auth, script="wallet", balance=balance, data={
        "balanceCents": balance, "minCents": settings.add_funds_min_cents, "maxCents": settings.add_funds_max_cents,
        "paymentsEnabled": settings.stripe_secret_key is not None,
    })


async def reading_page(request: web.Request) -> web.Response:
    auth = await _page_auth(request, "client", "reader")
    pool = request.app[DATABASE].pool
    try:
        row, actor = await reading_store.fetch_for(pool, path_uuid(request, "session_id"), auth.user.id)
    except NotFound:  # unknown, malformed, or someone else's: the same page
        return await _render(request, "not_found.html", auth, script="layout", status=404)
    session = reading_store.session_json(row)
    is_client = actor is Actor.CLIENT
    other_id = str(row["reader_id"] if is_client else row["client_id"])
    other_name = row["reader_name"] if is_client else row["client_name"]
    transcript: list[dict[str, Any]] = []
    if session["status"] == "ended":
        messages = await pool.fetch(
            "SELECT sender_id, body, created_at FROM reading_messages WHERE session_id = $1 ORDER BY id", session["id"])
        transcript = [{"who": "You" if str(m["sender_id"]) == auth.user.id else other_name, "text": m["body"],
                       "at": reading_store.iso(m["created_at"])} for m in messages]
    settings = request.app[SETTINGS]
    data: dict[str, Any] = {
        "session": session,
        "role": actor.value,
        "counterpart": {"id": other_id, "displayName": other_name},
        "graceSeconds": settings.grace_seconds,
        "requestExpirySeconds": settings.request_expiry_seconds,
        "transcript": transcript,
    }
    return await _render(request, "reading.html", auth, script="reading", data=data,
                         session=session, counterpart=data["counterpart"], other_id=other_id)


async def dashboard_page(request: web.Request) -> web.Response:
    auth = await _page_auth(request, "reader")
    pool = request.app[DATABASE].pool
    rates = await pool.fetchrow("SELECT * FROM reader_rates WHERE reader_id = $1", auth.user.id)
    availability = await pool.fetchrow(
        "SELECT status, chosen_status FROM reader_availability WHERE reader_id = $1", auth.user.id)
    status = availability["status"] if availability else "offline"
    chosen = availability["chosen_status"] if availability else "offline"
    profile = await profiles.load(pool, auth.user.id)
    recent = await _readings_of(pool, auth.user.id, 6)
    waiting = [{"id": r["id"], "clientName": r["other_name"], "sessionType": r["sessionType"],
                "rateCents": r["rateCents"], "requestedAt": r["requestedAt"]}
               for r in recent if r["status"] == "requested"]
    rate_data = {
        "chatCents": rates["chat_cents"] if rates else 0,
        "audioCents": rates["audio_cents"] if rates else 0,
        "videoCents": rates["video_cents"] if rates else 0,
        "flatCents": {m: (rates[f"flat_{m}_cents"] if rates else 0) for m in ("15", "30", "45", "60")},
    }
    return await _render(request, "dashboard.html", auth, script="dashboard", rates=rate_data,
                         availability=status, chosen=chosen, profile=profile, recent=recent, data={
                             "rates": rate_data, "status": status, "chosenStatus": chosen,
                             "profile": profile.public(),
                             "requests": waiting,
                             "requestExpirySeconds": request.app[SETTINGS].request_expiry_seconds,
                         })


async def _readings_of(pool: asyncpg.Pool, user_id: str, limit: int) -> list[dict[str, Any]]:
    """A user's readings, newest first, each with the other participant's id and name."""
    readings = []
    for row in await reading_store.history(pool, user_id, limit=limit):
        mine_as_client = str(row["client_id"]) == user_id
        readings.append({
            **reading_store.session_json(row),
            "other_id": str(row["reader_id"] if mine_as_client else row["client_id"]),
            "other_name": row["reader_name"] if mine_as_client else row["client_name"],
            "requested_at": row["requested_at"],
        })
    return readings


async def history_page(request: web.Request) -> web.Response:
    auth = await _page_auth(request, "client", "reader")
    readings = await _readings_of(request.app[DATABASE].pool, auth.user.id, 200)
    return await _render(request, "history.html", auth, script="layout", readings=readings)


async def notifications_page(request: web.Request) -> web.Response:
    auth = await _page_auth(request)
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
    return await _render(request, "notifications.html", auth, script="notifications", items=items)


def setup(app: web.Application) -> None:
    """Templates (autoescaped), security headers, static files and the page routes."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(WEB_DIR / "templates")),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(page_format.FILTERS)
    csp.setup(app)
    app.router.add_static("/static/", WEB_DIR / "static", name="static")
    app.router.add_get("/", home, name="home")
    app.router.add_get("/login", login_page)
    app.router.add_get("/register", register_page)
    app.router.add_get("/wallet", wallet_page)
    app.router.add_get("/dashboard", dashboard_page)
    app.router.add_get("/history", history_page)
    app.router.add_get("/notifications", notifications_page)
    app.router.add_get("/readings/{session_id}", reading_page)
