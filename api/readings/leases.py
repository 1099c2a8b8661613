"""Who runs a reading: a lease in its ``rtc_sessions`` row, so that a reading has exactly one owner at a time.

The lease is three columns (migration 0007): ``lease_owner`` (the node id, ``app[NODE_ID]``),
``lease_epoch`` (the fencing token) and ``lease_expires_at`` (on the DATABASE's clock, so nodes never
compare their own clocks). The protocol (docs/design.md, "Ownership"):

- **acquire**: a node takes a reading that is open (``accepted`` or ``active``) and whose lease is free
  (never held, or expired), incrementing the epoch. It is a compare-and-set under the row lock: of any
  number of racing nodes or tasks, one gets it. A node never takes a live lease, its own included.
- **renew**: the node's keeper extends every lease its runtimes hold in ONE statement every second,
  conditional on (id, owner, epoch) and the reading still open. A lease that comes back lost (another
  node took it, or the reading ended) stops its runtime at once. The keeper is independent of the
  runtimes' own work, so a charge stuck behind a wallet lock never lets its lease lapse.
- **fence**: every charge, refund, totals and state write of a runtime names its epoch and changes
  nothing (raising :class:`billing.errors.LeaseLost`) if the row has another; see :mod:`billing.recovery`
  and :func:`api.readings.store.apply`. A runtime that cannot renew (the database is unreachable) holds
  itself fenced once its own clock says the lease ran out, since another node may take it from then on.
- **locks**: whatever changes ``lease_epoch`` or ``status`` locks the row ``FOR UPDATE`` first. A minute
  charge holds it ``FOR KEY SHARE`` while it waits for the wallet, which makes a takeover wait for the
  charge in flight; renewals (``FOR NO KEY UPDATE ... SKIP LOCKED``) never wait on anything.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg

from billing.ledger import Db, connection

log = logging.getLogger(__name__)

OPEN = ("accepted", "active")


@dataclass(frozen=True)
class Lease:
    """A reading held by ``owner`` under fencing token ``epoch``; ``taken_from`` is the owner whose lapsed
    lease it replaced (None for a reading nobody ran before)."""

    session_id: str
    owner: str
    epoch: int
    taken_from: str | None = None


# The row is locked FOR UPDATE (re-checked on its newest version) before the epoch moves: a charge in
# flight under the old epoch (KEY SHARE) finishes first, and two acquirers cannot both win.
_ACQUIRE = """
WITH free AS (
    SELECT id, lease_owner AS previous FROM rtc_sessions
    WHERE id = $1 AND status IN ('accepted', 'active') AND (lease_expires_at IS NULL OR lease_expires_at <= now())
    FOR UPDATE
)
UPDATE rtc_sessions s SET lease_owner = $2, lease_epoch = s.lease_epoch + 1,
       lease_expires_at = now() + make_interval(secs => $3)
FROM free WHERE s.id = free.id
RETURNING s.lease_epoch, free.previous::text
"""


async def acquire(db: Db, session_id: str, owner: str, seconds: float) -> Lease | None:
    """Take the reading's lease for ``owner`` if it is open and its lease free; None otherwise."""
    async with connection(db) as conn:
        row = await conn.fetchrow(_ACQUIRE, session_id, owner, float(seconds))
    if row is None:
        return None
    log.info("reading lease acquired", extra={"sessionId": session_id, "owner": owner, "epoch": row["lease_epoch"],
                                              "takenFrom": row["previous"]})
    return Lease(session_id, owner, int(row["lease_epoch"]), row["previous"])


# One statement for every lease the node holds. Rows locked by someone right now (a state change or a
# settlement in progress) are skipped this round, neither renewed nor lost; the result says which held
# leases are gone (another owner or epoch, or the reading closed) as of this statement's snapshot.
_RENEW = """
WITH held AS (SELECT * FROM unnest($2::uuid[], $3::bigint[]) AS h (id, epoch)),
renewed AS (
    UPDATE rtc_sessions s SET lease_expires_at = now() + make_interval(secs => $4)
    FROM held
    WHERE s.id = held.id AND s.lease_owner = $1 AND s.lease_epoch = held.epoch
      AND s.status IN ('accepted', 'active')
      AND s.id IN (SELECT id FROM rtc_sessions WHERE id = ANY($2::uuid[]) FOR NO KEY UPDATE SKIP LOCKED)
    RETURNING s.id
)
SELECT held.id::text AS id, r.id IS NOT NULL AS renewed,
       s.id IS NULL OR s.lease_owner IS DISTINCT FROM $1 OR s.lease_epoch <> held.epoch
           OR s.status NOT IN ('accepted', 'active') AS lost
FROM held LEFT JOIN renewed r ON r.id = held.id LEFT JOIN rtc_sessions s ON s.id = held.id
"""


async def renew(db: Db, owner: str, held: Mapping[str, int], seconds: float) -> tuple[set[str], set[str]]:
    """Extend the leases ``owner`` holds (``{session_id: epoch}``) by ``seconds`` from now; returns the ids
    (renewed, lost)."""
    if not held:
        return set(), set()
    ids = list(held)
    async with connection(db) as conn:
        rows = await conn.fetch(_RENEW, owner, ids, [held[i] for i in ids], float(seconds))
    renewed = {r["id"] for r in rows if r["renewed"]}
    lost = {r["id"] for r in rows if r["lost"] and not r["renewed"]}
    return renewed, lost


async def release(db: Db, lease: Lease) -> bool:
    """Let the lease lapse now (the owner is shutting down): any node may adopt the reading at once."""
    async with connection(db) as conn:
        status = await conn.execute(
            "UPDATE rtc_sessions SET lease_expires_at = now() WHERE id = $1 AND lease_owner = $2"
            " AND lease_epoch = $3 AND status IN ('accepted', 'active')", lease.session_id, lease.owner, lease.epoch)
    return bool(status == "UPDATE 1")


async def adoptable(db: Db, *, early_join_seconds: float, limit: int = 200) -> list[str]:
    """Open readings whose lease is free and that should be running: active ones, accepted per-minute
    ones, and booked ones whose join window has opened. Oldest lease first."""
    async with connection(db) as conn:
        rows = await conn.fetch(
            "SELECT id::text FROM rtc_sessions WHERE status IN ('accepted', 'active')"
            " AND (lease_expires_at IS NULL OR lease_expires_at <= now())"
            " AND (status = 'active' OR mode = 'per_minute'"
            "      OR scheduled_start - make_interval(secs => $1) <= now())"
            " ORDER BY lease_expires_at NULLS FIRST LIMIT $2", float(early_join_seconds), limit)
    return [r["id"] for r in rows]


async def fence_out(conn: asyncpg.Connection, session_id: str) -> None:
    """Move the epoch on without a runtime (a state change made directly, in the caller's transaction, on a
    row it has locked): whoever held an older lease can write nothing more."""
    await conn.execute(
        "UPDATE rtc_sessions SET lease_epoch = lease_epoch + 1, lease_owner = NULL, lease_expires_at = NULL"
        " WHERE id = $1", session_id)
