"""Scheduled readings: booked and paid at the reader's flat rate, run in a time window, ended by the rules.

- A client books one of the reader's open slots (``reader_slots``, published by the reader, or made at booking
  from an offer of their weekly availability: :mod:`api.readings.availability`) at its time and length;
  billing creates the reading ``accepted`` and charges the flat price at once
  (:func:`api.readings.booking.book_slot`, ledger key ``scheduled:{id}``).
- Both may join from ``schedule_early_join_seconds`` before the start; the reading becomes active when
  both are connected together and ends at its booked end (``time_up``), however late it started.
- How it ends and what comes back (a cancellation, either party ending it, a no-show, a party away, a
  restart it could not resume from) is :mod:`billing.scheduled_policy`'s pure rules; the readings
  runtime watches the time (:mod:`api.readings.scheduled_watch`) and :func:`carry_out` does what they decide.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web

from api.core.errors import Conflict, Invalid, NotFound
from api.core.keys import BILLING_METRICS, DATABASE, SETTINGS
from api.core.mail import MAIL
from api.core.times import iso
from api.readings import availability, availability_store, receipts
from api.readings.booking import book_slot
from api.readings.store import fetch, session_json
from api.realtime import notifications
from billing import scheduled, slots
from billing.errors import SlotTaken
from billing.metrics import BillingMetrics
from billing.scheduled_policy import Booking, Outcome, Policy
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


def policy(settings: Settings) -> Policy:
    """The scheduled rules' settings."""
    return Policy(cancel_full_refund_hours=settings.cancel_full_refund_hours,
                  late_cancel_refund_percent=settings.late_cancel_refund_percent,
                  grace_seconds=settings.grace_seconds, no_show_seconds=settings.reader_no_show_seconds)


def booking(row: asyncpg.Record | dict[str, Any]) -> Booking:
    """What was booked: the flat price (the reading's rate), the start and the length."""
    return Booking(price_cents=int(row["rate_cents"]), starts_at=row["scheduled_start"],
                   minutes=int(row["scheduled_minutes"]))


def check_join_window(settings: Settings, row: asyncpg.Record, now: datetime | None = None) -> None:
    """A scheduled reading may be joined from a little before its start until its end."""
    now = now or datetime.now(UTC)
    opens = row["scheduled_start"] - timedelta(seconds=settings.schedule_early_join_seconds)
    if now < opens:
        raise Conflict(f"this reading opens at {iso(opens)}", code="too_early")
    if now >= row["scheduled_end"]:
        raise Conflict("this reading's time is over", code="too_late")


async def book(app: web.Application, client_id: str, reader_id: str, session_type: str, starts_at: datetime,
               minutes: int, *, expected_cents: int) -> tuple[asyncpg.Record, list[tuple[str, dict[str, Any]]]]:
    """Book the reader's time at ``starts_at`` of ``minutes`` and pay its flat price, which must be
    ``expected_cents`` (the price the client was shown), atomically (:func:`api.readings.booking.book_slot`);
    returns (reading, notifications to deliver).

    The time is a slot the reader published, or one of the offers of their weekly availability
    (:mod:`api.readings.availability`): its slot is inserted here, in the booking's transaction, where the
    no-overlap trigger makes the second of two clients booking the same time at once fail (``slot_taken``).
    """
    now = datetime.now(UTC)
    async with app[DATABASE].pool.acquire() as conn, conn.transaction():
        reader = await conn.fetchval("SELECT role FROM users WHERE id = $1", reader_id)
        if reader != "reader":
            raise NotFound("no such reader", code="unknown_reader", field="readerId")
        slot_id = await conn.fetchval(
            "SELECT id FROM reader_slots WHERE reader_id = $1 AND starts_at = $2 AND minutes = $3", reader_id,
            starts_at, minutes)
        if slot_id is None:
            slot_id = await _slot_from_availability(conn, reader_id, starts_at, minutes, now)
        session, txn = await book_slot(conn, slot_id=str(slot_id), client_id=client_id,
                                       session_type=session_type, expected_cents=expected_cents)
        await _check_client_free(conn, str(session["id"]), client_id, starts_at, minutes)
        row = await fetch(conn, str(session["id"]))
        stored = await booked(conn, row)
        await receipts.booked(conn, row, app[SETTINGS].public_url)
    app[BILLING_METRICS].recorded(txn)
    app[MAIL].wake()
    log.info("reading booked", extra={"sessionId": str(row["id"]), "userId": client_id, "readerId": reader_id,
                                      "priceCents": row["charged_cents"], "startsAt": iso(starts_at)})
    return row, stored


