"""The background task that refunds paid messages their reader did not answer in time (api/message_refunds.py).

Safe to run on every node at once: each refund takes the message's row lock (``SKIP LOCKED``, so two sweepers
share the work instead of queueing), re-checks it is still owed, and writes the ledger refund (idempotency key
``message-refund:{messageId}``) and the message's ``refunded_at`` in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web

from api.core.database import OUTAGE_ERRORS
from api.core.keys import BILLING_METRICS, DATABASE, SETTINGS
from api.core.periodic import Periodic
from api.messages.refund_rule import refund_due
from api.realtime import notifications
from billing import ledger
from billing.metrics import BillingMetrics

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Deliver = Callable[[list[tuple[str, dict[str, Any]]]], None]


def refund_key(message_id: str) -> str:
    return f"message-refund:{message_id}"


def utc_now() -> datetime:
    return datetime.now(UTC)


async def sweep(pool: asyncpg.Pool, *, now: datetime, window: timedelta, batch: int = 200,
                deliver: Deliver | None = None, metrics: BillingMetrics | None = None) -> int:
    """Refund every paid message owed back as of ``now``; returns how many this call refunded.

    Each refund stores a ``message-refund`` notification for the client; ``deliver`` pushes it after the commit,
    and ``metrics`` counts the refund then.
    """
    refunded = 0
    while True:
        candidates = await pool.fetch(
            "SELECT id FROM messages WHERE price_cents > 0 AND answered_at IS NULL AND refunded_at IS NULL"
            " AND created_at <= $1 ORDER BY created_at LIMIT $2", now - window, batch)
        this_pass = 0
        for candidate in candidates:
            try:
                done = await _refund_one(pool, str(candidate["id"]), now=now, window=window)
                if done is not None:
                    stored, txn = done
                    this_pass += 1
                    if metrics is not None:
                        metrics.recorded(txn)
                    if deliver is not None:
                        deliver([stored])
            except Exception:
                # One bad row must not stop the others; it is tried again next sweep.
                log.exception("message refund failed", extra={"messageId": str(candidate["id"])})
        refunded += this_pass
        # A short page is the last; a page of rows all taken by another sweeper (or failing) ends this sweep too.
        if len(candidates) < batch or this_pass == 0:
            return refunded


async def _refund_one(pool: asyncpg.Pool, message_id: str, *, now: datetime,
                      window: timedelta) -> tuple[tuple[str, dict[str, Any]], ledger.Txn] | None:
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT m.id, m.created_at, m.price_cents, m.answered_at, m.refunded_at, m.ledger_key, m.thread_id,"
            " t.client_id, t.reader_id FROM messages m JOIN message_threads t ON t.id = m.thread_id"
            " WHERE m.id = $1 FOR UPDATE OF m SKIP LOCKED", message_id)
        if row is None or not refund_due(sent_at=row["created_at"], price_cents=row["price_cents"],
                                         answered_at=row["answered_at"], refunded=row["refunded_at"] is not None,
                                         now=now, window=window):
            return None  # another sweeper has it, or it was answered or refunded meanwhile
        txn = await ledger.refund_charge(conn, original_key=row["ledger_key"], cents=row["price_cents"],
                                         key=refund_key(message_id), memo="premium message not answered in time")
        await conn.execute(
            "UPDATE messages SET refunded_at = now(), refund_key = $2, refunded_cents = $3 WHERE id = $1",
            message_id, txn.key, row["price_cents"])
        stored = await notifications.store(conn, str(row["client_id"]), "message-refund", {
            "threadId": str(row["thread_id"]), "messageId": message_id, "refundedCents": row["price_cents"]})
    log.info("message refunded", extra={"messageId": message_id, "userId": str(row["client_id"]),
                                        "cents": row["price_cents"], "txnId": str(txn.id)})
    return stored, txn


class RefundSweeper(Periodic):
    """Runs :func:`sweep` every ``interval`` seconds; ``clock`` is injectable so tests can jump past 72 hours."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], *, window: timedelta, interval: float,
                 clock: Clock = utc_now, deliver: Deliver | None = None,
                 metrics: BillingMetrics | None = None) -> None:
        super().__init__("refund-sweeper", self.sweep_now, interval=interval, expected=OUTAGE_ERRORS)
        self._pool = pool
        self._deliver = deliver
        self._metrics = metrics
        self.window = window
        self.clock = clock
        self.refunded = 0

    async def sweep_now(self) -> int:
        """One sweep at the sweeper's clock (what the loop does each interval); returns how many it refunded."""
        refunded = await sweep(self._pool(), now=self.clock(), window=self.window, deliver=self._deliver,
                               metrics=self._metrics)
        self.refunded += refunded
        return refunded


REFUND_SWEEPER = web.AppKey("refund_sweeper", RefundSweeper)


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    app[REFUND_SWEEPER] = sweeper = RefundSweeper(
        lambda: app[DATABASE].pool, window=timedelta(seconds=settings.message_refund_after_seconds),
        interval=settings.message_sweep_interval_seconds,
        deliver=lambda stored: notifications.deliver(app, stored), metrics=app[BILLING_METRICS])
    app.cleanup_ctx.append(sweeper.lifetime)
