"""A goodwill refund of a reading by an operator: given back from the reader's earnings and platform revenue
in the charge's 70/30 proportion (:func:`billing.ledger.refund_charge`), the reading's newest charges first."""

from __future__ import annotations

import asyncpg

from billing import ledger
from billing.errors import RefundTooLarge
from billing.ledger import Db, Txn, atomic


async def refundable_cents(db: Db, reading_id: str) -> int:
    """What the client paid for the reading and has not had back."""
    async with ledger.connection(db) as conn:
        value = await conn.fetchval(
            "SELECT coalesce(sum(CASE WHEN kind = 'refund' THEN -amount_cents ELSE amount_cents END), 0)::bigint"
            " FROM ledger_transactions WHERE ref = $1 AND kind IN ('reading_minute', 'scheduled_reading', 'refund')",
            reading_id)
    return int(value)


async def refund_reading(db: Db, *, reading_id: str, cents: int, key: str) -> list[Txn]:
    """Give ``cents`` of a reading back to its client, idempotently under ``key`` (one refund per charge used:
    ``{key}:{n}``). :class:`RefundTooLarge` beyond what the reading still has to give back."""

    async def work(conn: asyncpg.Connection) -> list[Txn]:
        charges = await conn.fetch(
            "SELECT c.key, c.amount_cents - coalesce((SELECT sum(r.amount_cents) FROM ledger_transactions r"
            " WHERE r.original_id = c.id AND r.kind = 'refund'), 0) AS left_cents FROM ledger_transactions c"
            " WHERE c.ref = $1 AND c.kind IN ('reading_minute', 'scheduled_reading')"
            " ORDER BY c.created_at DESC, c.key DESC FOR NO KEY UPDATE", reading_id)
        done = await conn.fetch("SELECT key FROM ledger_transactions WHERE key LIKE $1 || ':%' AND kind = 'refund'",
                                key)
        if done:  # this goodwill refund happened already: the same movements, nothing new
            return [t for t in [await ledger.refund_charge(conn, original_key=k, cents=c, key=r)
                                for k, c, r in await _replayed(conn, key)]]
        if cents > sum(int(c["left_cents"]) for c in charges):
            raise RefundTooLarge("that is more than the reading has left to give back")
        txns, left = [], cents
        for n, c in enumerate(charges):
            take = min(left, int(c["left_cents"]))
            if take <= 0:
                continue
            txns.append(await ledger.refund_charge(conn, original_key=c["key"], cents=take, key=f"{key}:{n}",
                                                   memo="goodwill refund"))
            left -= take
            if not left:
                break
        return txns

    return await atomic(db, work)


async def _replayed(conn: asyncpg.Connection, key: str) -> list[tuple[str, int, str]]:
    rows = await conn.fetch(
        "SELECT o.key AS original, r.amount_cents, r.key FROM ledger_transactions r"
        " JOIN ledger_transactions o ON o.id = r.original_id WHERE r.key LIKE $1 || ':%' AND r.kind = 'refund'", key)
    return [(r["original"], int(r["amount_cents"]), r["key"]) for r in rows]
