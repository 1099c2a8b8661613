"""The intro offer: a client's first pay-per-minute reading with each of their first ``readers`` readers starts
with ``minutes`` free minutes. The reader is not working for free: each free minute is paid to them at their usual
share (70 %, floored, like any charge) by the platform's ``promotion`` account.

- :func:`free_minutes` is the rule (pure): nothing for a reader the client already had a started pay-per-minute
  reading with (or a grant for), nor once the client has had ``readers`` readers.
- :func:`claim` records the grant with the reading at request time (``intro_offers``: its primary key makes it
  once per client and reader, in the database); a reading that ends before its first minute hands the grant back
  (a trigger of migration 0013).
- :func:`give_minute` is a free minute: ``promotion -> earnings`` under the minute's own idempotency key
  (``reading:{session}:minute:{i}``, the key a charge of that minute would have), in one statement that also
  checks the reading's lease and the grant, so a minute is charged or given, never both, and only by the
  reading's one owner.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection

import asyncpg

from billing.errors import LeaseLost
from billing.ledger import Db, Txn, connection, txn_from_row
from billing.meter import MINUTE
from billing.split import split

log = logging.getLogger(__name__)


def free_minutes(*, reader_id: str, previous_readers: Collection[str], minutes: int, readers: int) -> int:
    """The free minutes a new pay-per-minute reading with ``reader_id`` gets, given the readers the client has
    already had a started pay-per-minute reading with or a grant for."""
    if minutes <= 0 or reader_id in previous_readers or len(set(previous_readers)) >= readers:
        return 0
    return minutes


async def previous_readers(db: Db, client_id: str) -> set[str]:
    """The readers that count against the client's offer: a started pay-per-minute reading, or a grant."""
    async with connection(db) as conn:
        rows = await conn.fetch(
            "SELECT reader_id::text FROM rtc_sessions WHERE client_id = $1 AND mode = 'per_minute'"
            " AND started_at IS NOT NULL UNION SELECT reader_id::text FROM intro_offers WHERE client_id = $1",
            client_id)
    return {r["reader_id"] for r in rows}


async def offered(db: Db, *, client_id: str, reader_id: str, minutes: int, readers: int) -> int:
    """What :func:`claim` would grant now (what the client is shown before starting)."""
    return free_minutes(reader_id=reader_id, previous_readers=await previous_readers(db, client_id),
                        minutes=minutes, readers=readers)


async def claim(conn: asyncpg.Connection, *, client_id: str, reader_id: str, session_id: str, minutes: int,
                readers: int) -> int:
    """Grant the offer to the new reading ``session_id``, in the request's transaction; returns the free minutes
    (0: not eligible). Its row, and the reading's ``intro_minutes``, are written together."""
    granted = await offered(conn, client_id=client_id, reader_id=reader_id, minutes=minutes, readers=readers)
    if granted <= 0:
        return 0
    row = await conn.fetchrow(
        "INSERT INTO intro_offers (client_id, reader_id, session_id, minutes) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (client_id, reader_id) DO NOTHING RETURNING minutes", client_id, reader_id, session_id, granted)
    if row is None:
        return 0
    await conn.execute("UPDATE rtc_sessions SET intro_minutes = $2 WHERE id = $1", session_id, granted)
    log.info("intro offer granted", extra={"clientId": client_id, "readerId": reader_id, "sessionId": session_id,
                                           "minutes": granted})
    return granted


# The free minute, guarded like a charge: the reading is active under the caller's epoch (row locked KEY SHARE
# until commit) and the minute is within its grant; then the movement, its entries and the reading's meter
# columns, in one statement. Parameters: $1 session, $2 epoch, $3 index, $4 key, $5 reader cents, $6 memo.
_GIVE = """
WITH lease AS MATERIALIZED (
    SELECT id, client_id, reader_id FROM rtc_sessions
    WHERE id = $1::uuid AND lease_epoch = $2::bigint AND status = 'active' AND $3::integer < intro_minutes
      AND EXISTS (SELECT 1 FROM intro_offers WHERE session_id = $1::uuid)
    FOR KEY SHARE
), txn AS (
    INSERT INTO ledger_transactions (key, kind, amount_cents, reader_cents, platform_cents, client_id, reader_id,
                                     ref, memo)
    SELECT $4, 'intro_minute', $5, $5, 0, lease.client_id, lease.reader_id, $1::text, $6 FROM lease
    ON CONFLICT (key) DO NOTHING
    RETURNING id, key, kind, amount_cents, reader_cents, platform_cents, loss_cents, reader_id
), entries AS (
    INSERT INTO ledger_entries (txn_id, account, owner_id, amount_cents)
    SELECT txn.id, e.account, e.owner_id, e.amount
    FROM txn CROSS JOIN LATERAL (VALUES ('promotion', NULL::uuid, -$5::bigint), ('earnings', txn.reader_id, $5::bigint))
         AS e (account, owner_id, amount)
    WHERE $5::bigint <> 0
), reading AS (
    UPDATE rtc_sessions SET meter_minutes_charged = greatest(meter_minutes_charged, $3::integer + 1),
           meter_billable_seconds = greatest(meter_billable_seconds, $7::double precision),
           meter_heartbeat_at = now()
    FROM txn WHERE rtc_sessions.id = $1::uuid AND rtc_sessions.lease_epoch = $2::bigint
)
SELECT id, key, kind, amount_cents, reader_cents, platform_cents, loss_cents FROM txn
"""


async def give_minute(db: Db, *, session_id: str, epoch: int, index: int, rate_cents: int, key: str) -> Txn:
    """Pay the reader free minute ``index`` of the reading from the promotion account (their share of
    ``rate_cents``), if the reading is active under ``epoch`` and the minute is within its grant. Idempotent by
    ``key`` (the minute's key); raises :class:`LeaseLost` when the guard fails, nothing moved."""
    reader_cents, _ = split(rate_cents)
    async with connection(db) as conn:
        row = await conn.fetchrow(_GIVE, session_id, int(epoch), index, key, reader_cents,
                                  f"free intro minute {index + 1}", float(index * MINUTE))
        if row is not None:
            log.info("intro minute given", extra={"sessionId": session_id, "minute": index, "cents": reader_cents})
            return txn_from_row(row)
        before = await conn.fetchrow(
            "SELECT id, key, kind, amount_cents, reader_cents, platform_cents, loss_cents FROM ledger_transactions"
            " WHERE key = $1", key)
    if before is not None and before["kind"] == "intro_minute":
        return dataclasses.replace(txn_from_row(before), replayed=True)
    raise LeaseLost(f"reading {session_id} is not active under epoch {epoch} with free minute {index}")