async def _slot_from_availability(conn: asyncpg.Connection, reader_id: str, starts_at: datetime, minutes: int,
                                  now: datetime) -> str:
    """Insert the slot of an offer of the reader's availability (in the caller's transaction)."""
    schedule = await availability_store.load(conn, reader_id)
    end = starts_at + timedelta(minutes=minutes)
    taken = await availability_store.taken(conn, reader_id, starts_at, end)
    if schedule is None or not availability.is_offered(schedule, starts_at, minutes, now=now):
        raise Conflict("the reader has no open time at that start and length", code="slot_not_found",
                       field="startsAt")
    if not availability.is_offered(schedule, starts_at, minutes, now=now, taken=taken):
        raise Conflict("this time has just been booked by someone else; choose another", code="slot_taken",
                       field="startsAt")
    try:
        slot = await slots.publish_slot(conn, reader_id=reader_id, starts_at=starts_at, minutes=minutes)
    except SlotTaken:
        raise Conflict("this time has just been booked by someone else; choose another",
                       code="slot_taken", field="startsAt") from None
    return slot.id


async def _check_client_free(conn: asyncpg.Connection, session_id: str, client_id: str, starts_at: datetime,
                             minutes: int) -> None:
    """A client cannot hold two booked readings at the same time (checked after the booking, in its
    transaction: a refusal rolls it back, payment included)."""
    clash = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM rtc_sessions WHERE client_id = $1 AND mode = 'scheduled'"
        " AND status IN ('accepted', 'active') AND scheduled_start < $3 AND id <> $4"
        " AND scheduled_start + make_interval(mins => scheduled_minutes) > $2)",
        client_id, starts_at, starts_at + timedelta(minutes=minutes), session_id)
    if clash:
        raise Conflict("you already have a reading booked at that time", code="client_busy", field="startsAt")


async def booked(conn: asyncpg.Connection, row: asyncpg.Record) -> list[tuple[str, dict[str, Any]]]:
    """The notifications of a booking, stored in its transaction: the reader's and the client's."""
    session = session_json(row)
    common = {"session": session, "sessionId": session["id"], "sessionType": row["session_type"],
              "startsAt": session["startsAt"], "minutes": row["scheduled_minutes"],
              "clientName": row["client_name"], "readerName": row["reader_name"]}
    return [await notifications.store(conn, str(row["reader_id"]), "session-booked", common),
            await notifications.store(conn, str(row["client_id"]), "booking-confirmed",
                                      {**common, "priceCents": row["charged_cents"]})]


async def carry_out(conn: asyncpg.Connection, row: asyncpg.Record, outcome: Outcome,
                    metrics: BillingMetrics | None = None) -> int:
    """Do what the rules decided for a scheduled reading's end: give the refund back (billing, once per
    reading) and open the reader's slot again when they say so; in the caller's transaction, on a row it
    has locked (``metrics`` counts the refund once the ledger wrote it). Returns the cents given back."""
    session_id = str(row["id"])
    if outcome.free_slot:
        await slots.release_slot(conn, session_id=session_id)
    if outcome.refund_cents <= 0:
        return 0
    txn = await scheduled.refund_scheduled(conn, session_id=session_id, cents=outcome.refund_cents,
                                           reason=outcome.reason)
    if metrics is not None:
        metrics.recorded(txn)
    if not txn.replayed:
        await conn.execute("UPDATE rtc_sessions SET refunded_cents = refunded_cents + $2 WHERE id = $1",
                           session_id, txn.amount_cents)
    return txn.amount_cents
