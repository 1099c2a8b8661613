"""A reader is online only while someone is there to answer: their availability follows their signaling sockets.

A reader who chose to be online is shown online while a signaling socket of theirs is open (a dashboard, a reading
room, the studio: each opens one); once the last one closes, they are shown away after ``away_after_seconds``
unless a socket comes back, and shown online again when one does. A request that expires unanswered sets them
away (their choice becomes offline) until they come back and go online again. A reader is shown as neither
online nor away but keeps ``busy`` while in a reading.

Readers who go online over the API with a bearer token and never open a socket are left as they chose (the
socket rule applies from their first socket on).

In a cluster each node knows its own sockets (:mod:`api.realtime.presence`); the nodes holding a reader's sockets
are a set in Redis, so a reader whose last socket on one node closed is shown away only when no live node still
holds one (a node that died is not counted: the registry says which are alive).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aiohttp import web

from api.cluster import CLUSTER
from api.cluster.link import ClusterUnavailable
from api.core.keys import DATABASE, NODE_ID, SETTINGS
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
        task = asyncio.create_task(_back(app, tab.user_id), name=f"reader {tab.user_id} back")
    else:
        task = asyncio.create_task(_away_later(app, tab.user_id), name=f"reader {tab.user_id} away")
        timers[tab.user_id] = task
        task.add_done_callback(lambda t: timers.pop(tab.user_id, None) if timers.get(tab.user_id) is t else None)


async def _back(app: web.Application, reader_id: str) -> None:
    await _mark_node(app, reader_id, here=True)
    await _set(app, reader_id, _BACK)


async def _away_later(app: web.Application, reader_id: str) -> None:
    await _mark_node(app, reader_id, here=False)
    await asyncio.sleep(app[SETTINGS].away_after_seconds)
    if not app[PRESENCE].online(reader_id) and not await _elsewhere(app, reader_id):
        await _set(app, reader_id, _AWAY)


async def _mark_node(app: web.Application, reader_id: str, *, here: bool) -> None:
    """Record in the cluster's Redis whether this node holds a socket of the reader (nothing with one node)."""
    node = app.get(CLUSTER)
    if node is None:
        return
    key = node.link.key("reader-sockets", reader_id)
    try:
        if here:
            await node.link.call(node.link.redis.sadd(key, app[NODE_ID]))
        else:
            await node.link.call(node.link.redis.srem(key, app[NODE_ID]))
    except ClusterUnavailable as exc:
        log.warning("reader's sockets not recorded in the cluster: %s", exc, extra={"readerId": reader_id})


async def _elsewhere(app: web.Application, reader_id: str) -> bool:
    """Whether a live node of the cluster still holds a socket of the reader (False with one node, or no Redis)."""
    node = app.get(CLUSTER)
    if node is None:
        return False
    try:
        holders = list(await node.link.call(node.link.redis.smembers(node.link.key("reader-sockets", reader_id))))
        alive = await node.registry.alive([str(h) for h in holders if str(h) != app[NODE_ID]])
    except ClusterUnavailable:
        return False
    return any(alive.values())


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
