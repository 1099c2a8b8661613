"""Rendering a page: the layout's context, the login a page needs, templates, static files and security headers.

Pages read the same tables the REST API owns and hand what the browser module needs to it in one
``<script type="application/json" id="page-data">`` block (never inline script: see :mod:`api.core.csp`). Pages
need the cookie login: a visitor without one is sent to ``/login?next=<the page>``; a signed-in user of the
other role is sent to their own home. The CSRF token of the login is rendered into a ``<meta>`` tag for the
module to send back as ``X-CSRF-Token``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
import jinja2
from aiohttp import web

import web as web_package
from api.accounts.auth import AuthContext, authenticate
from api.core import csp
from api.core.keys import DATABASE
from api.pages import format as page_format
from billing import ledger

log = logging.getLogger(__name__)

WEB_DIR = Path(web_package.__file__).resolve().parent
HOME_BY_ROLE = {"client": "/", "reader": "/dashboard", "admin": "/"}


async def render(request: web.Request, template: str, auth: AuthContext | None, *, script: str,
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
            balance = await ledger.balance(pool, user.id)
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


async def page_auth(request: web.Request, *roles: str) -> AuthContext:
    """The signed-in user of a page; redirects visitors to log in and other roles to their own home."""
    auth = await authenticate(request)
    if auth is None:
        raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='/')}")
    if roles and auth.user.role not in roles:
        raise web.HTTPFound(HOME_BY_ROLE.get(auth.user.role, "/"))
    return auth


def setup(app: web.Application) -> None:
    """Templates (autoescaped), security headers and static files."""
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
