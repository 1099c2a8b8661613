"""A reading's money, kept durable: charged minutes and meter state on its ``rtc_sessions`` row, so that a
crash settles exactly once.

The readings runtime drives a pure :class:`billing.meter.Meter` and carries out its decisions here:
``charge_minute`` (a ``ChargeMinute``), ``record_heartbeat`` (every few seconds) and ``settle_reading``
(``Refund`` + ``End``). When a node dies mid-reading, ``settle_interrupted`` (run at start-up, and
periodically for other nodes' readings) finds the readings whose heartbeat went stale and settles them:
the paid minutes stand and the unused part of the last charged minute is refunded, computed from the last
persisted billable seconds with the meter's own rule (:func:`billing.meter.prorated_refund`).
"""

from __future__ import annotations

import logging

import asyncpg

from billing import ledger
from billing.errors import BillingError, InsufficientFunds, UnknownTransaction
from billing.ledger import Db, Txn, atomic, connection
from billing.meter import MINUTE, billed_seconds, prorated_refund
from billing.metrics import BillingMetrics

log = logging.getLogger(__name__)


def minute_key(session_id: str, index: int) -> str:
    return f"reading:{session_id}:minute:{index}"


def refund_key(session_id: str) -> str:
    return f"reading:{session_id}:refund"


# The minute's charge and the reading's row in one statement. A minute is charged at its start: billable
# time has reached index * 60 s ($11). Only a charge that happened (``txn`` not empty) touches the row.
_READING_CTE = """, reading AS (
    UPDATE rtc_sessions SET charged_cents = charged_cents + txn.amount_cents,
           meter_minutes_charged = greatest(meter_minutes_charged, $10::integer),
           meter_billable_seconds = greatest(meter_billable_seconds, $11::double precision),
           meter_heartbeat_at = now()
    FROM txn WHERE rtc_sessions.id = $8::uuid
)"""
CHARGE_MINUTE_CTES = ledger.CHARGE_CTES + _READING_CTE
CHARGE_MINUTE_STATEMENT = CHARGE_MINUTE_CTES + "\nSELECT * FROM txn"


def minute_args(index: int) -> tuple[int, float]:
    """The statement's own parameters ($10, $11) for minute ``index``."""
    return index + 1, float(index * MINUTE)


async def charge_minute(db: Db, *, session_id: str, client_id: str, reader_id: str, index: int, cents: int,
                        metrics: BillingMetrics | None = None) -> Txn:
    """Charge minute ``index`` of a reading and record it on the reading's row, in one transaction (one
    statement). Idempotent by ``reading:{session_id}:minute:{index}``: a retry (or a second node) returns the
    original charge and changes nothing. Raises :class:`billing.errors.InsufficientFunds`, nothing changed.
    """
    try:
        txn = await ledger.charge_using(db, CHARGE_MINUTE_STATEMENT, client_id=client_id, reader_id=reader_id,
                                        cents=cents, key=minute_key(session_id, index), kind="reading_minute",
                                        ref=session_id, memo=f"minute {index + 1}", extra_args=minute_args(index))
    except InsufficientFunds:
        if metrics is not None:
            metrics.refused()
        raise
    if metrics is not None:
        metrics.recorded(txn)
    if not txn.replayed:
        log.info("minute charged", extra={"sessionId": session_id, "clientId": client_id, "minute": index,
                                          "cents": cents})
    return txn


async def record_heartbeat(db: Db, session_id: str, billable_seconds: float, minutes_charged: int) -> None:
    """Persist the meter's state: what a crash would settle from. Never moves a value backwards."""
    async with connection(db) as conn:
        await conn.execute(
            "UPDATE rtc_sessions SET meter_billable_seconds = greatest(meter_billable_seconds, $2),"
            " meter_minutes_charged = greatest(meter_minutes_charged, $3), meter_heartbeat_at = now()"
            " WHERE id = $1 AND status = 'active'", session_id, float(billable_seconds), int(minutes_charged))


