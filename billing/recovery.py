"""A reading's money, kept durable and fenced: charged minutes and meter state on its ``rtc_sessions`` row,
written only by the one current owner of the reading.

The readings runtime drives a pure :class:`billing.meter.Meter` and carries out its decisions here:
``charge_minute`` (a ``ChargeMinute``), ``record_heartbeat`` (every tick) and ``settle_reading``
(``Refund`` + ``End``). Each takes the owner's fencing token (``epoch``, the reading's ``lease_epoch``) and
writes only while the reading is ``active`` under that epoch, in the same statement or under the row lock;
otherwise it writes nothing and raises :class:`billing.errors.LeaseLost`. A node that dies mid-reading
leaves the minutes it charged and the billable seconds of its last heartbeat: the next owner (the node
that adopts the expired lease) restores its meter from them, so no minute is charged twice (idempotency
keys ``reading:{session}:minute:{i}``) and the outage is not billed.

Locks: a reading's row before its wallet, everywhere. A minute charge holds the row ``FOR KEY SHARE``
while it waits for the wallet: that blocks anyone changing the epoch or the state (they lock ``FOR
UPDATE``) until the charge is done, but not the lease renewals and heartbeats (``FOR NO KEY UPDATE``).
"""

from __future__ import annotations

import logging

import asyncpg

from billing import ledger
from billing.errors import InsufficientFunds, LeaseLost, UnknownTransaction
from billing.ledger import Db, Txn, atomic, connection
from billing.meter import MINUTE, billed_seconds
from billing.metrics import BillingMetrics

log = logging.getLogger(__name__)


def minute_key(session_id: str, index: int) -> str:
    return f"reading:{session_id}:minute:{index}"


def refund_key(session_id: str) -> str:
    return f"reading:{session_id}:refund"


# The debit happens only if the reading ($8) is active under the caller's epoch ($12); the row lock taken
# here (KEY SHARE, re-checked on the newest row version) holds until the charge commits.
_LEASE_GUARD = """lease AS MATERIALIZED (
    SELECT id FROM rtc_sessions WHERE id = $8::uuid AND lease_epoch = $12::bigint AND status = 'active'
    FOR KEY SHARE
), """
_LEASE_CONDITION = "\n      AND EXISTS (SELECT 1 FROM lease)"
# The minute's charge and the reading's row in one statement. A minute is charged at its start: billable
# time has reached index * 60 s ($11). Only a charge that happened (``txn`` not empty) touches the row.
_READING_CTE = """, reading AS (
    UPDATE rtc_sessions SET charged_cents = charged_cents + txn.amount_cents,
           meter_minutes_charged = greatest(meter_minutes_charged, $10::integer),
           meter_billable_seconds = greatest(meter_billable_seconds, $11::double precision),
           meter_heartbeat_at = now()
    FROM txn WHERE rtc_sessions.id = $8::uuid AND rtc_sessions.lease_epoch = $12::bigint
)"""
CHARGE_MINUTE_CTES = ledger.guarded_charge_ctes(_LEASE_GUARD, _LEASE_CONDITION) + _READING_CTE
CHARGE_MINUTE_STATEMENT = CHARGE_MINUTE_CTES + "\nSELECT * FROM txn"


def minute_args(index: int, epoch: int) -> tuple[int, float, int]:
    """The statement's own parameters ($10, $11, $12) for minute ``index`` charged under ``epoch``."""
    return index + 1, float(index * MINUTE), int(epoch)


async def holds(db: Db, session_id: str, epoch: int) -> bool:
    """Whether the reading is active under ``epoch`` right now."""
    async with connection(db) as conn:
        return bool(await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM rtc_sessions WHERE id = $1 AND lease_epoch = $2 AND status = 'active')",
            session_id, int(epoch)))


