"""Who is asking: server-side login sessions found by cookie or bearer token, CSRF checks, role checks."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from aiohttp import web

from api.core.errors import Forbidden, Unauthorized
from api.core.keys import DATABASE

COOKIE = "soulseer_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_LIFETIME = timedelta(days=14)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class User:
    id: str
    email: str
    display_name: str
    role: str

    def public(self) -> dict[str, str]:
        return {"id": self.id, "email": self.email, "displayName": self.display_name, "role": self.role}


@dataclass(frozen=True)
class AuthContext:
    """The logged-in user of a request and how they proved it (``cookie`` needs CSRF, ``bearer`` does not)."""

    user: User
    login_id: str
    via: str
    csrf_token: str


# Called with (user_id, login_id) when a login is revoked, so long-lived connections made with it
# (signaling sockets) end at once instead of at their next check.
LOGOUT_LISTENERS: web.AppKey[list[Callable[[str, str], None]]] = web.AppKey("logout_listeners", list)

# What authenticate() found for a request (None: nobody), cached so it is looked up once.
AUTH_KEY: web.RequestKey[AuthContext | None] = web.RequestKey("auth", object)  # type: ignore[arg-type]


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def user_from_row(row: asyncpg.Record) -> User:
    return User(id=str(row["id"]), email=row["email"], display_name=row["display_name"], role=row["role"])


async def start_login(conn: asyncpg.Connection, user_id: str, *, user_agent: str | None,
                      address: str | None) -> tuple[str, str]:
    """Create a revocable login; returns (token, csrf_token). Only the token's hash is stored."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    await conn.execute(
        "INSERT INTO auth_sessions (user_id, token_hash, csrf_token, expires_at, user_agent, address)"
        " VALUES ($1, $2, $3, now() + $4::interval, $5, $6)",
        user_id, hash_token(token), csrf, SESSION_LIFETIME, (user_agent or "")[:300], address,
    )
    return token, csrf


async def resolve(pool: asyncpg.Pool, token: str, via: str) -> AuthContext | None:
    row = await pool.fetchrow(
        "SELECT s.id AS login_id, s.csrf_token, u.id, u.email, u.display_name, u.role"
        " FROM auth_sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now() AND u.suspended_at IS NULL"
        " AND u.deleted_at IS NULL",
        hash_token(token),
    )
    if row is None:
        return None
    return AuthContext(user=user_from_row(row), login_id=str(row["login_id"]), via=via,
                       csrf_token=row["csrf_token"])


async def resolve_login(pool: asyncpg.Pool, login_id: str) -> AuthContext | None:
    """A login by its id, if it still holds (a long-lived connection re-checks the login it was opened with)."""
    row = await pool.fetchrow(
        "SELECT s.id AS login_id, s.csrf_token, u.id, u.email, u.display_name, u.role"
        " FROM auth_sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > now() AND u.suspended_at IS NULL",
        login_id,
    )
    if row is None:
        return None
    return AuthContext(user=user_from_row(row), login_id=str(row["login_id"]), via="login",
                       csrf_token=row["csrf_token"])


def credentials(request: web.Request) -> tuple[str, str] | None:
    """(token, via) from the Authorization header, else the session cookie."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip(), "bearer"
    cookie = request.cookies.get(COOKIE)
    if cookie:
        return cookie, "cookie"
    return None


async def authenticate(request: web.Request) -> AuthContext | None:
    """The request's login, looked up once and kept on the request."""
    if AUTH_KEY in request:
        return request[AUTH_KEY]
    found = credentials(request)
    context = None
    if found is not None and 10 <= len(found[0]) <= 200:
        context = await resolve(request.app[DATABASE].pool, *found)
    request[AUTH_KEY] = context
    return context


def csrf_ok(request: web.Request, context: AuthContext, form_token: str | None = None) -> bool:
    """Cookie-authenticated writes must echo the login's CSRF token (header, or form field for pages)."""
    if context.via != "cookie" or request.method in _SAFE_METHODS:
        return True
    sent = request.headers.get(CSRF_HEADER) or form_token or ""
    return hmac.compare_digest(sent.encode(), context.csrf_token.encode())


async def require(request: web.Request, *roles: str) -> User:
    """The authenticated user, checked for one of ``roles`` (any role when none given). Every endpoint uses it."""
    context = await authenticate(request)
    if context is None:
        raise Unauthorized("authentication required")
    if not csrf_ok(request, context):
        raise Forbidden("missing or wrong CSRF token", code="csrf_failed")
    if roles and context.user.role not in roles:
        raise Forbidden(f"this needs the {' or '.join(roles)} role", code="wrong_role")
    return context.user


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def role(*roles: str) -> Callable[[Handler], Handler]:
    """Decorator form of :func:`require` for handlers that only need the check."""

    def wrap(handler: Handler) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            await require(request, *roles)
            return await handler(request)

        checked.__name__ = handler.__name__
        checked.__doc__ = handler.__doc__
        return checked

    return wrap
