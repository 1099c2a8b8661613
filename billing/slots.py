"""Reader slots: open times a reader publishes for scheduled readings, their prices, and holding one for a booking.

The booking itself (the reading, the slot, the payment in one transaction) is the readings side's
(:func:`api.readings.booking.book_slot`): a reading's row and its status are written only there.

A slot can never be double-booked: booking claims it with ``UPDATE ... WHERE session_id IS NULL`` under a
row lock (and ``session_id`` is unique), and a reader's slots never overlap (a trigger in migration 0002).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from billing.errors import RateNotSet, SlotNotFound, SlotTaken
from billing.ledger import Db, connection
from billing.prices import confirm_price

log = logging.getLogger(__name__)

LENGTHS = (15, 30, 45, 60)
# The reader_rates column holding the flat price of each length (never built from input).
_FLAT_RATE = {15: "flat_15_cents", 30: "flat_30_cents", 45: "flat_45_cents", 60: "flat_60_cents"}
_RATE_QUERY = {m: f"SELECT {column} FROM reader_rates WHERE reader_id = $1"  # noqa: S608 - fixed columns
               for m, column in _FLAT_RATE.items()}


@dataclass(frozen=True)
class Slot:
    id: str
    reader_id: str
    starts_at: datetime
    minutes: int
    session_id: str | None
    price_cents: int | None = None

    @property
    def booked(self) -> bool:
        return self.session_id is not None


def _slot(row: asyncpg.Record) -> Slot:
    return Slot(id=str(row["id"]), reader_id=str(row["reader_id"]), starts_at=row["starts_at"],
                minutes=row["minutes"], session_id=str(row["session_id"]) if row["session_id"] else None,
                price_cents=row.get("price_cents"))


_SLOT_WITH_PRICE = """
SELECT s.id, s.reader_id, s.starts_at, s.minutes, s.session_id,
       CASE s.minutes WHEN 15 THEN r.flat_15_cents WHEN 30 THEN r.flat_30_cents
                      WHEN 45 THEN r.flat_45_cents WHEN 60 THEN r.flat_60_cents END AS price_cents
FROM reader_slots s LEFT JOIN reader_rates r ON r.reader_id = s.reader_id
"""


async def publish_slot(db: Db, *, reader_id: str, starts_at: datetime, minutes: int) -> Slot:
    """Open a slot. Raises :class:`SlotTaken` when it overlaps one of the reader's other slots."""
    if minutes not in LENGTHS:
        raise ValueError(f"minutes must be one of {LENGTHS}")
    async with connection(db) as conn:
        try:
            row = await conn.fetchrow(
                "WITH s AS (INSERT INTO reader_slots (reader_id, starts_at, minutes) VALUES ($1, $2, $3)"
                " RETURNING id, reader_id, starts_at, minutes, session_id)"
                " SELECT s.*, (SELECT CASE s.minutes WHEN 15 THEN flat_15_cents WHEN 30 THEN flat_30_cents"
                "   WHEN 45 THEN flat_45_cents WHEN 60 THEN flat_60_cents END"
                "   FROM reader_rates WHERE reader_id = s.reader_id) AS price_cents FROM s",
                reader_id, starts_at, minutes)
        except asyncpg.ExclusionViolationError:
            raise SlotTaken("this slot overlaps another of your slots") from None
    log.info("slot published", extra={"readerId": reader_id, "slotId": str(row["id"])})
    return _slot(row)


async def list_slots(db: Db, reader_id: str, *, open_only: bool, after: datetime | None = None,
                     limit: int = 200) -> list[Slot]:
    """A reader's slots starting after ``after`` (all when None), earliest first, with their price."""
    async with connection(db) as conn:
        rows = await conn.fetch(
            _SLOT_WITH_PRICE + " WHERE s.reader_id = $1 AND ($2::timestamptz IS NULL OR s.starts_at > $2)"
            " AND (NOT $3 OR s.session_id IS NULL) ORDER BY s.starts_at LIMIT $4",
            reader_id, after, open_only, limit)
    return [_slot(r) for r in rows]


async def delete_slot(db: Db, *, reader_id: str, slot_id: str) -> None:
    """Withdraw an open slot. A booked slot stays (its reading is cancelled through the readings side)."""
    async with connection(db) as conn:
        row = await conn.fetchrow(
            "WITH gone AS (DELETE FROM reader_slots WHERE id = $1 AND reader_id = $2 AND session_id IS NULL"
            " RETURNING id) SELECT (SELECT count(*) FROM gone) AS deleted,"
            " (SELECT session_id IS NOT NULL FROM reader_slots WHERE id = $1 AND reader_id = $2) AS booked",
            slot_id, reader_id)
    if row["deleted"]:
        log.info("slot withdrawn", extra={"readerId": reader_id, "slotId": slot_id})
        return
    if row["booked"]:
        raise SlotTaken("this slot is booked; cancel the reading instead")
    raise SlotNotFound("no such slot")


async def hold_slot(conn: asyncpg.Connection, *, slot_id: str, client_id: str, expected_cents: int,
                    now: datetime | None = None) -> tuple[asyncpg.Record, int]:
    """Lock an open slot for booking by ``client_id`` and confirm its price; returns (the slot, its price).

    Runs in the caller's transaction (the booking: :func:`api.readings.booking.book_slot`), which creates
    the reading, then :func:`mark_booked` and the charge. ``expected_cents`` is the price the client was
    shown: the reader's price now must be it. Raises :class:`SlotNotFound` (no such slot, or it has
    started), :class:`SlotTaken`, :class:`RateNotSet` (the reader has no price for that length) or
    :class:`billing.errors.PriceChanged`.
    """
    slot = await conn.fetchrow(
        "SELECT id, reader_id, starts_at, minutes, session_id, starts_at <= coalesce($2, now()) AS started"
        " FROM reader_slots WHERE id = $1 FOR UPDATE", slot_id, now)
    if slot is None or slot["started"]:
        raise SlotNotFound("no such open slot")
    if slot["session_id"] is not None:
        raise SlotTaken("this slot has just been booked by someone else")
    reader_id = str(slot["reader_id"])
    if reader_id == client_id:
        raise SlotTaken("you cannot book your own slot")
    price = await conn.fetchval(_RATE_QUERY[slot["minutes"]], reader_id)
    if not price:
        raise RateNotSet(f"the reader has no price for a {slot['minutes']}-minute reading")
    confirm_price(expected_cents, price, what=f"A {slot['minutes']}-minute reading with this reader")
    return slot, int(price)


async def mark_booked(conn: asyncpg.Connection, *, slot_id: str, session_id: str) -> None:
    """The held slot now belongs to the reading ``session_id`` (in the booking's transaction)."""
    claimed = await conn.execute(
        "UPDATE reader_slots SET session_id = $2, booked_at = now() WHERE id = $1 AND session_id IS NULL",
        slot_id, session_id)
    if claimed != "UPDATE 1":
        raise SlotTaken("this slot has just been booked by someone else")


async def release_slot(db: Db, *, session_id: str) -> bool:
    """Open a booked slot again (its reading was cancelled in time). True when a slot was released."""
    async with connection(db) as conn:
        status = await conn.execute(
            "UPDATE reader_slots SET session_id = NULL, booked_at = NULL WHERE session_id = $1", session_id)
    return bool(status == "UPDATE 1")