async def charge_minute(db: Db, *, session_id: str, epoch: int, client_id: str, reader_id: str, index: int,
                        cents: int, metrics: BillingMetrics | None = None) -> Txn:
    """Charge minute ``index`` of a reading and record it on the reading's row, in one statement, if the
    reading is active under ``epoch``. Idempotent by ``reading:{session_id}:minute:{index}``: a retry (or a
    later owner) gets the original charge and nothing changes. Raises :class:`InsufficientFunds` or
    :class:`LeaseLost`, nothing changed.
    """
    try:
        txn = await ledger.charge_using(db, CHARGE_MINUTE_STATEMENT, client_id=client_id, reader_id=reader_id,
                                        cents=cents, key=minute_key(session_id, index), kind="reading_minute",
                                        ref=session_id, memo=f"minute {index + 1}",
                                        extra_args=minute_args(index, epoch))
    except InsufficientFunds:
        # Nothing was debited: for want of money, or because the guard found no lease. Say which.
        if not await holds(db, session_id, epoch):
            raise LeaseLost(f"reading {session_id} is not active under epoch {epoch}") from None
        if metrics is not None:
            metrics.refused()
        raise
    if metrics is not None:
        metrics.recorded(txn)
    if not txn.replayed:
        log.info("minute charged", extra={"sessionId": session_id, "clientId": client_id, "minute": index,
                                          "cents": cents, "epoch": epoch})
    return txn


async def record_heartbeat(db: Db, session_id: str, billable_seconds: float, minutes_charged: int, *,
                           epoch: int) -> None:
    """Persist the meter's state (what the next owner restores from), if the reading is active under
    ``epoch``; raises :class:`LeaseLost` otherwise. Never moves a value backwards."""
    async with connection(db) as conn:
        status = await conn.execute(
            "UPDATE rtc_sessions SET meter_billable_seconds = greatest(meter_billable_seconds, $2),"
            " meter_minutes_charged = greatest(meter_minutes_charged, $3), meter_heartbeat_at = now()"
            " WHERE id = $1 AND status = 'active' AND lease_epoch = $4",
            session_id, float(billable_seconds), int(minutes_charged), int(epoch))
    if status != "UPDATE 1":
        raise LeaseLost(f"reading {session_id} is not active under epoch {epoch}")


async def settle_reading(db: Db, *, session_id: str, epoch: int, billable_seconds: float, refund_cents: int,
                         metrics: BillingMetrics | None = None) -> None:
    """Refund the unused part of the last minute and write the reading's totals (billable seconds, net
    charged cents) on its row, if it is active under ``epoch`` (else :class:`LeaseLost`). Idempotent
    (``reading:{session_id}:refund``); joins the caller's transaction, so the caller can set the reading
    ``ended`` in the same commit.
    """

    async def work(conn: asyncpg.Connection) -> None:
        row = await conn.fetchrow(
            "SELECT meter_minutes_charged, lease_epoch = $2 AND status = 'active' AS held FROM rtc_sessions"
            " WHERE id = $1 FOR UPDATE", session_id, int(epoch))
        if row is None:
            raise UnknownTransaction(f"no reading {session_id}")
        if not row["held"]:
            raise LeaseLost(f"reading {session_id} is not active under epoch {epoch}")
        await conn.execute(
            "SELECT 1 FROM client_balances WHERE client_id = (SELECT client_id FROM rtc_sessions WHERE id = $1)"
            " FOR UPDATE", session_id)
        await _refund_and_total(conn, session_id, row["meter_minutes_charged"], billable_seconds, refund_cents,
                                metrics)

    await atomic(db, work)


async def _refund_and_total(conn: asyncpg.Connection, session_id: str, minutes_charged: int,
                            billable_seconds: float, refund_cents: int, metrics: BillingMetrics | None) -> None:
    if refund_cents > 0:
        if minutes_charged <= 0:
            raise UnknownTransaction(f"reading {session_id} has no charged minute to refund")
        txn = await ledger.refund_charge(conn, original_key=minute_key(session_id, minutes_charged - 1),
                                         cents=refund_cents, key=refund_key(session_id),
                                         memo="unused part of the last minute")
        if metrics is not None:
            metrics.recorded(txn)
    net = await conn.fetchval(
        "SELECT coalesce(sum(CASE WHEN kind = 'refund' THEN -amount_cents ELSE amount_cents END), 0)::bigint"
        " FROM ledger_transactions WHERE ref = $1 AND kind IN ('reading_minute', 'refund')", session_id)
    await conn.execute(
        "UPDATE rtc_sessions SET billable_seconds = $2, charged_cents = $3,"
        " meter_billable_seconds = greatest(meter_billable_seconds, $4),"
        " meter_minutes_charged = greatest(meter_minutes_charged, $5) WHERE id = $1",
        session_id, billed_seconds(billable_seconds), int(net),
        float(billable_seconds), minutes_charged)
    log.info("reading settled", extra={"sessionId": session_id, "billableSeconds": billable_seconds,
                                       "refundCents": refund_cents, "chargedCents": int(net)})
