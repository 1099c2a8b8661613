"""Alerts that a reader went online, to the clients who favourited them or asked to be notified once: stored,
then pushed live (:mod:`api.realtime.notifications`), by the rule of :mod:`api.marketplace.alert_policy`.

Whatever writes a reader's availability (the dashboard, going live, the end of a reading), a trigger records the
reader going online in ``reader_online_events`` and wakes the listeners (``NOTIFY reader_online``). The worker on
each node claims events with ``FOR UPDATE SKIP LOCKED`` and handles each in one transaction with the alerts it
stores, so an alert is sent once whichever node takes it, and none is lost to a restart: an unclaimed event
waits in the table (the worker also looks every few seconds, in case a wake-up was missed).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from api.core.database import OUTAGE_ERRORS
from api.core.keys import DATABASE
from api.core.periodic import Periodic
from api.marketplace.alert_policy import Interest, should_alert
from api.realtime import notifications

log = logging.getLogger(__name__)

CHANNEL = "reader_online"
POLL_SECONDS = 5.0
BATCH = 50
KIND = "reader-online"
WORKER = web.AppKey("online_alert_worker", Periodic)

_INTERESTED = """
SELECT i.client_id, bool_or(i.favourite) AS favourite, bool_or(i.watching) AS watching, oa.alerted_at
FROM (SELECT client_id, true AS favourite, false AS watching FROM favourites WHERE reader_id = $1
      UNION ALL SELECT client_id, false, true FROM online_watches WHERE reader_id = $1) AS i
LEFT JOIN online_alerts oa ON oa.client_id = i.client_id AND oa.reader_id = $1
GROUP BY i.client_id, oa.alerted_at
"""


async def alert_for(conn: asyncpg.Connection, reader_id: str, now: datetime) -> list[tuple[str, dict[str, Any]]]:
    """Store the alerts of one reader going online (in the caller's transaction); returns them for delivery."""
    reader = await conn.fetchrow(
        "SELECT u.display_name, a.status FROM users u JOIN reader_availability a ON a.reader_id = u.id"
        " WHERE u.id = $1", reader_id)
    if reader is None or reader["status"] != "online":
        return []  # gone again before the alert went out: the watches wait for next time
    alerted: list[str] = []
    stored = []
    for row in await conn.fetch(_INTERESTED, reader_id):
        interest = Interest(favourite=row["favourite"], watching=row["watching"], last_alerted=row["alerted_at"])
        if not should_alert(interest, now):
            continue
        client_id = str(row["client_id"])
        alerted.append(client_id)
        stored.append(await notifications.store(conn, client_id, KIND, {
            "readerId": reader_id, "readerName": reader["display_name"], "url": f"/readers/{reader_id}",
            "message": f"{reader['display_name']} is online now."}))
    if alerted:
        await conn.execute(
            "INSERT INTO online_alerts (client_id, reader_id, alerted_at) SELECT c, $2, $3 FROM unnest($1::uuid[]) c"
            " ON CONFLICT (client_id, reader_id) DO UPDATE SET alerted_at = EXCLUDED.alerted_at",
            alerted, reader_id, now)
        await conn.execute("DELETE FROM online_watches WHERE reader_id = $1 AND client_id = ANY($2::uuid[])",
                           reader_id, alerted)
        log.info("reader online alerts", extra={"readerId": reader_id, "clients": len(alerted)})
    return stored


async def run_once(app: web.Application, *, now: datetime | None = None) -> int:
    """Handle the events waiting now (a batch); returns how many were claimed."""
    stored: list[tuple[str, dict[str, Any]]] = []
    async with app[DATABASE].pool.acquire() as conn, conn.transaction():
        events = await conn.fetch(
            "DELETE FROM reader_online_events WHERE id IN (SELECT id FROM reader_online_events ORDER BY id"
            " LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING reader_id", BATCH)
        for reader_id in dict.fromkeys(str(e["reader_id"]) for e in events):
            stored += await alert_for(conn, reader_id, now or datetime.now(UTC))
    notifications.deliver(app, stored)  # after the commit: nobody hears of alerts that were rolled back
    return len(events)


class _Listener:
    """A connection of its own that hears ``NOTIFY reader_online`` (a pooled one would be given back)."""

    def __init__(self, url: str, wake: Callable[[], None]) -> None:
        self._url, self._wake = url, wake
        self._conn: asyncpg.Connection | None = None

    async def ensure(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            return
        try:
            self._conn = await asyncpg.connect(self._url)
            await self._conn.add_listener(CHANNEL, lambda *_: self._wake())
        except OUTAGE_ERRORS as exc:  # polling carries on meanwhile
            log.warning("online alerts cannot listen", extra={"error": str(exc)})
            self._conn = None

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


async def _worker(app: web.Application) -> AsyncIterator[None]:
    url = app[DATABASE].url
    assert url is not None  # the database is open by now

    async def handle_waiting() -> None:  # a database outage fails it: the events wait in their table
        await listener.ensure()
        while await run_once(app) == BATCH:
            pass

    app[WORKER] = worker = Periodic("online-alerts", handle_waiting, interval=POLL_SECONDS, at_start=True)
    listener = _Listener(url, worker.wake)
    worker.start()
    yield
    await worker.stop()
    await listener.close()


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_worker)
