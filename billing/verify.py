"""The ledger's invariants, checked against a live database: one copy of the rules for operators and tests.

``soulseer ledger verify`` prints what :func:`verify` finds and exits non-zero on any violation; the tests run
the same function on every test database that holds a ledger row (``tests/billing/invariants.py``).

The rules are written out here from the money rules (DESIGN.md section 3), not taken from the code that moves
money: each kind of transaction must have exactly the entries its kind implies, so a movement booked to the
wrong account (or a new kind nobody taught this check) is a violation even when it balances.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg

READER_PERCENT = 70  # DESIGN.md: the reader's share of every charge, rounded down
CHARGES = frozenset({"reading_minute", "scheduled_reading", "gift", "message"})
WITHDRAWALS = frozenset({"stripe_refund", "dispute"})
REVERSALS = frozenset({"dispute_reinstated", "withdrawal_failed"})  # each undoes one withdrawal exactly
PAYOUT_STEPS = frozenset({"payout_paid", "payout_failed", "payout_reversed"})
KINDS = CHARGES | WITHDRAWALS | REVERSALS | PAYOUT_STEPS | {"deposit", "refund", "payout", "dispute_fee",
                                                            "intro_minute"}
DEPOSIT_ACCOUNT = {"stripe": "stripe", "manual": "adjustments"}
# What the platform holds for others and itself: money that came in and has not gone back out.
HELD_ACCOUNTS = ("wallet", "earnings", "revenue", "payouts_in_transit", "paid_out")
NEVER_NEGATIVE = ("wallet", "revenue", "payouts_in_transit", "paid_out")

Entries = dict[tuple[str, str | None], int]


@dataclass(frozen=True)
class Violation:
    """One broken rule: which, in words, and the rows that break it (JSON-ready)."""

    rule: str
    message: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message}" + (f" {self.rows}" if self.rows else "")


def _owner(value: Any) -> str | None:
    return None if value is None else str(value)


def _plain(row: asyncpg.Record) -> dict[str, Any]:
    return {k: (str(v) if v is not None and not isinstance(v, int | str | bool) else v) for k, v in row.items()}


def _expected_entries(txn: asyncpg.Record, entries: dict[str, Entries]) -> Entries:
    """The entries a transaction of its kind must have, from its header alone."""
    kind, cents = txn["kind"], txn["amount_cents"]
    client, reader = _owner(txn["client_id"]), _owner(txn["reader_id"])
    if kind == "deposit":
        return {("wallet", client): cents, (DEPOSIT_ACCOUNT.get(txn["source"], "?"), None): -cents}
    if kind in CHARGES:
        return {("wallet", client): -cents, ("earnings", reader): txn["reader_cents"],
                ("revenue", None): txn["platform_cents"]}
    if kind == "refund":
        return {("wallet", client): cents, ("earnings", reader): -txn["reader_cents"],
                ("revenue", None): -txn["platform_cents"]}
    if kind in WITHDRAWALS:
        loss = txn["loss_cents"]
        return {("wallet", client): -(cents - loss), ("stripe", None): cents, ("loss", None): -loss}
    if kind == "dispute_fee":
        return {("loss", None): -cents, ("stripe", None): cents}
    if kind == "intro_minute":  # an intro offer's free minute: the platform pays the reader's share
        return {("promotion", None): -cents, ("earnings", reader): cents}
    if kind == "payout":
        return {("earnings", reader): -cents, ("payouts_in_transit", reader): cents}
    if kind == "payout_paid":
        return {("payouts_in_transit", reader): -cents, ("paid_out", reader): cents}
    if kind == "payout_failed":
        return {("payouts_in_transit", reader): -cents, ("earnings", reader): cents}
    if kind == "payout_reversed":
        return {("paid_out", reader): -cents, ("earnings", reader): cents}
    assert kind in REVERSALS
    original = entries.get(str(txn["original_id"]), {})
    return {account: -amount for account, amount in original.items()}


def check_transactions(txns: list[asyncpg.Record], entry_rows: list[asyncpg.Record]) -> list[Violation]:
    """Every way the transactions and their entries break a money rule (no database access: pure)."""
    found: list[Violation] = []

    def bad(rule: str, message: str, *rows: asyncpg.Record) -> None:
        found.append(Violation(rule, message, [_plain(r) for r in rows]))

    entries: dict[str, Entries] = defaultdict(dict)
    for e in entry_rows:
        slot = (e["account"], _owner(e["owner_id"]))
        entries[str(e["txn_id"])][slot] = entries[str(e["txn_id"])].get(slot, 0) + e["amount_cents"]
    by_id = {str(t["id"]): t for t in txns}
    refunded: Counter[str] = Counter()
    refunded_reader: Counter[str] = Counter()
    taken_back: Counter[str] = Counter()
    undone: Counter[str] = Counter()
    payout_ends: Counter[str] = Counter()
    payout_reversed: Counter[str] = Counter()
    for t in txns:
        key, kind, cents = t["key"], t["kind"], t["amount_cents"]
        if kind not in KINDS:
            bad("known_kind", f"{key}: kind {kind!r} is not one these invariants know", t)
            continue
        original = by_id.get(str(t["original_id"])) if t["original_id"] is not None else None
        if kind == "intro_minute" and (t["reader_cents"] != cents or t["platform_cents"] != 0):
            bad("split", f"{key}: a free minute of {cents} recorded as {t['reader_cents']}/{t['platform_cents']}", t)
        if kind in CHARGES and (t["reader_cents"] != cents * READER_PERCENT // 100
                                or t["reader_cents"] + t["platform_cents"] != cents):
            bad("split", f"{key}: a charge of {cents} split {t['reader_cents']}/{t['platform_cents']}", t)
        if kind == "refund":
            if original is None or original["kind"] not in CHARGES or original["client_id"] != t["client_id"]:
                bad("refund_of_charge", f"{key}: a refund of no charge of its client", t)
            else:
                refunded[str(original["id"])] += cents
                refunded_reader[str(original["id"])] += t["reader_cents"]
        if kind in WITHDRAWALS:
            if not 0 <= t["loss_cents"] <= cents:
                bad("loss_range", f"{key}: loss {t['loss_cents']} outside 0..{cents}", t)
            if original is not None:
                if original["kind"] != "deposit" or original["client_id"] != t["client_id"]:
                    bad("withdrawal_of_deposit", f"{key}: a withdrawal of no deposit of its client", t)
                else:
                    taken_back[str(original["id"])] += cents
        if kind in REVERSALS:
            wanted = "dispute" if kind == "dispute_reinstated" else "stripe_refund"
            if original is None or original["kind"] != wanted:
                bad("reversal_of_withdrawal", f"{key}: a {kind} of no {wanted}", t)
            else:
                undone[str(original["id"])] += 1
                deposit = by_id.get(str(original["original_id"])) if original["original_id"] is not None else None
                if deposit is not None:
                    taken_back[str(deposit["id"])] -= original["amount_cents"]
        if kind in PAYOUT_STEPS:
            if original is None or original["kind"] != "payout" or original["reader_id"] != t["reader_id"]:
                bad("payout_step", f"{key}: a {kind} of no payout of its reader", t)
            elif kind == "payout_reversed":
                payout_reversed[str(original["id"])] += cents
            else:
                payout_ends[str(original["id"])] += 1
                if cents != original["amount_cents"]:
                    bad("payout_step", f"{key}: a {kind} of {cents} for a payout of {original['amount_cents']}", t)
        expected = {slot: amount for slot, amount in _expected_entries(t, entries).items() if amount}
        if entries.get(str(t["id"]), {}) != expected:
            bad("entries_of_kind", f"{key} ({kind}): entries {entries.get(str(t['id']), {})} instead of {expected}",
                t)
    for charge_id, cents in refunded.items():
        charge = by_id[charge_id]
        if cents > charge["amount_cents"]:
            bad("refund_cap", f"{charge['key']}: {cents} refunded of a {charge['amount_cents']}-cent charge", charge)
        # Refunds give back the reader's share of the running total, so in all they give back exactly this.
        if refunded_reader[charge_id] != cents * READER_PERCENT // 100:
            bad("refund_split", f"{charge['key']}: reader gave back {refunded_reader[charge_id]} of {cents} refunded",
                charge)
    for deposit_id, cents in taken_back.items():
        deposit = by_id[deposit_id]
        if cents > deposit["amount_cents"]:
            bad("deposit_cap", f"{deposit['key']}: {cents} taken back of a {deposit['amount_cents']}-cent deposit",
                deposit)
    for txn_id, n in undone.items():
        if n > 1:
            bad("undone_once", f"{by_id[txn_id]['key']}: undone {n} times", by_id[txn_id])
    for payout_id, n in payout_ends.items():
        if n > 1:
            bad("payout_ends_once", f"{by_id[payout_id]['key']}: both paid and failed, or twice", by_id[payout_id])
    for payout_id, cents in payout_reversed.items():
        payout = by_id[payout_id]
        if cents > payout["amount_cents"] or not payout_ends[payout_id]:
            bad("payout_reversal_cap", f"{payout['key']}: {cents} reversed of a {payout['amount_cents']}-cent payout",
                payout)
    # Conservation, from the transactions' own amounts (not their entries): what the platform holds for
    # clients, readers and itself (payouts still in transit and paid out included) is what came in by card or
    # operator credit, less what went back out to Stripe from wallets (a withdrawal's loss came out of the
    # platform's pocket, not out of these accounts, and so does a dispute's fee).
    held = sum(e["amount_cents"] for e in entry_rows if e["account"] in HELD_ACCOUNTS)
    # What the promotion account paid readers (intro offers) is the platform's own money, like a loss.
    promoted = -sum(e["amount_cents"] for e in entry_rows if e["account"] == "promotion")
    money_in = sum(t["amount_cents"] for t in txns if t["kind"] == "deposit")
    out = sum(t["amount_cents"] - t["loss_cents"] for t in txns if t["kind"] in WITHDRAWALS)
    back = sum(t["amount_cents"] - t["loss_cents"] for t in txns if t["kind"] in REVERSALS)
    if held != money_in - out + back + promoted:
        found.append(Violation("conservation", f"wallets + earnings + revenue + in transit + paid out = {held},"
                               f" but money in = {money_in} - {out} out + {back} reinstated + {promoted} promoted"
                               f" = {money_in - out + back + promoted}"))
    if promoted < 0:
        found.append(Violation("promotion", f"the promotion account holds {-promoted} cents: it only ever pays"))
    return found


async def verify(db: asyncpg.Pool | asyncpg.Connection) -> list[Violation]:
    """Every violation of the money rules in this database: every transaction balanced and with exactly the
    entries its kind implies; every cached wallet balance equal to its entries; no negative wallet, revenue,
    payout in transit or amount paid out; every idempotency key once; no charge refunded, deposit taken back or
    payout reversed beyond its amount; held money = money in; and the payout, withdrawal and dispute rows agree
    with the ledger. An empty list: the ledger is sound."""
    found: list[Violation] = []

    def rows(rule: str, message: str, records: list[asyncpg.Record]) -> None:
        if records:
            found.append(Violation(rule, message, [_plain(r) for r in records]))

    rows("balanced", "transactions whose entries do not sum to zero", await db.fetch(
        "SELECT txn_id, sum(amount_cents)::bigint AS total FROM ledger_entries GROUP BY txn_id"
        " HAVING sum(amount_cents) <> 0"))
    rows("cached_balance", "cached wallet balances mismatched with their entries", await db.fetch(
        "SELECT coalesce(b.client_id, w.owner_id) AS client_id, b.balance_cents, coalesce(w.total, 0)::bigint AS"
        " entries FROM client_balances b FULL JOIN (SELECT owner_id, sum(amount_cents) AS total FROM ledger_entries"
        " WHERE account = 'wallet' GROUP BY owner_id) w ON w.owner_id = b.client_id"
        " WHERE coalesce(b.balance_cents, 0) <> coalesce(w.total, 0)"))
    rows("negative_wallet", "negative cached wallet balances", await db.fetch(
        "SELECT client_id, balance_cents FROM client_balances WHERE balance_cents < 0"))
    rows("negative_account", "accounts below zero that never may be", await db.fetch(
        "SELECT account, owner_id, balance_cents FROM ledger_accounts WHERE account = ANY($1::text[])"
        " AND balance_cents < 0", list(NEVER_NEGATIVE)))
    rows("key_once", "idempotency keys used more than once", await db.fetch(
        "SELECT key, count(*) AS times FROM ledger_transactions GROUP BY key HAVING count(*) > 1"))
    rows("payout_rows", "payouts whose row and ledger disagree", await db.fetch(
        "SELECT p.id, p.status, p.cents, t.amount_cents AS booked,"
        " EXISTS (SELECT 1 FROM ledger_transactions s WHERE s.original_id = t.id AND s.kind = 'payout_paid') AS paid,"
        " EXISTS (SELECT 1 FROM ledger_transactions s WHERE s.original_id = t.id AND s.kind = 'payout_failed')"
        " AS failed FROM payouts p LEFT JOIN ledger_transactions t ON t.key = 'payout:' || p.id::text"
        " WHERE t.id IS NULL OR t.amount_cents <> p.cents"
        " OR (p.status = 'paid') <> EXISTS (SELECT 1 FROM ledger_transactions s WHERE s.original_id = t.id"
        "                                   AND s.kind = 'payout_paid')"
        " OR (p.status = 'failed') <> EXISTS (SELECT 1 FROM ledger_transactions s WHERE s.original_id = t.id"
        "                                     AND s.kind = 'payout_failed')"))
    rows("withdrawal_rows", "withdrawal parts whose row and ledger disagree", await db.fetch(
        "SELECT p.id, p.status, p.cents, t.amount_cents AS booked FROM withdrawal_parts p"
        " LEFT JOIN ledger_transactions t ON t.key = p.txn_key"
        " WHERE t.id IS NULL OR t.amount_cents <> p.cents OR t.kind <> 'stripe_refund'"
        " OR (p.status = 'failed') <> EXISTS (SELECT 1 FROM ledger_transactions r WHERE r.original_id = t.id"
        "                                     AND r.kind = 'withdrawal_failed')"))
    rows("dispute_rows", "disputes whose row and ledger disagree", await db.fetch(
        "SELECT d.id, d.status, d.held_cents, d.carried_cents, t.amount_cents, t.loss_cents FROM disputes d"
        " LEFT JOIN ledger_transactions t ON t.key = 'stripe:dispute:' || d.id"
        " WHERE (d.held_cents + d.carried_cents > 0) AND (t.id IS NULL OR t.amount_cents - t.loss_cents <> d.held_cents"
        " OR t.loss_cents <> d.carried_cents)"))

    txns = list(await db.fetch(
        "SELECT id, key, kind, amount_cents, reader_cents, platform_cents, loss_cents, client_id, reader_id,"
        " original_id, source FROM ledger_transactions ORDER BY created_at, id"))
    entry_rows = list(await db.fetch("SELECT txn_id, account, owner_id, amount_cents FROM ledger_entries"))
    return found + check_transactions(txns, entry_rows)
