"""The ledger's invariants, checked against the database as a whole.

``tests/conftest.py`` runs :func:`assert_ledger_invariants` on every test's database that holds a ledger
row, before dropping it, so every test that moves money is checked, not only the ledger's own tests.

The rules are written out here from the money rules (docs/design.md), not taken from ``billing/``: each
kind of transaction must have exactly the entries its kind implies, so a movement booked to the wrong account
(or a new kind nobody taught this check) fails, even when it balances.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import asyncpg

READER_PERCENT = 70  # docs/design.md: the reader's share of every charge, rounded down
CHARGES = frozenset({"reading_minute", "scheduled_reading", "gift", "message"})
WITHDRAWALS = frozenset({"stripe_refund", "dispute"})
KINDS = CHARGES | WITHDRAWALS | {"deposit", "refund", "dispute_reinstated"}
DEPOSIT_ACCOUNT = {"stripe": "stripe", "manual": "adjustments"}

Entries = dict[tuple[str, str | None], int]


def _owner(value: Any) -> str | None:
    return None if value is None else str(value)


def _expected_entries(txn: asyncpg.Record, entries: dict[str, Entries]) -> Entries:
    """The entries a transaction of its kind must have, from its header alone."""
    kind, cents = txn["kind"], txn["amount_cents"]
    client, reader = _owner(txn["client_id"]), _owner(txn["reader_id"])
    if kind == "deposit":
        return {("wallet", client): cents, (DEPOSIT_ACCOUNT[txn["source"]], None): -cents}
    if kind in CHARGES:
        return {("wallet", client): -cents, ("earnings", reader): txn["reader_cents"],
                ("revenue", None): txn["platform_cents"]}
    if kind == "refund":
        return {("wallet", client): cents, ("earnings", reader): -txn["reader_cents"],
                ("revenue", None): -txn["platform_cents"]}
    if kind in WITHDRAWALS:
        loss = txn["loss_cents"]
        return {("wallet", client): -(cents - loss), ("stripe", None): cents, ("loss", None): -loss}
    assert kind == "dispute_reinstated"
    original = entries.get(str(txn["original_id"]), {})
    return {account: -amount for account, amount in original.items()}


def _problems(txns: list[asyncpg.Record], entry_rows: list[asyncpg.Record]) -> list[str]:
    """Every way the transactions and their entries break a money rule, in words."""
    problems: list[str] = []
    entries: dict[str, Entries] = defaultdict(dict)
    for e in entry_rows:
        slot = (e["account"], _owner(e["owner_id"]))
        entries[str(e["txn_id"])][slot] = entries[str(e["txn_id"])].get(slot, 0) + e["amount_cents"]
    by_id = {str(t["id"]): t for t in txns}
    refunded: Counter[str] = Counter()
    refunded_reader: Counter[str] = Counter()
    taken_back: Counter[str] = Counter()
    reinstated: Counter[str] = Counter()
    for t in txns:
        key, kind, cents = t["key"], t["kind"], t["amount_cents"]
        if kind not in KINDS:
            problems.append(f"{key}: kind {kind!r} is not one these invariants know")
            continue
        original = by_id.get(str(t["original_id"])) if t["original_id"] is not None else None
        if kind in CHARGES and (t["reader_cents"] != cents * READER_PERCENT // 100
                                or t["reader_cents"] + t["platform_cents"] != cents):
            problems.append(f"{key}: a charge of {cents} split {t['reader_cents']}/{t['platform_cents']}")
        if kind == "refund":
            if original is None or original["kind"] not in CHARGES or original["client_id"] != t["client_id"]:
                problems.append(f"{key}: a refund of no charge of its client")
            else:
                refunded[str(original["id"])] += cents
                refunded_reader[str(original["id"])] += t["reader_cents"]
        if kind in WITHDRAWALS:
            if not 0 <= t["loss_cents"] <= cents:
                problems.append(f"{key}: loss {t['loss_cents']} outside 0..{cents}")
            if original is not None:
                if original["kind"] != "deposit" or original["client_id"] != t["client_id"]:
                    problems.append(f"{key}: a withdrawal of no deposit of its client")
                else:
                    taken_back[str(original["id"])] += cents
        if kind == "dispute_reinstated":
            if original is None or original["kind"] != "dispute":
                problems.append(f"{key}: a reinstatement of no dispute")
            else:
                reinstated[str(original["id"])] += 1
                deposit = by_id.get(str(original["original_id"])) if original["original_id"] is not None else None
                if deposit is not None:
                    taken_back[str(deposit["id"])] -= original["amount_cents"]
        expected = {slot: amount for slot, amount in _expected_entries(t, entries).items() if amount}
        if entries.get(str(t["id"]), {}) != expected:
            problems.append(f"{key} ({kind}): entries {entries.get(str(t['id']), {})} instead of {expected}")
    for charge_id, cents in refunded.items():
        charge = by_id[charge_id]
        if cents > charge["amount_cents"]:
            problems.append(f"{charge['key']}: {cents} refunded of a {charge['amount_cents']}-cent charge")
        # Refunds give back the reader's share of the running total, so in all they give back exactly this.
        if refunded_reader[charge_id] != cents * READER_PERCENT // 100:
            problems.append(f"{charge['key']}: reader gave back {refunded_reader[charge_id]} of {cents} refunded")
    for deposit_id, cents in taken_back.items():
        deposit = by_id[deposit_id]
        if cents > deposit["amount_cents"]:
            problems.append(f"{deposit['key']}: {cents} taken back of a {deposit['amount_cents']}-cent deposit")
    problems += [f"{by_id[d]['key']}: reinstated {n} times" for d, n in reinstated.items() if n > 1]
    return problems


async def assert_ledger_invariants(db: asyncpg.Pool | asyncpg.Connection) -> None:
    """Every transaction sums to zero and has exactly the entries its kind implies; every cached wallet balance
    equals its entries and none is negative, nor any reader's earnings or the platform's revenue; wallets +
    earnings + revenue hold exactly the money that came in (deposits, less withdrawals net of platform loss);
    no charge is refunded, and no deposit taken back, beyond its amount; no key is used twice."""
    unbalanced = await db.fetch(
        "SELECT txn_id, sum(amount_cents) FROM ledger_entries GROUP BY txn_id HAVING sum(amount_cents) <> 0")
    assert unbalanced == [], f"unbalanced transactions: {unbalanced}"
    mismatched = await db.fetch(
        "SELECT b.client_id, b.balance_cents, coalesce(w.total, 0) AS entries FROM client_balances b"
        " FULL JOIN (SELECT owner_id, sum(amount_cents) AS total FROM ledger_entries WHERE account = 'wallet'"
        "            GROUP BY owner_id) w ON w.owner_id = b.client_id"
        " WHERE coalesce(b.balance_cents, 0) <> coalesce(w.total, 0)")
    assert mismatched == [], f"cached wallet balances mismatched with their entries: {mismatched}"
    assert await db.fetchval("SELECT count(*) FROM client_balances WHERE balance_cents < 0") == 0, "negative wallet"
    negative = await db.fetch("SELECT account, owner_id, balance_cents FROM ledger_accounts"
                              " WHERE account IN ('wallet', 'earnings', 'revenue') AND balance_cents < 0")
    assert negative == [], f"negative accounts: {negative}"
    assert await db.fetchval("SELECT count(*) - count(DISTINCT key) FROM ledger_transactions") == 0, "a key twice"

    txns = list(await db.fetch(
        "SELECT id, key, kind, amount_cents, reader_cents, platform_cents, loss_cents, client_id, reader_id,"
        " original_id, source FROM ledger_transactions ORDER BY created_at, id"))
    entry_rows = list(await db.fetch("SELECT txn_id, account, owner_id, amount_cents FROM ledger_entries"))
    problems = _problems(txns, entry_rows)
    assert problems == [], "\n".join(problems)

    # Conservation, from the transactions' own amounts (not their entries): what the platform holds for
    # clients, readers and itself is what came in by card or operator credit, less what went back out to
    # Stripe from wallets (a withdrawal's loss came out of the platform's pocket, not out of these accounts).
    held = await db.fetchval("SELECT coalesce(sum(amount_cents), 0)::bigint FROM ledger_entries"
                             " WHERE account IN ('wallet', 'earnings', 'revenue')")
    money_in = sum(t["amount_cents"] for t in txns if t["kind"] == "deposit")
    out = sum(t["amount_cents"] - t["loss_cents"] for t in txns if t["kind"] in WITHDRAWALS)
    back = sum(t["amount_cents"] - t["loss_cents"] for t in txns if t["kind"] == "dispute_reinstated")
    assert held == money_in - out + back, {"held": held, "in": money_in, "out": out, "reinstated": back}
