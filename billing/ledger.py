"""The ledger: every movement of money as a balanced double-entry transaction in PostgreSQL.

Each movement writes a ``ledger_transactions`` row (unique idempotency ``key``), its ``ledger_entries``
(summing to zero; a deferred trigger refuses to commit them otherwise) and the
``client_balances`` row it changes, in one database transaction. Calling again with a key already used
returns the original movement (``Txn.replayed``) and moves nothing; reusing a key for a different movement
raises :class:`IdempotencyConflict`.

Every function takes ``db``: an asyncpg ``Pool`` or ``Connection``. A connection already inside a
transaction is joined (as a savepoint), so a caller can commit a charge together with its own rows; a
refusal (e.g. :class:`InsufficientFunds`) leaves the caller's transaction usable.

Concurrency: a charge is one statement whose ``UPDATE client_balances ... WHERE balance_cents >= cents``
takes the wallet's row lock and re-checks the balance after any concurrent charge commits, so concurrent
charges, from any number of tasks or processes, never overdraw a wallet nor lose an update (and the
``CHECK (balance_cents >= 0)`` of ``client_balances`` would refuse it anyway).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import asyncpg

from billing.errors import (
    BillingError,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    RefundTooLarge,
    UnknownAccount,
    UnknownTransaction,
)
from billing.split import split

log = logging.getLogger(__name__)

CHARGE_KINDS = frozenset({"reading_minute", "scheduled_reading", "gift", "message"})
DEPOSIT_SOURCES = {"stripe": "stripe", "manual": "adjustments"}
WITHDRAWAL_KINDS = frozenset({"stripe_refund", "dispute"})
# A reader's earnings on their way out: (debited account, credited account) of each step of a payout.
PAYOUT_MOVES = {
    "payout": ("earnings", "payouts_in_transit"),
    "payout_paid": ("payouts_in_transit", "paid_out"),
    "payout_failed": ("payouts_in_transit", "earnings"),
    "payout_reversed": ("paid_out", "earnings"),
}
MAX_CENTS = 10**12

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
T = TypeVar("T")


@dataclass(frozen=True)
class Txn:
    """A movement as the ledger recorded it. ``replayed``: the key was used before; nothing moved now."""

    id: str
    key: str
    kind: str
    amount_cents: int
    reader_cents: int
    platform_cents: int
    replayed: bool
    loss_cents: int = 0
    source: str | None = None  # a deposit's: ``stripe`` or ``manual``


_SELECT_TXN = ("SELECT id, key, kind, amount_cents, reader_cents, platform_cents, loss_cents, client_id, reader_id,"
               " original_id, source FROM ledger_transactions WHERE key = $1")
# The same, locking the row: refunds of one charge (or reversals of one withdrawal) run one after the other.
_LOCK_TXN = ("SELECT id, key, kind, amount_cents, reader_cents, platform_cents, loss_cents, client_id, reader_id,"
             " original_id, source FROM ledger_transactions WHERE key = $1 FOR NO KEY UPDATE")


def txn_from_row(row: asyncpg.Record) -> Txn:
    """A movement just recorded, from its ``ledger_transactions`` row."""
    return _txn(row, replayed=False)


def _txn(row: asyncpg.Record, *, replayed: bool) -> Txn:
    return Txn(id=str(row["id"]), key=row["key"], kind=row["kind"], amount_cents=row["amount_cents"],
               reader_cents=row["reader_cents"], platform_cents=row["platform_cents"], replayed=replayed,
               loss_cents=row["loss_cents"], source=row.get("source"))


@asynccontextmanager
async def connection(db: Db) -> AsyncIterator[asyncpg.Connection]:
    """A connection from a pool, or the connection given."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db


