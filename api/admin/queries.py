"""What the console reads: users, readings, payouts and disputes as JSON-ready rows."""

from __future__ import annotations

from typing import Any

import asyncpg

from api.core.times import iso


def _row(r: asyncpg.Record) -> dict[str, Any]:
    return {k: (iso(v) if hasattr(v, "isoformat") else v) for k, v in r.items()}


async def users(pool: asyncpg.Pool, query: str, *, limit: int = 50) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT u.id::text, u.email, u.display_name AS \"displayName\", u.role, u.created_at AS \"createdAt\","
        " u.suspended_at AS \"suspendedAt\", u.suspend_reason AS \"suspendReason\", u.flagged_at AS \"flaggedAt\","
        " u.flag_reason AS \"flagReason\", coalesce(b.balance_cents, 0) AS \"walletCents\","
        " coalesce((SELECT sum(amount_cents) FROM ledger_entries e WHERE e.owner_id = u.id"
        "           AND e.account = 'earnings'), 0)::bigint AS \"earningsCents\""
        " FROM users u LEFT JOIN client_balances b ON b.client_id = u.id"
        " WHERE $1 = '' OR u.email ILIKE '%' || $1 || '%' OR u.display_name ILIKE '%' || $1 || '%'"
        " ORDER BY u.created_at DESC LIMIT $2", query, limit)
    return [_row(r) for r in rows]


async def readings(pool: asyncpg.Pool, query: str, *, limit: int = 50) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT s.id::text, s.session_type AS \"sessionType\", s.mode, s.status, s.rate_cents AS \"rateCents\","
        " s.charged_cents AS \"chargedCents\", s.requested_at AS \"requestedAt\", s.ended_at AS \"endedAt\","
        " c.email AS client, r.email AS reader FROM rtc_sessions s JOIN users c ON c.id = s.client_id"
        " JOIN users r ON r.id = s.reader_id"
        " WHERE $1 = '' OR c.email ILIKE '%' || $1 || '%' OR r.email ILIKE '%' || $1 || '%' OR s.id::text = $1"
        " ORDER BY s.requested_at DESC LIMIT $2", query, limit)
    return [_row(r) for r in rows]


async def reading(pool: asyncpg.Pool, reading_id: str) -> dict[str, Any] | None:
    found = await readings(pool, reading_id, limit=1)
    if not found or found[0]["id"] != reading_id:
        return None
    movements = await pool.fetch(
        "SELECT id::text, key, kind, amount_cents AS \"amountCents\", reader_cents AS \"readerCents\","
        " platform_cents AS \"platformCents\", memo, created_at AS \"createdAt\" FROM ledger_transactions"
        " WHERE ref = $1 ORDER BY created_at, key", reading_id)
    return {**found[0], "movements": [_row(m) for m in movements]}


async def payouts(pool: asyncpg.Pool, *, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT p.id::text, u.email AS reader, p.cents AS \"amountCents\", p.trigger, p.status,"
        " p.stripe_transfer_id AS \"transferId\", p.reversed_cents AS \"reversedCents\", p.failure,"
        " p.created_at AS \"createdAt\", c.payouts_failing AS \"bankPayoutsFailing\""
        " FROM payouts p JOIN users u ON u.id = p.reader_id LEFT JOIN connect_accounts c ON c.reader_id = p.reader_id"
        " WHERE $1::text IS NULL OR p.status = $1 ORDER BY p.created_at DESC LIMIT $2", status, limit)
    return [_row(r) for r in rows]


async def disputes(pool: asyncpg.Pool, *, limit: int = 100) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT d.id, u.email AS client, d.amount_cents AS \"amountCents\", d.held_cents AS \"heldCents\","
        " d.carried_cents AS \"carriedCents\", d.fee_cents AS \"feeCents\", d.reason, d.status,"
        " d.opened_at AS \"openedAt\", d.closed_at AS \"closedAt\""
        " FROM disputes d JOIN users u ON u.id = d.client_id ORDER BY d.status = 'open' DESC, d.opened_at DESC"
        " LIMIT $1", limit)
    return [_row(r) for r in rows]
