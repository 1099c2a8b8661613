"""Settling readings a process left behind: from the meter's last heartbeat, exactly once, and only once
their owner's lease has lapsed.

A process killed mid-reading leaves it ``active`` with the minutes it charged (each minute is charged
at its start), the billable seconds of its last heartbeat (at most a second old) and its lease, which
lapses unrenewed. Billing settles the money (:func:`billing.recovery.settle_interrupted`: paid minutes
stand, the unused part of the last one is refunded by the meter's own rule, the reading ends with
``server_restart`` under the next epoch, each exactly once under a row lock and idempotency keys); this
module does the readings' side of it: the reader is no longer busy and both participants get a stored
``session-ended`` notification. A reading whose lease is live, or that runs on this node, is never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import asyncpg
from aiohttp import web

from api import notifications
from api.appkeys import DATABASE
from api.errors import Conflict
from api.reading_states import Actor, Event, State
from api.reading_store import apply, fetch, session_json, set_reader_busy
from billing import recovery
from billing.meter import prorated_refund

log = logging.getLogger(__name__)

Stored = list[tuple[str, dict[str, Any]]]


async def _after_end(conn: asyncpg.Connection, row: asyncpg.Record) -> Stored:
    await set_reader_busy(conn, str(row["reader_id"]), False)
    return [await notifications.store(conn, uid, "session-ended", {"session": session_json(row)})
            for uid in (str(row["client_id"]), str(row["reader_id"]))]


async def settle(conn: asyncpg.Connection, session_id: str, reason: str) -> tuple[asyncpg.Record, Stored]:
    """Settle one active reading that has no runtime and whose lease lapsed, from its persisted meter state,
    in the caller's transaction; returns (row, notifications to deliver after commit)."""
    row = await fetch(conn, session_id, lock=True)
    if row["status"] != State.ACTIVE:
        return row, []
    if row["lease_live"]:
        raise Conflict("this reading is being run by a server right now; try again", code="reading_busy")
    seconds, minutes = row["meter_billable_seconds"], row["meter_minutes_charged"]
    refund = prorated_refund(row["rate_cents"], seconds, minutes) if row["mode"] == "per_minute" else 0
    if row["mode"] == "per_minute":
        await recovery.settle_reading(conn, session_id=session_id, epoch=row["lease_epoch"], billable_seconds=seconds,
                                      refund_cents=refund)
    _, after = await apply(conn, session_id, Event.END, Actor.SYSTEM, reason=reason)
    log.info("reading settled from its heartbeat", extra={"sessionId": session_id, "reason": reason,
                                                          "refundCents": refund})
    return after, await _after_end(conn, after)


async def settle_interrupted(app: web.Application, *, running: Collection[str]) -> list[str]:
    """Settle every reading left active whose lease lapsed, except those ``running`` on this node."""
    pool = app[DATABASE].pool
    settled = await recovery.settle_interrupted(pool, exclude=running)
    for session_id in settled:
        async with pool.acquire() as conn, conn.transaction():
            stored = await _after_end(conn, await fetch(conn, session_id))
        notifications.deliver(app, stored)
    return settled