async def atomic(db: Db, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run ``work`` in a transaction of its own, or a savepoint of the caller's."""
    async with connection(db) as conn, conn.transaction():
        return await work(conn)


def _check_cents(cents: int, *, allow_zero: bool = False) -> None:
    if isinstance(cents, bool) or not isinstance(cents, int):
        raise InvalidAmount("amounts are integer cents")
    low = 0 if allow_zero else 1
    if not low <= cents <= MAX_CENTS:
        raise InvalidAmount(f"amount must be between {low} and {MAX_CENTS} cents")


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not 1 <= len(key) <= 200:
        raise InvalidAmount("an idempotency key is 1 to 200 characters", code="invalid_key")


async def _replay(conn: asyncpg.Connection, key: str, *, kind: str, amount_cents: int,
                  client_id: str | None = None, reader_id: str | None = None) -> Txn | None:
    """The movement already recorded under ``key``, checked to be the same movement, or None."""
    row = await conn.fetchrow(_SELECT_TXN, key)
    if row is None:
        return None
    same = (row["kind"] == kind and row["amount_cents"] == amount_cents
            and (client_id is None or str(row["client_id"]) == client_id)
            and (reader_id is None or str(row["reader_id"]) == reader_id))
    if not same:
        raise IdempotencyConflict(f"key {key!r} was already used for a different movement")
    return _txn(row, replayed=True)


def _unknown_user(exc: asyncpg.ForeignKeyViolationError) -> UnknownAccount:
    return UnknownAccount(f"no such user ({exc.constraint_name})")


# -- deposits --------------------------------------------------------------------------------------------

_DEPOSIT = """
WITH txn AS (
    INSERT INTO ledger_transactions (key, kind, amount_cents, client_id, source, operator, ref, memo)
    VALUES ($2, 'deposit', $3, $1, $4, $5, $6, $7)
    ON CONFLICT (key) DO NOTHING
    RETURNING id, key, kind, amount_cents, reader_cents, platform_cents, loss_cents, source
), entries AS (
    INSERT INTO ledger_entries (txn_id, account, owner_id, amount_cents)
    SELECT txn.id, e.account, e.owner_id, e.amount
    FROM txn CROSS JOIN (VALUES ('wallet', $1::uuid, $3::bigint), ($8, NULL::uuid, -$3::bigint))
         AS e (account, owner_id, amount)
), wallet AS (
    INSERT INTO client_balances (client_id, balance_cents) SELECT $1, $3 FROM txn
    ON CONFLICT (client_id) DO UPDATE
    SET balance_cents = client_balances.balance_cents + EXCLUDED.balance_cents, updated_at = now()
)
SELECT * FROM txn
"""


async def deposit(db: Db, *, client_id: str, cents: int, key: str, source: str = "stripe", memo: str = "",
                  ref: str | None = None, operator: str | None = None) -> Txn:
    """Money into a client's wallet from outside: ``stripe`` (card) or ``manual`` (an operator's credit).

    ``ref`` is what identifies the payment outside (Stripe: the PaymentIntent id, so a later refund or
    dispute finds this deposit); ``operator`` records who made a manual credit.
    """
    _check_cents(cents)
    _check_key(key)
    if source not in DEPOSIT_SOURCES:
        raise BillingError(f"source must be one of {sorted(DEPOSIT_SOURCES)}", code="invalid_source")

    async def work(conn: asyncpg.Connection) -> Txn:
        try:
            row = await conn.fetchrow(_DEPOSIT, client_id, key, cents, source, operator, ref, memo,
                                      DEPOSIT_SOURCES[source])
        except asyncpg.ForeignKeyViolationError as exc:
            raise _unknown_user(exc) from None
        if row is not None:
            log.info("deposit", extra={"clientId": client_id, "cents": cents, "key": key, "source": source})
            return _txn(row, replayed=False)
        replayed = await _replay(conn, key, kind="deposit", amount_cents=cents, client_id=client_id)
        assert replayed is not None  # ON CONFLICT DO NOTHING returned nothing: the key exists
        return replayed

    return await _statement(db, work)


# -- charges ---------------------------------------------------------------------------------------------

# One statement: the wallet is debited only if it covers the charge and the key is new; the transaction
# and its entries are written only if the debit happened. Two concurrent calls with one key cannot both
# succeed: the second fails on the unique key and its whole statement (debit included) is rolled back.
# Parameters: $1 client, $2 reader, $3 cents, $4 key, $5 kind, $6 reader cents, $7 platform cents, $8 ref,
# $9 memo. A caller may append CTEs of its own that read ``txn`` (see :func:`charge_using`), and guard the
# debit with CTEs of its own placed before it (see :func:`guarded_charge_ctes`).
_CHARGE_CTES = """
WITH <guard>debit AS (
    UPDATE client_balances SET balance_cents = balance_cents - $3, updated_at = now()
    WHERE client_id = $1 AND balance_cents >= $3
      AND NOT EXISTS (SELECT 1 FROM ledger_transactions WHERE key = $4)<condition>
    RETURNING client_id
), txn AS (
    INSERT INTO ledger_transactions (key, kind, amount_cents, reader_cents, platform_cents, client_id, reader_id,
                                     ref, memo)
    SELECT $4, $5, $3, $6, $7, $1, $2, $8, $9 FROM debit
    RETURNING id, key, kind, amount_cents, reader_cents, platform_cents, loss_cents
), entries AS (
    INSERT INTO ledger_entries (txn_id, account, owner_id, amount_cents)
    SELECT txn.id, e.account, e.owner_id, e.amount
    FROM txn CROSS JOIN (VALUES ('wallet', $1::uuid, -$3::bigint), ('earnings', $2::uuid, $6::bigint),
                                ('revenue', NULL::uuid, $7::bigint)) AS e (account, owner_id, amount)
    WHERE e.amount <> 0
)"""


def guarded_charge_ctes(guard: str = "", condition: str = "") -> str:
    """The charge's CTEs with the caller's ``guard`` CTEs (ending in a comma) before the debit and an extra
    ``condition`` (``AND ...``) on it: money moves only if the condition holds, in the same statement (a
    reading's minute is charged only by the holder of the reading's lease, for example)."""
    return _CHARGE_CTES.replace("<guard>", guard).replace("<condition>", condition)


CHARGE_CTES = guarded_charge_ctes()
CHARGE_STATEMENT = CHARGE_CTES + "\nSELECT * FROM txn"

# A free minute (rate 0) moves nothing but is still recorded, so its key is taken like any other.
_FREE_CHARGE = """
INSERT INTO ledger_transactions (key, kind, amount_cents, client_id, reader_id, ref, memo)
VALUES ($3, $4, 0, $1, $2, $5, $6)
ON CONFLICT (key) DO NOTHING
RETURNING id, key, kind, amount_cents, reader_cents, platform_cents, loss_cents
"""


async def charge(db: Db, *, client_id: str, reader_id: str, cents: int, key: str, kind: str,
                 ref: str | None = None, memo: str = "") -> Txn:
    """Move ``cents`` from the client's wallet to the reader (70 %, floored) and the platform (the rest).

    Raises :class:`InsufficientFunds` when the wallet does not cover it; nothing is moved then.
    """
    return await charge_using(db, CHARGE_STATEMENT, client_id=client_id, reader_id=reader_id, cents=cents, key=key,
                              kind=kind, ref=ref, memo=memo)


async def charge_using(db: Db, statement: str, *, client_id: str, reader_id: str, cents: int, key: str, kind: str,
                       ref: str | None = None, memo: str = "", extra_args: Sequence[Any] = ()) -> Txn:
    """:func:`charge` with a statement of the caller's: :data:`CHARGE_CTES` followed by the caller's own CTEs
    (which see the new ``txn``, empty when nothing was charged; their parameters ``extra_args`` are $10, ...)
    and ``SELECT * FROM txn``. So a charge and the caller's row that records it commit in one statement.
    """
    _check_cents(cents, allow_zero=True)
    _check_key(key)
    if kind not in CHARGE_KINDS:
        raise BillingError(f"kind must be one of {sorted(CHARGE_KINDS)}", code="invalid_kind")
    reader_cents, platform_cents = split(cents)

    async def work(conn: asyncpg.Connection) -> Txn:
        try:
            if cents == 0:
                row = await conn.fetchrow(_FREE_CHARGE, client_id, reader_id, key, kind, ref, memo)
            else:
                row = await conn.fetchrow(statement, client_id, reader_id, cents, key, kind, reader_cents,
                                          platform_cents, ref, memo, *extra_args)
        except asyncpg.ForeignKeyViolationError as exc:
            raise _unknown_user(exc) from None
        if row is not None:
            return _txn(row, replayed=False)
        replayed = await _replay(conn, key, kind=kind, amount_cents=cents, client_id=client_id,
                                 reader_id=reader_id)
        if replayed is not None:
            return replayed
        have = await conn.fetchval("SELECT balance_cents FROM client_balances WHERE client_id = $1", client_id)
        raise InsufficientFunds(balance_cents=int(have or 0), needed_cents=cents)

    return await _statement(db, work)


async def _statement(db: Db, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run a one-statement movement: bare (it is atomic on its own), or in a savepoint of the caller's
    transaction so that a lost race on the key does not abort the caller's work. A lost race is a replay."""
    async with connection(db) as conn:
        for attempt in range(2):
            try:
                if conn.is_in_transaction():
                    async with conn.transaction():
                        return await work(conn)
                return await work(conn)
            except asyncpg.UniqueViolationError as exc:
                # Another call with the same key committed between our check and our insert: once more,
                # and this time the key is seen taken.
                if exc.constraint_name != "ledger_transactions_key_key" or attempt:
                    raise
        raise AssertionError("unreachable")


# -- refunds ---------------------------------------------------------------------------------------------

async def refund_charge(db: Db, *, original_key: str, cents: int, key: str, memo: str = "") -> Txn:
    """Give back ``cents`` of the charge recorded under ``original_key`` to its wallet.

    The reader's earnings and the platform's revenue give it back in the charge's 70/30 proportion. The
    reader's part is computed on the running total refunded (``split(refunded_after)[0] -
    split(refunded_before)[0]``), which for a single refund is ``split(cents)[0]`` and makes a charge
    refunded in several parts give back exactly what it paid each side.
    """
    _check_cents(cents)
    _check_key(key)

    async def work(conn: asyncpg.Connection) -> Txn:
        original = await conn.fetchrow(_LOCK_TXN, original_key)
        if original is None or original["kind"] not in CHARGE_KINDS:
            raise UnknownTransaction(f"no charge with key {original_key!r}")
        client_id, reader_id = str(original["client_id"]), str(original["reader_id"])
        # Checked after the lock on the original: concurrent refunds of one charge run one after the other.
        replayed = await _replay(conn, key, kind="refund", amount_cents=cents, client_id=client_id)
        if replayed is not None:
            return replayed
        done = await conn.fetchrow(
            "SELECT coalesce(sum(amount_cents), 0)::bigint AS cents, coalesce(sum(reader_cents), 0)::bigint AS reader"
            " FROM ledger_transactions WHERE original_id = $1 AND kind = 'refund'", original["id"])
        remaining = original["amount_cents"] - done["cents"]
        if cents > remaining:
            raise RefundTooLarge(f"only {remaining} cents of that charge remain to refund")
        reader_cents = split(done["cents"] + cents)[0] - done["reader"]
        platform_cents = cents - reader_cents
        row = await conn.fetchrow(
            "INSERT INTO ledger_transactions (key, kind, amount_cents, reader_cents, platform_cents, client_id,"
            " reader_id, original_id, ref, memo) SELECT $1, 'refund', $2, $3, $4, client_id, reader_id, id, ref, $5"
            " FROM ledger_transactions WHERE id = $6"
            " RETURNING id, key, kind, amount_cents, reader_cents, platform_cents, loss_cents",
            key, cents, reader_cents, platform_cents, memo, original["id"])
        await _entries(conn, row["id"], [("wallet", client_id, cents), ("earnings", reader_id, -reader_cents),
                                         ("revenue", None, -platform_cents)])
        await conn.execute(
            "UPDATE client_balances SET balance_cents = balance_cents + $2, updated_at = now() WHERE client_id = $1",
            client_id, cents)
        log.info("refund", extra={"clientId": client_id, "cents": cents, "key": key, "original": original_key})
        return _txn(row, replayed=False)

    return await atomic(db, work)


async def _entries(conn: asyncpg.Connection, txn_id: Any, entries: list[tuple[str, str | None, int]]) -> None:
    """All of a transaction's entries, in one statement (one round trip). Checked here as well as in the
    database: an unbalanced movement is a bug, refused before it reaches PostgreSQL."""
    if sum(cents for _, _, cents in entries) != 0:
        raise AssertionError(f"unbalanced ledger entries {entries!r}")
    kept = [(account, owner, cents) for account, owner, cents in entries if cents != 0]
    await conn.execute(
        "INSERT INTO ledger_entries (txn_id, account, owner_id, amount_cents)"
        " SELECT $1, account, owner_id, amount FROM unnest($2::text[], $3::uuid[], $4::bigint[])"
        " AS e (account, owner_id, amount)",
        txn_id, [k[0] for k in kept], [k[1] for k in kept], [k[2] for k in kept])


# -- money going back out (Stripe refunds, disputes) ----------------------------------------------------

async def withdraw_deposit(db: Db, *, client_id: str, cents: int, key: str, kind: str, ref: str | None,
                           original_key: str | None = None, memo: str = "") -> Txn:
    """Money leaving through Stripe (a card refund, a dispute): out of the wallet, back to the stripe account.

    The wallet can't go negative: when it has already spent part of the money, what it holds is taken and
    the rest is booked to the platform's ``loss`` account (``Txn.loss_cents``). We chose a visible loss over
    a debt on the client: it keeps every wallet a plain non-negative balance, and the loss account tells
    operators exactly what card reversals cost the platform.

    With ``original_key`` (the client's deposit this money was paid in by), what is taken back of that deposit
    in all (its withdrawals not reinstated) can never exceed it: :class:`RefundTooLarge` otherwise.
    """
    _check_cents(cents)
    _check_key(key)
    if kind not in WITHDRAWAL_KINDS:
        raise BillingError(f"kind must be one of {sorted(WITHDRAWAL_KINDS)}", code="invalid_kind")

    async def work(conn: asyncpg.Connection) -> Txn:
        # The deposit first, then the wallet: the order the Stripe events take them in.
        original = await conn.fetchrow(_LOCK_TXN, original_key) if original_key is not None else None
        if original_key is not None and (original is None or original["kind"] != "deposit"
                                         or str(original["client_id"]) != client_id):
            raise UnknownTransaction(f"no deposit of this client with key {original_key!r}")
        have = await conn.fetchval(
            "SELECT balance_cents FROM client_balances WHERE client_id = $1 FOR UPDATE", client_id)
        replayed = await _replay(conn, key, kind=kind, amount_cents=cents, client_id=client_id)
        if replayed is not None:
            return replayed
        original_id = None
        if original is not None:
            original_id = original["id"]
            remaining = original["amount_cents"] - sum((await withdrawn(conn, original_id)).values())
            if cents > remaining:
                raise RefundTooLarge(f"only {remaining} cents of that deposit remain to take back")
        taken = min(int(have or 0), cents)
        loss = cents - taken
        try:
            row = await conn.fetchrow(
                "INSERT INTO ledger_transactions (key, kind, amount_cents, loss_cents, client_id, original_id, ref,"
                " memo) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " RETURNING id, key, kind, amount_cents, reader_cents, platform_cents, loss_cents",
                key, kind, cents, loss, client_id, original_id, ref, memo)
        except asyncpg.ForeignKeyViolationError as exc:
            raise _unknown_user(exc) from None
        await _entries(conn, row["id"], [("wallet", client_id, -taken), ("stripe", None, cents), ("loss", None, -loss)])
        if taken:
            await conn.execute(
                "UPDATE client_balances SET balance_cents = balance_cents - $2, updated_at = now()"
                " WHERE client_id = $1", client_id, taken)
        log.warning("withdrawal", extra={"clientId": client_id, "cents": cents, "lossCents": loss, "key": key,
                                         "kind": kind})
        return _txn(row, replayed=False)

    return await atomic(db, work)


async def withdrawn(db: Db, deposit_id: Any) -> dict[str, int]:
    """What is taken back of a deposit now, by kind (``stripe_refund``, ``dispute``): its withdrawals that
    were not reinstated (a reinstatement undoes a whole withdrawal)."""
    async with connection(db) as conn:
        rows = await conn.fetch(
            "SELECT kind, sum(amount_cents)::bigint AS cents FROM ledger_transactions w"
            " WHERE original_id = $1 AND kind = ANY($2::text[])"
            " AND NOT EXISTS (SELECT 1 FROM ledger_transactions r WHERE r.original_id = w.id)"
            " GROUP BY kind", deposit_id, sorted(WITHDRAWAL_KINDS))
    return {kind: 0 for kind in sorted(WITHDRAWAL_KINDS)} | {r["kind"]: int(r["cents"]) for r in rows}


async def reverse(db: Db, *, original_key: str, key: str, kind: str = "dispute_reinstated", memo: str = "") -> Txn:
    """Undo a withdrawal exactly, every entry negated: a dispute won (Stripe reinstated the funds), or a
    withdrawal's card refund Stripe refused (``withdrawal_failed``: the money never left)."""
    _check_key(key)
    if kind not in ("dispute_reinstated", "withdrawal_failed"):
        raise BillingError("kind must be dispute_reinstated or withdrawal_failed", code="invalid_kind")

    async def work(conn: asyncpg.Connection) -> Txn:
        original = await conn.fetchrow(_LOCK_TXN, original_key)
        if original is None or original["kind"] not in WITHDRAWAL_KINDS:
            raise UnknownTransaction(f"no withdrawal with key {original_key!r}")
        client_id = str(original["client_id"])
        replayed = await _replay(conn, key, kind=kind, amount_cents=original["amount_cents"], client_id=client_id)
        if replayed is not None:
            return replayed
        entries = await conn.fetch("SELECT account, owner_id, amount_cents FROM ledger_entries WHERE txn_id = $1",
                                   original["id"])
        row = await conn.fetchrow(
            "INSERT INTO ledger_transactions (key, kind, amount_cents, loss_cents, client_id, original_id, ref,"
            " memo) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " RETURNING id, key, kind, amount_cents, reader_cents, platform_cents, loss_cents",
            key, kind, original["amount_cents"], original["loss_cents"], client_id, original["id"],
            original_key, memo)
        await _entries(conn, row["id"], [(e["account"], e["owner_id"], -e["amount_cents"]) for e in entries])
        back = sum(-e["amount_cents"] for e in entries if e["account"] == "wallet")
        if back:
            await conn.execute(
                "UPDATE client_balances SET balance_cents = balance_cents + $2, updated_at = now()"
                " WHERE client_id = $1", client_id, back)
        log.info("withdrawal reversed", extra={"clientId": client_id, "key": key, "original": original_key})
        return _txn(row, replayed=False)

    return await atomic(db, work)


# -- money going out to readers (payouts) ---------------------------------------------------------------

async def move_reader_money(db: Db, *, reader_id: str, cents: int, key: str, kind: str,
                            original_key: str | None = None, ref: str | None = None, memo: str = "") -> Txn:
    """One step of a payout (:data:`PAYOUT_MOVES`): ``cents`` from one of the reader's accounts to another.

    A payout's later steps name it (``original_key``); what may move is the caller's rule (billing/payouts.py),
    recorded here once per key like every movement.
    """
    _check_cents(cents)
    _check_key(key)
    if kind not in PAYOUT_MOVES:
        raise BillingError(f"kind must be one of {sorted(PAYOUT_MOVES)}", code="invalid_kind")
    debit, credit = PAYOUT_MOVES[kind]

    async def work(conn: asyncpg.Connection) -> Txn:
        original_id = None
        if original_key is not None:
            original = await conn.fetchrow(_LOCK_TXN, original_key)
            if original is None or original["kind"] != "payout" or str(original["reader_id"]) != reader_id:
                raise UnknownTransaction(f"no payout of this reader with key {original_key!r}")
            original_id = original["id"]
        replayed = await _replay(conn, key, kind=kind, amount_cents=cents, reader_id=reader_id)
        if replayed is not None:
            return replayed
        try:
            row = await conn.fetchrow(
                "INSERT INTO ledger_transactions (key, kind, amount_cents, reader_id, original_id, ref, memo)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " RETURNING id, key, kind, amount_cents, reader_cents, platform_cents, loss_cents",
                key, kind, cents, reader_id, original_id, ref, memo)
        except asyncpg.ForeignKeyViolationError as exc:
            raise _unknown_user(exc) from None
        await _entries(conn, row["id"], [(debit, reader_id, -cents), (credit, reader_id, cents)])
        log.info("reader money moved", extra={"readerId": reader_id, "cents": cents, "key": key, "kind": kind})
        return _txn(row, replayed=False)

    return await atomic(db, work)


async def dispute_fee(db: Db, *, client_id: str, cents: int, key: str, ref: str | None, memo: str = "") -> Txn:
    """The fee of a dispute lost: out of the platform's pocket (``loss``) to Stripe. The client owes nothing."""
    _check_cents(cents)
    _check_key(key)

    async def work(conn: asyncpg.Connection) -> Txn:
        replayed = await _replay(conn, key, kind="dispute_fee", amount_cents=cents, client_id=client_id)
        if replayed is not None:
            return replayed
        row = await conn.fetchrow(
            "INSERT INTO ledger_transactions (key, kind, amount_cents, client_id, ref, memo)"
            " VALUES ($1, 'dispute_fee', $2, $3, $4, $5)"
            " RETURNING id, key, kind, amount_cents, reader_cents, platform_cents, loss_cents",
            key, cents, client_id, ref, memo)
        await _entries(conn, row["id"], [("loss", None, -cents), ("stripe", None, cents)])
        return _txn(row, replayed=False)

    return await atomic(db, work)


# -- reading ---------------------------------------------------------------------------------------------

async def balance(db: Db, client_id: str) -> int:
    """The wallet's balance in cents (0 for a client who never had money)."""
    async with connection(db) as conn:
        value = await conn.fetchval("SELECT balance_cents FROM client_balances WHERE client_id = $1", client_id)
    return int(value or 0)


async def earnings(db: Db, reader_id: str) -> int:
    """What a reader has earned, net of refunds, in cents."""
    async with connection(db) as conn:
        value = await conn.fetchval(
            "SELECT coalesce(sum(amount_cents), 0)::bigint FROM ledger_entries"
            " WHERE owner_id = $1 AND account = 'earnings'", reader_id)
    return int(value)


async def history(db: Db, user_id: str, *, limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
    """A wallet's or a reader's movements, newest first, ready for JSON.

    Each item: ``{id, kind, account ("wallet"|"earnings"), amountCents (signed: what this account gained),
    ref, memo, createdAt (ISO-8601 UTC), originalKind (what a refund or reversal gave back: a reading's minute,
    a booking, ...; else null), cursor}``; pass the last ``cursor`` as ``before`` for the next page.
    """
    limit = max(1, min(int(limit), 200))
    async with connection(db) as conn:
        rows = await conn.fetch(
            "SELECT e.id AS cursor, t.id, t.kind, e.account, e.amount_cents, t.ref, t.memo, t.created_at,"
            " o.kind AS original_kind FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.txn_id"
            " LEFT JOIN ledger_transactions o ON o.id = t.original_id"
            " WHERE e.owner_id = $1 AND ($3::bigint IS NULL OR e.id < $3)"
            " ORDER BY e.id DESC LIMIT $2", user_id, limit, before)
    return [{"id": str(r["id"]), "kind": r["kind"], "account": r["account"], "amountCents": r["amount_cents"],
             "ref": r["ref"], "memo": r["memo"], "createdAt": r["created_at"].isoformat().replace("+00:00", "Z"),
             "originalKind": r["original_kind"], "cursor": r["cursor"]} for r in rows]
