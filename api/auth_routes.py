"""``/api/auth/*``: register, log in, log out, and who am I."""

from __future__ import annotations

import logging

import asyncpg
from aiohttp import web

from api import validation as v
from api.appkeys import DATABASE, LOGIN_LIMITER, SETTINGS
from api.auth import (
    COOKIE,
    LOGOUT_LISTENERS,
    SESSION_LIFETIME,
    authenticate,
    hash_password,
    require,
    start_login,
    user_from_row,
    verify_password,
)
from api.errors import Conflict, TooManyRequests, Unauthorized

log = logging.getLogger(__name__)

PUBLIC_ROLES = ("client", "reader")


async def insert_account(conn: asyncpg.Connection, email: str, password_hash: str, display_name: str,
                         role: str) -> asyncpg.Record:
    """Insert an account with the rows its role needs (a wallet, or reader rates and availability).

    Raises asyncpg.UniqueViolationError on a taken email; run it inside a transaction.
    """
    row = await conn.fetchrow(
        "INSERT INTO users (email, password_hash, display_name, role) VALUES ($1, $2, $3, $4)"
        " RETURNING id, email, display_name, role",
        email, password_hash, display_name, role,
    )
    assert row is not None
    if role == "client":
        await conn.execute("INSERT INTO client_balances (client_id) VALUES ($1)", row["id"])
    elif role == "reader":
        await conn.execute("INSERT INTO reader_rates (reader_id) VALUES ($1)", row["id"])
        await conn.execute("INSERT INTO reader_availability (reader_id) VALUES ($1)", row["id"])
    return row


async def create_user(conn: asyncpg.Connection, email: str, password: str, display_name: str,
                      role: str) -> asyncpg.Record:
    """Hash the password and insert the account; a taken email is a 409."""
    password_hash = await hash_password(password)
    try:
        async with conn.transaction():
            return await insert_account(conn, email, password_hash, display_name, role)
    except asyncpg.UniqueViolationError:
        raise Conflict("an account with this email already exists", code="email_taken", field="email") from None


async def register(request: web.Request) -> web.Response:
    body = await v.read_json(request)
    email = v.email(body)
    password = v.text(body, "password", min_len=8, max_len=200, strip=False)
    display_name = v.text(body, "displayName", max_len=80)
    role = v.choice(body, "role", PUBLIC_ROLES)
    async with request.app[DATABASE].pool.acquire() as conn:
        row = await create_user(conn, email, password, display_name, role)
    user = user_from_row(row)
    log.info("account registered", extra={"userId": user.id, "role": role})
    return web.json_response({"user": user.public()}, status=201)


def _address(request: web.Request) -> str:
    return request.remote or "unknown"


async def login(request: web.Request) -> web.Response:
    body = await v.read_json(request)
    email = v.text(body, "email", max_len=254).lower()
    password = v.text(body, "password", max_len=200, strip=False)
    limiter = request.app[LOGIN_LIMITER]
    wait = max(limiter.hit(f"account:{email}"), limiter.hit(f"address:{_address(request)}"))
    if wait > 0:
        raise TooManyRequests("too many login attempts; try again shortly",
                              headers={"Retry-After": str(int(wait) + 1)})
    pool = request.app[DATABASE].pool
    row = await pool.fetchrow(
        "SELECT id, email, display_name, role, password_hash FROM users WHERE lower(email) = $1", email
    )
    if not await verify_password(row["password_hash"] if row else None, password) or row is None:
        log.info("login refused", extra={"address": _address(request)})
        raise Unauthorized("wrong email or password", code="bad_credentials")
    user = user_from_row(row)
    async with pool.acquire() as conn:
        token, csrf = await start_login(conn, user.id, user_agent=request.headers.get("User-Agent"),
                                        address=_address(request))
    response = web.json_response({"user": user.public(), "token": token, "csrfToken": csrf})
    response.set_cookie(
        COOKIE, token, max_age=int(SESSION_LIFETIME.total_seconds()), httponly=True, samesite="Lax",
        secure=request.app[SETTINGS].secure_cookies, path="/",
    )
    log.info("logged in", extra={"userId": user.id})
    return response


async def logout(request: web.Request) -> web.Response:
    await require(request)
    context = await authenticate(request)
    assert context is not None
    await request.app[DATABASE].pool.execute(
        "UPDATE auth_sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", context.login_id
    )
    for listener in request.app.get(LOGOUT_LISTENERS, []):
        listener(context.user.id, context.login_id)
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    user = await require(request)
    context = await authenticate(request)
    assert context is not None
    return web.json_response({"user": user.public(), "csrfToken": context.csrf_token})


def setup(app: web.Application) -> None:
    app.router.add_post("/api/auth/register", register)
    app.router.add_post("/api/auth/login", login)
    app.router.add_post("/api/auth/logout", logout)
    app.router.add_get("/api/auth/me", me)
