"""Reminders of a booked reading, 24 hours and 10 minutes before its start, sent once by a durable sweeper.

The reminders are rows (``booking_reminders``) written in the booking's own transaction, not timers: a restart,
a crash or a second node loses none and sends none twice. Each node's :class:`ReminderSweeper` claims the due
rows (``FOR UPDATE SKIP LOCKED``, so two sweepers share the work) and, in the same transaction, marks them sent
and stores the notifications (and e-mails, through the ``on_due`` hook); a reading cancelled meanwhile is
skipped. A reminder whose moment had already passed at booking (a reading booked for in two hours has no
24-hour reminder) is never written.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web

from api.core.database import OUTAGE_ERRORS
from api.core.keys import DATABASE, SETTINGS
from api.core.mail import MAIL
from api.core.periodic import Periodic
from api.readings import receipts
from api.readings.store import COLUMNS, FROM, session_json
from api.realtime import notifications

log = logging.getLogger(__name__)

BEFORE = {"24h": timedelta(hours=24), "10m": timedelta(minutes=10)}
WORDS = {"24h": "24 hours", "10m": "10 minutes"}

Stored = list[tuple[str, dict[str, Any]]]
# Called in the sweep's transaction for each reminder sent: (conn, the reading, the kind) -> e.g. enqueue mails.
OnDue = Callable[[asyncpg.Connection, asyncpg.Record, str], Awaitable[None]]


def due_times(starts_at: datetime, now: datetime) -> dict[str, datetime]:
    """The reminders a reading starting at ``starts_at`` still gets when booked at ``now``."""
    return {kind: starts_at - before for kind, before in BEFORE.items() if starts_at - before > now}


async def schedule(conn: asyncpg.Connection, session_id: str, starts_at: datetime, now: datetime) -> None:
    """Write the reading's reminders, in the booking's transaction."""
    due = due_times(starts_at, now)
    if due:
        await conn.executemany(
            "INSERT INTO booking_reminders (session_id, kind, due_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            [(session_id, kind, at) for kind, at in due.items()])


async def sweep(pool: asyncpg.Pool, *, now: datetime, batch: int = 100, on_due: OnDue | None = None) -> Stored:
    """Send every reminder due at ``now`` (still unsent, of a reading still booked); returns the notifications
    stored, for the caller to push after the commit."""
    stored: Stored = []
    while True:
        async with pool.acquire() as conn, conn.transaction():
            claimed = await conn.fetch(
                "SELECT session_id, kind FROM booking_reminders WHERE sent_at IS NULL AND due_at <= $1"
                " ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED", now, batch)
            for reminder in claimed:
                await conn.execute("UPDATE booking_reminders SET sent_at = $3 WHERE session_id = $1 AND kind = $2",
                                   reminder["session_id"], reminder["kind"], now)
                row = await conn.fetchrow(f"SELECT {COLUMNS} FROM {FROM} WHERE s.id = $1"  # noqa: S608
                                          " AND s.status = 'accepted'", reminder["session_id"])
                if row is None:  # cancelled or ended meanwhile (or already under way)
                    continue
                stored += await _notify(conn, row, reminder["kind"])
                if on_due is not None:
                    await on_due(conn, row, reminder["kind"])
                log.info("reminder sent", extra={"sessionId": str(row["id"]), "kind": reminder["kind"]})
        if len(claimed) < batch:
            return stored


async def _notify(conn: asyncpg.Connection, row: asyncpg.Record, kind: str) -> Stored:
    session = session_json(row)
    out = []
    for user_id, other in ((str(row["client_id"]), row["reader_name"]), (str(row["reader_id"]), row["client_name"])):
        out.append(await notifications.store(conn, user_id, "booking-reminder", {
            "session": session, "sessionId": session["id"], "startsAt": session["startsAt"], "reminder": kind,
            "withName": other, "sessionType": row["session_type"], "inWords": WORDS[kind]}))
    return out


def utc_now() -> datetime:
    return datetime.now(UTC)


class ReminderSweeper(Periodic):
    """Runs :func:`sweep` every ``interval`` seconds on this node; ``clock`` is injectable for tests."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], *, interval: float, deliver: Callable[[Stored], None],
                 on_due: OnDue | None = None, clock: Callable[[], datetime] = utc_now) -> None:
        super().__init__("reminder-sweeper", self.sweep_now, interval=interval, expected=OUTAGE_ERRORS)
        self._pool = pool
        self._deliver = deliver
        self.on_due = on_due
        self.clock = clock

    async def sweep_now(self) -> Stored:
        """One sweep at the sweeper's clock, its notifications pushed (what the loop does each interval)."""
        stored = await sweep(self._pool(), now=self.clock(), on_due=self.on_due)
        self._deliver(stored)
        return stored


REMINDER_SWEEPER = web.AppKey("reminder_sweeper", ReminderSweeper)


def setup(app: web.Application) -> None:
    public_url = app[SETTINGS].public_url

    async def mail_them(conn: asyncpg.Connection, row: asyncpg.Record, kind: str) -> None:
        await receipts.reminder(conn, row, WORDS[kind], public_url)

    def deliver(stored: Stored) -> None:
        notifications.deliver(app, stored)
        if stored:
            app[MAIL].wake()

    app[REMINDER_SWEEPER] = sweeper = ReminderSweeper(lambda: app[DATABASE].pool,
                                                      interval=app[SETTINGS].reminder_sweep_interval_seconds,
                                                      deliver=deliver, on_due=mail_them)
    app.cleanup_ctx.append(sweeper.lifetime)
