"""The login and registration pages, and where a login may send the browser next (same-origin paths only)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from aiohttp import web

from api.accounts.auth import authenticate
from api.pages.rendering import HOME_BY_ROLE, render

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


async def login_page(request: web.Request) -> web.Response:
    auth = await authenticate(request)
    target = safe_next(request.query.get("next"), "")
    if auth is not None:
        raise web.HTTPFound(target or HOME_BY_ROLE.get(auth.user.role, "/"))
    return await render(request, "login.html", None, script="login", data={"next": target})


async def register_page(request: web.Request) -> web.Response:
    auth = await authenticate(request)
    if auth is not None:
        raise web.HTTPFound(HOME_BY_ROLE.get(auth.user.role, "/"))
    role = request.query.get("role", "client")
    return await render(request, "register.html", None, script="register",
                         data={"next": safe_next(request.query.get("next"), "")},
                         role=role if role in ("client", "reader") else "client")


def setup(app: web.Application) -> None:
    app.router.add_get("/login", login_page)
    app.router.add_get("/register", register_page)
