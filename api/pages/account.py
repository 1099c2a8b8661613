"""Account pages: the signed-in user's account (address, verification, password, deletion) and the pages the
mailed links open (verify an address, reset a password, confirm a new address), which need no login."""

from __future__ import annotations

from aiohttp import web

from api.accounts.auth import authenticate
from api.core.keys import DATABASE
from api.pages.rendering import page_auth, render


async def account_page(request: web.Request) -> web.Response:
    auth = await page_auth(request)
    verified = await request.app[DATABASE].pool.fetchval(
        "SELECT email_verified_at IS NOT NULL FROM users WHERE id = $1", auth.user.id)
    return await render(request, "account.html", auth, script="account", verified=verified,
                        data={"email": auth.user.email, "verified": verified})


def _token(request: web.Request) -> str:
    token = request.query.get("token", "")
    return token if len(token) <= 200 else ""


async def forgot_page(request: web.Request) -> web.Response:
    return await render(request, "forgot_password.html", await authenticate(request), script="account")


async def reset_page(request: web.Request) -> web.Response:
    return await render(request, "reset_password.html", await authenticate(request), script="account",
                        data={"token": _token(request)})


async def link_page(request: web.Request) -> web.Response:
    """``/verify-email`` and ``/confirm-email``: the page posts the link's token and says what happened."""
    purpose = "verify" if request.path == "/verify-email" else "change"
    return await render(request, "email_link.html", await authenticate(request), script="account",
                        purpose=purpose, data={"token": _token(request), "purpose": purpose})


def setup(app: web.Application) -> None:
    app.router.add_get("/account", account_page)
    app.router.add_get("/forgot-password", forgot_page)
    app.router.add_get("/reset-password", reset_page)
    app.router.add_get("/verify-email", link_page)
    app.router.add_get("/confirm-email", link_page)
