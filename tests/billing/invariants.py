"""The ledger's invariants, checked against the database as a whole."""

from __future__ import annotations

import asyncpg


async def assert_ledger_invariants(db: asyncpg.Pool | asyncpg.Connection) -> None:
    """Every transaction sums to zero; every wallet equals its client_balances row and is never negative;
    wallets + earnings + revenue hold exactly what came in minus what went out; no key is used twice."""
    unbalanced = await db.fetch(
        "SELECT txn_id, sum(amount_cents) FROM ledger_entries GROUP BY txn_id HAVING sum(amount_cents) <> 0")
    assert unbalanced == []
    mismatched = await db.fetch(
        "SELECT b.client_id, b.balance_cents, coalesce(w.total, 0) AS entries FROM client_balances b"
        " FULL JOIN (SELECT owner_id, sum(amount_cents) AS total FROM ledger_entries WHERE account = 'wallet'"
        "            GROUP BY owner_id) w ON w.owner_id = b.client_id"
        " WHERE coalesce(b.balance_cents, 0) <> coalesce(w.total, 0)")
    assert mismatched == []
    assert await db.fetchval("SELECT count(*) FROM client_balances WHERE balance_cents < 0") == 0
    totals = dict(await db.fetch("SELECT account, sum(amount_cents)::bigint FROM ledger_entries GROUP BY account"))
    held = sum(totals.get(a, 0) for a in ("wallet", "earnings", "revenue"))
    came_in = -totals.get("stripe", 0) - totals.get("adjustments", 0)  # deposits minus withdrawals
    # Withdrawals a spent wallet could not cover were paid out of the platform's pocket (the loss account).
    platform_loss = -totals.get("loss", 0)
    assert held == came_in + platform_loss, totals
    assert await db.fetchval("SELECT count(*) - count(DISTINCT key) FROM ledger_transactions") == 0
    # A transaction's recorded amounts agree with its entries.
    wrong = await db.fetch(
        "SELECT t.key FROM ledger_transactions t JOIN ledger_entries e ON e.txn_id = t.id"
        " WHERE t.kind IN ('reading_minute', 'scheduled_reading', 'gift', 'message')"
        " GROUP BY t.key, t.amount_cents, t.reader_cents, t.platform_cents"
        " HAVING sum(CASE WHEN e.account = 'wallet' THEN -e.amount_cents ELSE 0 END) <> t.amount_cents"
        "     OR sum(CASE WHEN e.account = 'earnings' THEN e.amount_cents ELSE 0 END) <> t.reader_cents"
        "     OR sum(CASE WHEN e.account = 'revenue' THEN e.amount_cents ELSE 0 END) <> t.platform_cents")
    assert wrong == []
