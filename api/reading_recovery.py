"""Settling readings a process left behind: from the last heartbeat, exactly once.

A process killed mid-reading leaves it ``active`` with the minutes it charged (each minute is charged
at its start) and the billable seconds of its last heartbeat (at most a second old). Settling keeps
the paid minutes that were used, refunds the unused part of the last one as the meter would have at
that heartbeat, and ends the reading with reason ``interrupted``. The row lock and the refund's
idempotency key make a second settlement (another node, a restart during recovery) a no-op.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from aiohttp import web

from api import notifications
from api import reading_charges as charges
from api.appkeys import DATABASE
from api.reading_states import Actor, Event, State
from api.reading_store import COLUMNS, FROM, apply, fetch, session_json, set_reader_busy

log = logging.getLogger(__name__)


def unused_cents(rate_cents: int, minutes_charged: int, billable_seconds: int) -> int:
    """The refund for the unused seconds of the last charged minute, prorated to the second (rounded down)."""
    if minutes_charged <= 0:
        return 0
    used = min(60, max(0, billable_seconds - (minutes_charged - 1) * 60))
    return rate_cents * (60 - used) // 60


async def settle(conn: asyncpg.Connection, session_id: str, reason: str) -> tuple[asyncpg.Record,
                                                                                    list[tuple[str, dict[str, Any]]]]:
    """Settle one left-behind active reading inside the caller's transaction; returns (row, notifications)."""
    row = await fetch(conn, session_id, lock=True)
    if row["status"] != State.ACTIVE:
        return row, []
    refund = unused_cents(row["rate_cents"], row["minutes_charged"], row["billable_seconds"])
    if refund:
        await charges.refund_unused(conn, session_id=session_id, minute_index=row["minutes_charged"] - 1,
                                    cents=refund)
    _, after = await apply(conn, session_id, Event.END, Actor.SYSTEM, reason=reason, sets={"heartbeat_at": None})
    await set_reader_busy(conn, str(after["reader_id"]), False)
    stored = [await notifications.store(conn, uid, "session-ended", {"session": session_json(after)})
              for uid in (str(after["client_id"]), str(after["reader_id"]))]
    log.info("reading settled after interruption", extra={"sessionId": session_id, "reason": reason,
                                                         "refundedCents": refund})
    return after, stored


async def settle_interrupted(app: web.Application, *, older_than: float) -> list[asyncpg.Record]:
    """Settle every per-minute reading left active with a heartbeat older than ``older_than`` seconds."""
    pool = app[DATABASE].pool
    rows = await pool.fetch(
        f"SELECT {COLUMNS} FROM {FROM} WHERE s.status = 'active' AND s.mode = 'per_minute'"  # noqa: S608
        " AND (s.heartbeat_at IS NULL OR s.heartbeat_at < now() - make_interval(secs => $1))", older_than)
    settled = []
    for row in rows:
        async with pool.acquire() as conn, conn.transaction():
            after, stored = await settle(conn, str(row["id"]), "interrupted")
        notifications.deliver(app, stored)
        settled.append(after)
    return settled
