"""``/api/auth/*``: register, log in, log out, and who am I."""

from __future__ import annotations

import logging

import asyncpg
from aiohttp import web

from api.accounts import email_routes
from api.accounts.auth import (
    COOKIE,
    LOGOUT_LISTENERS,
    SESSION_LIFETIME,
    authenticate,
    require,
    start_login,
    user_from_row,
)
from api.accounts.keys import LOGIN_THROTTLE, PASSWORDS, REGISTRATION_LIMITER
from api.accounts.login_throttle import FAMILIAR_DAYS, LoginThrottle
from api.accounts.passwords import PasswordWork
from api.cluster import CLUSTER
from api.cluster.limits import SharedRateLimiter
from api.core import validation as v
from api.core.client_address import client_address
from api.core.errors import Conflict, Forbidden, TooManyRequests, Unauthorized, Unavailable
from api.core.keys import DATABASE, SETTINGS
from api.core.mail import MAIL

log = logging.getLogger(__name__)

PUBLIC_ROLES = ("client", "reader")
# SOULSEER_REGISTRATIONS_PER_HOUR counts registrations per client address over this window.
REGISTRATION_WINDOW_SECONDS = 3600.0


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


async def create_user(conn: asyncpg.Connection, email: str, password_hash: str, display_name: str,
                      role: str) -> asyncpg.Record:
    """Insert the account with its already hashed password; a taken email is a 409.

    The hash is made before the connection is taken: argon2 holds a core for a while, and a pooled
    connection held meanwhile is one nobody else can use.
    """
    try:
        async with conn.transaction():
            return await insert_account(conn, email, password_hash, display_name, role)
    except asyncpg.UniqueViolationError:
        raise Conflict("an account with this email already exists", code="email_taken", field="email") from None


async def register(request: web.Request) -> web.Response:
    body = await v.read_json(request)
    email = v.email(body)
    password = v.password(body, email=email)
    display_name = v.text(body, "displayName", max_len=80)
    role = v.choice(body, "role", PUBLIC_ROLES)
    address = client_address(request)
    limiter = request.app[REGISTRATION_LIMITER]
    wait = await limiter.hit(address)
    if wait > 0:
        log.warning("registration refused: too many from this address", extra={"address": address})
        raise TooManyRequests("too many accounts registered from your network; try again later",
                              headers={"Retry-After": str(int(wait) + 1)})
    try:
        password_hash = await request.app[PASSWORDS].hash(password)
    except Unavailable:
        await limiter.refund(address)  # refused before anything was made: it does not count
        raise
    async with request.app[DATABASE].pool.acquire() as conn:
        row = await create_user(conn, email, password_hash, display_name, role)
        async with conn.transaction():
            await email_routes.send_verification(request, conn, str(row["id"]), row["email"])
    request.app[MAIL].wake()
    user = user_from_row(row)
    log.info("account registered", extra={"userId": user.id, "role": role, "address": address})
    return web.json_response({"user": user.public()}, status=201)


async def login(request: web.Request) -> web.Response:
    body = await v.read_json(request)
    email = v.text(body, "email", max_len=254).lower()
    password = v.text(body, "password", max_len=200, strip=False)
    address = client_address(request)
    pool = request.app[DATABASE].pool
    row = await pool.fetchrow(
        "SELECT u.id, u.email, u.display_name, u.role, u.password_hash, u.suspended_at,"
        " EXISTS (SELECT 1 FROM auth_sessions s WHERE s.user_id = u.id AND s.address = $2"
        "         AND s.created_at > now() - make_interval(days => $3))"
        " AS familiar FROM users u WHERE lower(u.email) = $1", email, address, FAMILIAR_DAYS)
    familiar = bool(row and row["familiar"])
    throttle = request.app[LOGIN_THROTTLE]
    wait = await throttle.begin(email, address, familiar=familiar)
    if wait > 0:
        log.info("login throttled", extra={"address": address, "familiar": familiar})
        raise TooManyRequests("too many login attempts; try again shortly",
                              headers={"Retry-After": str(int(wait) + 1)})
    try:
        ok = await request.app[PASSWORDS].verify(row["password_hash"] if row else None, password) and row is not None
    except BaseException:
        await throttle.cancel(email, address, familiar=familiar)  # never checked (503 auth_busy, or cancelled)
        raise
    await throttle.finish(email, address, familiar=familiar, succeeded=ok)
    if not ok or row is None:
        log.info("login refused", extra={"address": address})
        raise Unauthorized("wrong email or password", code="bad_credentials")
    if row["suspended_at"] is not None:  # told only to who knows the password
        raise Forbidden("this account is suspended; contact support", code="account_suspended")
    user = user_from_row(row)
    async with pool.acquire() as conn:
        token, csrf = await start_login(conn, user.id, user_agent=request.headers.get("User-Agent"),
                                        address=address)
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


async def _close_passwords(app: web.Application) -> None:
    app[PASSWORDS].close()


async def me(request: web.Request) -> web.Response:
    user = await require(request)
    context = await authenticate(request)
    assert context is not None
    return web.json_response({"user": user.public(), "csrfToken": context.csrf_token})


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    app[REGISTRATION_LIMITER] = SharedRateLimiter("registrations", settings.registrations_per_hour,
                                                  REGISTRATION_WINDOW_SECONDS, node=app.get(CLUSTER))
    app[LOGIN_THROTTLE] = LoginThrottle(per_minute=settings.login_attempts_per_minute,
                                        backoff_after=settings.login_backoff_after,
                                        max_backoff=settings.login_max_backoff_seconds, node=app.get(CLUSTER))
    app[PASSWORDS] = PasswordWork(workers=settings.password_hash_workers, queue=settings.password_hash_queue)
    app.on_cleanup.append(_close_passwords)
    app.router.add_post("/api/auth/register", register)
    app.router.add_post("/api/auth/login", login)
    app.router.add_post("/api/auth/logout", logout)
    app.router.add_get("/api/auth/me", me)
