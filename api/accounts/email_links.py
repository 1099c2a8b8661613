"""Signed, single-use, expiring links mailed to an address: verify it, reset a password, confirm a new address.

A link's token is ``<id>.<expiry>.<signature>``: the ``email_tokens`` row's id, its expiry (Unix seconds) and an
HMAC-SHA256 of both with the purpose, under the server's link key (``SOULSEER_SECRET_KEY``, or a random key the
server keeps in ``server_secrets`` when none is set, shared by every node). A forged, altered or expired token is
refused before any lookup; the one ``UPDATE ... WHERE used_at IS NULL`` that accepts a token marks it used, so a
link works once, even clicked twice at the same moment.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from aiohttp import web

from api.core.errors import Invalid
from api.core.keys import DATABASE, SETTINGS

LIFETIME = {"verify": timedelta(days=7), "reset": timedelta(hours=1), "change": timedelta(hours=24)}


def _signature(key: bytes, token_id: str, expires: int, purpose: str) -> str:
    digest = hmac.new(key, f"{token_id}:{expires}:{purpose}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(key: bytes, token_id: str, expires: int, purpose: str) -> str:
    return f"{token_id}.{expires}.{_signature(key, token_id, expires, purpose)}"


def verify_signature(key: bytes, token: object, purpose: str, *, now: float | None = None) -> str | None:
    """The token's id when its signature is right for ``purpose`` and it has not expired; else None."""
    if not isinstance(token, str) or len(token) > 200 or token.count(".") != 2:
        return None
    token_id, expires_raw, signature = token.split(".")
    try:
        token_id = str(uuid.UUID(token_id))
        expires = int(expires_raw)
    except ValueError:
        return None
    if not hmac.compare_digest(signature, _signature(key, token_id, expires, purpose)):
        return None
    if expires < (time.time() if now is None else now):
        return None
    return token_id


async def issue(conn: asyncpg.Connection, key: bytes, user_id: str, purpose: str, email: str) -> str:
    """A new token for ``purpose`` sent to ``email`` (in the caller's transaction, with the mail that carries it).
    Earlier unused tokens of the same purpose stop working: only the newest link counts."""
    expires = datetime.now(UTC).replace(microsecond=0) + LIFETIME[purpose]
    await conn.execute("UPDATE email_tokens SET used_at = now() WHERE user_id = $1 AND purpose = $2"
                       " AND used_at IS NULL", user_id, purpose)
    token_id = await conn.fetchval(
        "INSERT INTO email_tokens (user_id, purpose, email, expires_at) VALUES ($1, $2, $3, $4) RETURNING id",
        user_id, purpose, email, expires)
    return sign(key, str(token_id), int(expires.timestamp()), purpose)


async def redeem(conn: asyncpg.Connection, key: bytes, token: object, purpose: str) -> asyncpg.Record:
    """Accept a token once: ``(user_id, email)`` of its row, marked used; a 422 ``invalid_token`` otherwise
    (forged, altered, expired, used, or superseded)."""
    token_id = verify_signature(key, token, purpose)
    row = None
    if token_id is not None:
        row = await conn.fetchrow(
            "UPDATE email_tokens SET used_at = now() WHERE id = $1 AND purpose = $2 AND used_at IS NULL"
            " AND expires_at > now() RETURNING user_id::text, email", token_id, purpose)
    if row is None:
        raise Invalid("this link is not valid any more (it was used, it expired, or a newer one was sent);"
                      " ask for a new one", code="invalid_token", field="token")
    return row


class LinkKey:
    """The key links are signed with: the operator's, or the one the server keeps for itself (read once)."""

    def __init__(self) -> None:
        self._key: bytes | None = None

    async def get(self, app: web.Application) -> bytes:
        if self._key is None:
            configured = app[SETTINGS].secret_key
            if configured:
                self._key = hashlib.sha256(b"soulseer-email-links:" + configured.encode()).digest()
            else:
                pool = app[DATABASE].pool
                await pool.execute("INSERT INTO server_secrets (name, value) VALUES ('email-links', $1)"
                                   " ON CONFLICT (name) DO NOTHING", secrets.token_bytes(32))
                self._key = bytes(await pool.fetchval("SELECT value FROM server_secrets WHERE name = 'email-links'"))
        return self._key
