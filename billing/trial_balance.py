"""The trial balance: every ledger account's balance, which together sum to zero (double entry)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from billing import ledger
from billing.ledger import Db


@dataclass(frozen=True)
class TrialBalance:
    accounts: list[dict[str, Any]]  # {account, ownerId, ownerName, balanceCents, entries}
    by_kind: dict[str, int]  # account kind -> total
    total_cents: int  # zero in a sound ledger


async def trial_balance(db: Db, *, limit: int = 1000) -> TrialBalance:
    """Balances per account (the largest first, ``limit`` of them), totals per kind of account, and their sum."""
    async with ledger.connection(db) as conn:
        kinds = await conn.fetch("SELECT account, sum(balance_cents)::bigint AS cents FROM ledger_accounts"
                                 " GROUP BY account ORDER BY account")
        rows = await conn.fetch(
            "SELECT a.account, a.owner_id::text, u.display_name, a.balance_cents, a.entries FROM ledger_accounts a"
            " LEFT JOIN users u ON u.id = a.owner_id ORDER BY abs(a.balance_cents) DESC, a.account LIMIT $1", limit)
    by_kind = {r["account"]: int(r["cents"]) for r in kinds}
    return TrialBalance(
        accounts=[{"account": r["account"], "ownerId": r["owner_id"], "ownerName": r["display_name"],
                   "balanceCents": int(r["balance_cents"]), "entries": int(r["entries"])} for r in rows],
        by_kind=by_kind, total_cents=sum(by_kind.values()))


async def transaction(db: Db, txn_id: str) -> dict[str, Any] | None:
    """One transaction with its entries, for an operator."""
    async with ledger.connection(db) as conn:
        row = await conn.fetchrow(
            "SELECT id::text, key, kind, amount_cents, reader_cents, platform_cents, loss_cents, client_id::text,"
            " reader_id::text, original_id::text, source, operator, ref, memo, created_at FROM ledger_transactions"
            " WHERE id = $1", txn_id)
        if row is None:
            return None
        entries = await conn.fetch("SELECT account, owner_id::text, amount_cents FROM ledger_entries"
                                   " WHERE txn_id = $1 ORDER BY id", txn_id)
    return {**{k: v for k, v in row.items() if k != "created_at"},
            "createdAt": row["created_at"].isoformat().replace("+00:00", "Z"),
            "entries": [dict(e) for e in entries]}
