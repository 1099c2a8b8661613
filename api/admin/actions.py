"""What an operator can do, each in one database transaction with its audit row: suspend and reinstate a user,
give a goodwill refund of a reading, hide a review or show it again. The JSON routes and the console's forms
both call these."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

import asyncpg

from api.core import audit
from api.core.errors import Invalid, NotFound
from api.marketplace import reviews
from billing import goodwill
from billing.ledger import Txn


class UserAction(Protocol):
    """What an operator does to an account with a reason (:func:`suspend`, :func:`reinstate`)."""

    async def __call__(self, pool: asyncpg.Pool, *, admin_id: str, user_id: str, reason: str) -> None: ...


def reason_of(raw: Any) -> str:
    if not isinstance(raw, str) or not 3 <= len(raw.strip()) <= 500:
        raise Invalid("say why, in 3 to 500 characters", field="reason")
    return raw.strip()


async def suspend(pool: asyncpg.Pool, *, admin_id: str, user_id: str, reason: str) -> None:
    """The user can no longer log in, and every login they have ends now."""
    if user_id == admin_id:
        raise Invalid("an operator cannot suspend themselves", field="userId")
    async with pool.acquire() as conn, conn.transaction():
        done = await conn.execute("UPDATE users SET suspended_at = now(), suspend_reason = $2 WHERE id = $1"
                                  " AND suspended_at IS NULL", user_id, reason)
        if done.endswith(" 0") and not await conn.fetchval("SELECT true FROM users WHERE id = $1", user_id):
            raise NotFound("no such user", code="user_not_found")
        await conn.execute("UPDATE auth_sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
                           user_id)
        await audit.record(conn, admin_id=admin_id, action="user_suspended", target_kind="user", target_id=user_id,
                           reason=reason)


async def reinstate(pool: asyncpg.Pool, *, admin_id: str, user_id: str, reason: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT true FROM users WHERE id = $1", user_id):
            raise NotFound("no such user", code="user_not_found")
        await conn.execute("UPDATE users SET suspended_at = NULL, suspend_reason = NULL WHERE id = $1", user_id)
        await audit.record(conn, admin_id=admin_id, action="user_reinstated", target_kind="user", target_id=user_id,
                           reason=reason)


async def goodwill_refund(pool: asyncpg.Pool, *, admin_id: str, reading_id: str, cents: int, reason: str,
                          request_id: str | None = None) -> list[Txn]:
    """``cents`` of the reading back to its client, 70/30 from the reader's earnings and platform revenue.
    ``request_id`` makes a retry of one refund the same refund."""
    key = f"goodwill:{reading_id}:{request_id or uuid.uuid4()}"
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT true FROM rtc_sessions WHERE id = $1", reading_id):
            raise NotFound("no such reading", code="reading_not_found")
        replay = await conn.fetchval("SELECT true FROM ledger_transactions WHERE key LIKE $1 || ':%'", key)
        txns = await goodwill.refund_reading(conn, reading_id=reading_id, cents=cents, key=key)
        if not replay:
            await audit.record(conn, admin_id=admin_id, action="goodwill_refund", target_kind="reading",
                               target_id=reading_id, reason=reason, details={"amountCents": cents, "key": key})
            # Refunded in full, it is no longer a paid reading: its review, if any, stops counting.
            await reviews.hide_if_refunded(conn, admin_id=admin_id, session_id=reading_id)
    return txns


async def set_review_hidden(pool: asyncpg.Pool, *, admin_id: str, review_id: str, reason: str, hidden: bool) -> bool:
    """Hide a review (it is kept, and counts nowhere) or show it again; False when it already was so."""
    async with pool.acquire() as conn, conn.transaction():
        return await reviews.hide(conn, admin_id=admin_id, review_id=review_id, reason=reason, hidden=hidden)
