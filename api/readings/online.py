"""A reader is online only while someone is there to answer: their availability follows their signaling sockets.

A reader who chose to be online is shown online while a signaling socket of theirs is open (a dashboard, a reading
room, the studio: each opens one); once the last one closes, they are shown away after ``away_after_seconds``
unless a socket comes back, and shown online again when one does. A request that expires unanswered sets them
away (their choice becomes offline) until they come back and go online again. A reader is shown as neither
online nor away but keeps ``busy`` while in a reading.

Readers who go online over the API with a bearer token and never open a socket are left as they chose (the
socket rule applies from their first socket on).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aiohttp import web

from api.core.keys import DATABASE, SETTINGS
from api.realtime.presence import PRESENCE, Tab

log = logging.getLogger(__name__)

# The pending "shown away" of each reader whose last socket closed.
AWAY_TIMERS = web.AppKey("reader_away_timers", dict)

_BACK = ("UPDATE reader_availability SET status = 'online', updated_at = now()"
         " WHERE reader_id = $1 AND status = 'offline' AND chosen_status = 'online'")
_AWAY = ("UPDATE reader_availability SET status = 'offline', updated_at = now()"
         " WHERE reader_id = $1 AND status = 'online'")


async def missed_request(conn: asyncpg.Connection, reader_id: str) -> None:
    """A request the reader did not answer in time: shown away, and their choice is offline until they are back."""
    await conn.execute(
        "UPDATE reader_availability SET chosen_status = 'offline', updated_at = now(),"
        " status = CASE WHEN status = 'busy' THEN 'busy' ELSE 'offline' END WHERE reader_id = $1", reader_id)


def _presence_changed(app: web.Application, tab: Tab, here: bool) -> None:
    user = getattr(tab, "user", None)
    if user is None or getattr(user, "role", None) != "reader":
        return
    timers: dict[str, asyncio.Task[None]] = app[AWAY_TIMERS]
    pending = timers.pop(tab.user_id, None)
    if pending is not None:
        pending.cancel()
    if here:
        task = asyncio.create_task(_set(app, tab.user_id, _BACK), name=f"reader {tab.user_id} back")
    else:
        task = asyncio.create_task(_away_later(app, tab.user_id), name=f"reader {tab.user_id} away")
        timers[tab.user_id] = task
        task.add_done_callback(lambda t: timers.pop(tab.user_id, None) if timers.get(tab.user_id) is t else None)


async def _away_later(app: web.Application, reader_id: str) -> None:
    await asyncio.sleep(app[SETTINGS].away_after_seconds)
    if not app[PRESENCE].online(reader_id):
        await _set(app, reader_id, _AWAY)


async def _set(app: web.Application, reader_id: str, statement: str) -> None:
    try:
        status = await app[DATABASE].pool.execute(statement, reader_id)
    except (OSError, asyncpg.PostgresError) as exc:  # the database is away: the next socket event tries again
        log.warning("reader availability not updated: %s", exc, extra={"readerId": reader_id})
        return
    if status.endswith(" 1"):
        log.info("reader %s", "back online" if statement is _BACK else "shown away (no socket)",
                 extra={"readerId": reader_id})


async def _stop_timers(app: web.Application) -> None:
    for task in list(app[AWAY_TIMERS].values()):
        task.cancel()


def setup(app: web.Application) -> None:
    """Follow readers' sockets (call after :func:`api.realtime.setup`)."""
    app[AWAY_TIMERS] = {}
    app[PRESENCE].listen(lambda tab, here: _presence_changed(app, tab, here))
    app.on_shutdown.append(_stop_timers)
