"""Scheduled readings: booked and paid at the reader's flat rate, refunded by policy, run in a time window.

- Booking takes the reader's time (``reader_slots``: billing's table, whose trigger refuses overlaps)
  and charges the flat price at once (ledger key ``scheduled:{id}``); the reading is ``accepted``.
- Both may join from ``schedule_early_join_seconds`` before the start; the reading becomes active when
  both are connected and ends at its booked end (``time_up``), however late it started.
- A reader who has not connected ``reader_no_show_seconds`` after the start: the reading ends
  (``reader_no_show``) and the client gets everything back automatically.
- A client who cancels at least ``cancel_full_refund_hours`` before the start gets everything back,
  later ``late_cancel_refund_percent`` of it (0 by default).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web

from api import notifications
from api.appkeys import DATABASE
from api.errors import Conflict, Invalid, NotFound
from api.reading_store import COLUMNS, FROM, fetch, session_json
from billing import ledger
from billing.errors import InsufficientFunds
from config import Settings

log = logging.getLogger(__name__)

LENGTHS = (15, 30, 45, 60)
MAX_DAYS_AHEAD = 180


def booking_key(session_id: str) -> str:
    return f"scheduled:{session_id}"


def refund_key(session_id: str) -> str:
    return f"scheduled:{session_id}:refund"


def parse_start(raw: Any) -> datetime:
    """An ISO-8601 time with a zone (``Z`` or an offset), as UTC."""
    if not isinstance(raw, str) or len(raw) > 40:
        raise Invalid("startsAt must be an ISO-8601 time string", field="startsAt")
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise Invalid("startsAt must be an ISO-8601 time", field="startsAt") from None
    if value.tzinfo is None:
        raise Invalid("startsAt needs a time zone (Z or an offset)", field="startsAt")
    return value.astimezone(UTC)


def cancellation_refund(price_cents: int, starts_at: datetime, now: datetime, settings: Settings) -> int:
    """What a client gets back for cancelling at ``now``: all of it early enough, else the late share."""
    if now <= starts_at - timedelta(hours=settings.cancel_full_refund_hours):
        return price_cents
    return price_cents * settings.late_cancel_refund_percent // 100


def check_join_window(settings: Settings, row: asyncpg.Record, now: datetime | None = None) -> None:
    """A scheduled reading may be joined from a little before its start until its end."""
    now = now or datetime.now(UTC)
    opens = row["scheduled_start"] - timedelta(seconds=settings.schedule_early_join_seconds)
    if now < opens:
        raise Conflict(f"this reading opens at {opens.isoformat()}", code="too_early")
    if now >= row["scheduled_end"]:
        raise Conflict("this reading's time is over", code="too_late")


def start_timeout(settings: Settings, row: asyncpg.Record, now: datetime | None = None) -> float:
    """Seconds from now until the reader counts as a no-show (never past the booked end)."""
    now = now or datetime.now(UTC)
    deadline = min(row["scheduled_start"] + timedelta(seconds=settings.reader_no_show_seconds), row["scheduled_end"])
    return max(0.0, (deadline - now).total_seconds())


def seconds_until_end(row: asyncpg.Record | dict[str, Any], now: datetime | None = None) -> float:
    now = now or datetime.now(UTC)
    return max(0.0, (row["scheduled_end"] - now).total_seconds())


async def book(app: web.Application, client_id: str, reader_id: str, session_type: str, starts_at: datetime,
               minutes: int) -> tuple[asyncpg.Record, list[tuple[str, dict[str, Any]]]]:
    """Book the reader's time and charge the flat price, atomically; returns (reading, notifications)."""
    from api.readings import PaymentRequired

    if starts_at > datetime.now(UTC) + timedelta(days=MAX_DAYS_AHEAD):
        raise Invalid(f"startsAt must be within {MAX_DAYS_AHEAD} days", field="startsAt")
    ends_at = starts_at + timedelta(minutes=minutes)
    async with app[DATABASE].pool.acquire() as conn, conn.transaction():
        reader = await conn.fetchrow(
            f"SELECT u.role, r.flat_{minutes}_cents AS price FROM users u"  # noqa: S608 (minutes is 15|30|45|60)
            " LEFT JOIN reader_rates r ON r.reader_id = u.id WHERE u.id = $1", reader_id)
        if reader is None or reader["role"] != "reader":
            raise NotFound("no such reader", code="unknown_reader", field="readerId")
        price = reader["price"] or 0
        if price <= 0:
            raise Conflict(f"the reader does not offer {minutes}-minute readings", code="not_offered",
                           field="minutes")
        session_id = str(await conn.fetchval(
            "INSERT INTO rtc_sessions (client_id, reader_id, session_type, mode, status, rate_cents, accepted_at,"
            " scheduled_start, scheduled_minutes, scheduled_end) VALUES ($1, $2, $3, 'scheduled', 'accepted', $4,"
            " now(), $5, $6, $7) RETURNING id",
            client_id, reader_id, session_type, price, starts_at, minutes, ends_at))
        try:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO reader_slots (reader_id, starts_at, minutes, session_id, booked_at)"
                    " VALUES ($1, $2, $3, $4, now())", reader_id, starts_at, minutes, session_id)
        except asyncpg.ExclusionViolationError:
            raise Conflict("the reader is already booked at that time", code="slot_taken",
                           field="startsAt") from None
        try:
            await ledger.charge(conn, client_id=client_id, reader_id=reader_id, cents=price,
                                key=booking_key(session_id), kind="scheduled_reading", ref=session_id,
                                memo=f"{minutes}-minute {session_type} reading")
        except InsufficientFunds:
            raise PaymentRequired(f"the balance must cover the price ({price} cents)") from None
        await conn.execute("UPDATE rtc_sessions SET charged_cents = $2 WHERE id = $1", session_id, price)
        row = await fetch(conn, session_id)
        stored = [await notifications.store(conn, reader_id, "session-booked", {"session": session_json(row)})]
    log.info("reading booked", extra={"sessionId": session_id, "userId": client_id, "readerId": reader_id,
                                      "priceCents": price, "startsAt": starts_at.isoformat()})
    return row, stored


