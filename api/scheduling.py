"""Scheduled readings: booked and paid at the reader's flat rate, refunded by policy, run in a time window.

- A client books one of the reader's open slots (``reader_slots``, published by the reader) at its
  time and length; billing creates the reading ``accepted`` and charges the flat price at once
  (:func:`billing.slots.book_slot`, ledger key ``scheduled:{id}``).
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
from api.appkeys import BILLING_METRICS, DATABASE
from api.errors import Conflict, Invalid, NotFound
from api.reading_store import COLUMNS, FROM, fetch, session_json
from billing import scheduled, slots
from billing.metrics import BillingMetrics
from config import Settings

log = logging.getLogger(__name__)

LENGTHS = (15, 30, 45, 60)


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
               minutes: int, *, expected_cents: int) -> tuple[asyncpg.Record, list[tuple[str, dict[str, Any]]]]:
    """Book the reader's open slot at ``starts_at`` of ``minutes`` and pay its flat price, which must be
    ``expected_cents`` (the price the client was shown), atomically (billing's :func:`billing.slots.book_slot`);
    returns (reading, notifications to deliver)."""
    async with app[DATABASE].pool.acquire() as conn, conn.transaction():
        reader = await conn.fetchval("SELECT role FROM users WHERE id = $1", reader_id)
        if reader != "reader":
            raise NotFound("no such reader", code="unknown_reader", field="readerId")
        slot_id = await conn.fetchval(
            "SELECT id FROM reader_slots WHERE reader_id = $1 AND starts_at = $2 AND minutes = $3", reader_id,
            starts_at, minutes)
        if slot_id is None:
            raise Conflict("the reader has no open slot at that time and length", code="slot_not_found",
                           field="startsAt")
        session, txn = await slots.book_slot(conn, slot_id=str(slot_id), client_id=client_id,
                                             session_type=session_type, expected_cents=expected_cents)
        row = await fetch(conn, str(session["id"]))
        stored = [await notifications.store(conn, reader_id, "session-booked", {"session": session_json(row)})]
    app[BILLING_METRICS].recorded(txn)
    log.info("reading booked", extra={"sessionId": str(row["id"]), "userId": client_id, "readerId": reader_id,
                                      "priceCents": row["charged_cents"], "startsAt": starts_at.isoformat()})
    return row, stored


async def refund(conn: asyncpg.Connection, row: asyncpg.Record, cents: int, reason: str,
                 metrics: BillingMetrics | None = None) -> int:
    """Give ``cents`` of the booking back (billing) and open the reader's slot again; caller's transaction
    (``metrics`` counts the refund once the ledger wrote it)."""
    session_id = str(row["id"])
    await slots.release_slot(conn, session_id=session_id)
    if cents <= 0:
        return 0
    txn = await scheduled.refund_scheduled(conn, session_id=session_id, cents=cents, reason=reason)
    if metrics is not None:
        metrics.recorded(txn)
    if not txn.replayed:
        await conn.execute("UPDATE rtc_sessions SET refunded_cents = refunded_cents + $2 WHERE id = $1",
                           session_id, txn.amount_cents)
    return txn.amount_cents


async def refund_for_cancellation(conn: asyncpg.Connection, settings: Settings, row: asyncpg.Record,
                                  now: datetime, metrics: BillingMetrics | None = None) -> int:
    """Refund a client's cancellation by the policy; returns the cents given back."""
    cents = cancellation_refund(row["charged_cents"], row["scheduled_start"], now, settings)
    return await refund(conn, row, cents, "cancelled by the client", metrics)


async def due(pool: asyncpg.Pool, settings: Settings) -> list[asyncpg.Record]:
    """Scheduled readings this node should be running: booked ones whose window opened, and active ones."""
    return list(await pool.fetch(
        f"SELECT {COLUMNS} FROM {FROM} WHERE s.mode = 'scheduled' AND s.status IN ('accepted', 'active')"  # noqa: S608
        " AND s.scheduled_start - make_interval(secs => $1) <= now()", settings.schedule_early_join_seconds))