async def settle_reading(db: Db, *, session_id: str, billable_seconds: float, refund_cents: int,
                         metrics: BillingMetrics | None = None) -> None:
    """Refund the unused part of the last minute and write the reading's totals (billable seconds, net
    charged cents) on its row. Idempotent (``reading:{session_id}:refund``); joins the caller's transaction,
    so the caller can set the reading ``ended`` in the same commit.
    """

    async def work(conn: asyncpg.Connection) -> None:
        await _lock_wallet_of(conn, session_id)
        row = await conn.fetchrow("SELECT meter_minutes_charged FROM rtc_sessions WHERE id = $1 FOR UPDATE",
                                  session_id)
        if row is None:
            raise UnknownTransaction(f"no reading {session_id}")
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


async def settle_interrupted(db: Db, *, older_than_seconds: float,
                             metrics: BillingMetrics | None = None) -> list[str]:
    """Settle every active reading whose meter heartbeat is older than ``older_than_seconds`` (0 at a single
    node's start-up: all of them). Each is settled exactly once, in its own transaction: paid minutes
    stand, the unused part of the last charged minute is refunded, and the reading ends with
    ``end_reason = 'server_restart'``. Returns the ids settled; a second run finds nothing to do.
    """
    async with connection(db) as conn:
        candidates = await conn.fetch(
            "SELECT id FROM rtc_sessions WHERE status = 'active'"
            " AND coalesce(meter_heartbeat_at, started_at, accepted_at, requested_at)"
            "     <= now() - make_interval(secs => $1)", float(older_than_seconds))
    settled: list[str] = []
    for candidate in candidates:
        session_id = str(candidate["id"])
        try:
            if await _settle_one(db, session_id, older_than_seconds, metrics):
                settled.append(session_id)
        except (asyncpg.PostgresError, BillingError):
            # One reading that cannot be settled must not keep the others from being settled.
            log.exception("could not settle an interrupted reading", extra={"sessionId": session_id})
    if settled:
        log.warning("interrupted readings settled", extra={"count": len(settled), "sessionIds": settled})
    return settled


async def _settle_one(db: Db, session_id: str, older_than_seconds: float, metrics: BillingMetrics | None) -> bool:
    async def work(conn: asyncpg.Connection) -> bool:
        await _lock_wallet_of(conn, session_id)
        # SKIP LOCKED: a reading some node is settling (or charging) right now is not ours to settle.
        row = await conn.fetchrow(
            "SELECT mode, rate_cents, meter_billable_seconds, meter_minutes_charged FROM rtc_sessions"
            " WHERE id = $1 AND status = 'active'"
            " AND coalesce(meter_heartbeat_at, started_at, accepted_at, requested_at)"
            "     <= now() - make_interval(secs => $2)"
            " FOR UPDATE SKIP LOCKED", session_id, float(older_than_seconds))
        if row is None:
            return False
        seconds, minutes = row["meter_billable_seconds"], row["meter_minutes_charged"]
        if row["mode"] == "per_minute":
            refund = prorated_refund(row["rate_cents"], seconds, minutes)
            await _refund_and_total(conn, session_id, minutes, seconds, refund, metrics)
        await conn.execute(
            "UPDATE rtc_sessions SET status = 'ended', end_reason = 'server_restart', ended_at = now()"
            " WHERE id = $1", session_id)
        return True

    return await atomic(db, work)


async def _lock_wallet_of(conn: asyncpg.Connection, session_id: str) -> None:
    """Lock the reading's wallet before the reading's row: the order a charge takes them in (wallet, then
    reading), so settling and charging one reading at once wait for each other instead of deadlocking."""
    await conn.execute(
        "SELECT 1 FROM client_balances WHERE client_id = (SELECT client_id FROM rtc_sessions WHERE id = $1)"
        " FOR UPDATE", session_id)