async def refund(conn: asyncpg.Connection, row: asyncpg.Record, cents: int) -> int:
    """Give ``cents`` of the booking back and free the reader's time; in the caller's transaction."""
    session_id = str(row["id"])
    await conn.execute("DELETE FROM reader_slots WHERE session_id = $1", session_id)
    if cents <= 0:
        return 0
    txn = await ledger.refund_charge(conn, original_key=booking_key(session_id), cents=cents,
                                     key=refund_key(session_id), memo="scheduled reading refund")
    if not txn.replayed:
        await conn.execute(
            "UPDATE rtc_sessions SET charged_cents = charged_cents - $2, refunded_cents = refunded_cents + $2"
            " WHERE id = $1", session_id, txn.amount_cents)
    return txn.amount_cents


async def refund_for_cancellation(conn: asyncpg.Connection, settings: Settings, row: asyncpg.Record,
                                  now: datetime) -> int:
    """Refund a client's cancellation by the policy; returns the cents given back."""
    return await refund(conn, row, cancellation_refund(row["charged_cents"], row["scheduled_start"], now, settings))


async def due(pool: asyncpg.Pool, settings: Settings) -> list[asyncpg.Record]:
    """Scheduled readings this node should be running: booked ones whose window opened, and active ones."""
    return list(await pool.fetch(
        f"SELECT {COLUMNS} FROM {FROM} WHERE s.mode = 'scheduled' AND s.status IN ('accepted', 'active')"  # noqa: S608
        " AND s.scheduled_start - make_interval(secs => $1) <= now()", settings.schedule_early_join_seconds))
