"""Settling readings a process left behind: from the meter's last heartbeat, exactly once.

A process killed mid-reading leaves it ``active`` with the minutes it charged (each minute is charged
at its start) and the billable seconds of its last heartbeat (at most a second old). Billing settles
the money (:func:`billing.recovery.settle_interrupted`: paid minutes stand, the unused part of the last
one is refunded by the meter's own rule, the reading ends with ``server_restart``, each exactly once
under a row lock and idempotency keys); this module does the readings' side of it: the reader is no
longer busy and both participants get a stored ``session-ended`` notification.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from aiohttp import web

from api import notifications
from api.appkeys import BILLING_METRICS, DATABASE
from api.reading_states import Actor, Event, State
from api.reading_store import apply, fetch, session_json, set_reader_busy
from billing import recovery
from billing.meter import prorated_refund
from billing.metrics import BillingMetrics

log = logging.getLogger(__name__)

Stored = list[tuple[str, dict[str, Any]]]


async def _after_end(conn: asyncpg.Connection, row: asyncpg.Record) -> Stored:
    await set_reader_busy(conn, str(row["reader_id"]), False)
    return [await notifications.store(conn, uid, "session-ended", {"session": session_json(row)})
            for uid in (str(row["client_id"]), str(row["reader_id"]))]


async def settle(conn: asyncpg.Connection, session_id: str, reason: str,
                 metrics: BillingMetrics | None = None) -> tuple[asyncpg.Record, Stored]:
    """Settle one active reading that has no runtime, from its persisted meter state, in the caller's
    transaction; returns (row, notifications to deliver after commit)."""
    row = await fetch(conn, session_id, lock=True)
    if row["status"] != State.ACTIVE:
        return row, []
    seconds, minutes = row["meter_billable_seconds"], row["meter_minutes_charged"]
    refund = prorated_refund(row["rate_cents"], seconds, minutes) if row["mode"] == "per_minute" else 0
    if row["mode"] == "per_minute":
        await recovery.settle_reading(conn, session_id=session_id, billable_seconds=seconds, refund_cents=refund,
                                      metrics=metrics)
    _, after = await apply(conn, session_id, Event.END, Actor.SYSTEM, reason=reason)
    log.info("reading settled from its heartbeat", extra={"sessionId": session_id, "reason": reason,
                                                          "refundCents": refund})
    return after, await _after_end(conn, after)


async def settle_interrupted(app: web.Application, *, older_than: float) -> list[str]:
    """Settle every reading left active with a heartbeat older than ``older_than`` seconds (start-up)."""
    pool = app[DATABASE].pool
    settled = await recovery.settle_interrupted(pool, older_than_seconds=older_than, metrics=app[BILLING_METRICS])
    for session_id in settled:
        async with pool.acquire() as conn, conn.transaction():
            stored = await _after_end(conn, await fetch(conn, session_id))
        notifications.deliver(app, stored)
    return settled
