"""A reader's availability in PostgreSQL (``reader_schedules``, ``reader_weekly_hours``,
``reader_schedule_exceptions``), read into the pure :class:`api.readings.availability.Availability`, and the
time already taken (the reader's slots, booked or published)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, TypeAlias

import asyncpg

from api.readings.availability import Availability, DateException, Hours, Interval

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def load(db: Db, reader_id: str) -> Availability | None:
    """The reader's availability, or None when they never set one (nothing is offered then)."""
    schedule = await db.fetchrow(
        "SELECT time_zone, lengths, notice_minutes, horizon_days FROM reader_schedules WHERE reader_id = $1",
        reader_id)
    if schedule is None:
        return None
    weekly = await db.fetch(
        "SELECT weekday, start_minute, end_minute FROM reader_weekly_hours WHERE reader_id = $1"
        " ORDER BY weekday, start_minute", reader_id)
    exceptions = await db.fetch(
        "SELECT id, day, available, start_minute, end_minute FROM reader_schedule_exceptions"
        " WHERE reader_id = $1 AND day >= current_date - 2 ORDER BY day, start_minute NULLS FIRST", reader_id)
    return Availability(
        time_zone=schedule["time_zone"], lengths=tuple(sorted(schedule["lengths"])),
        weekly=tuple(Hours(r["weekday"], r["start_minute"], r["end_minute"]) for r in weekly),
        exceptions=tuple(DateException(r["day"], r["available"], r["start_minute"], r["end_minute"])
                         for r in exceptions),
        notice=timedelta(minutes=schedule["notice_minutes"]), horizon=timedelta(days=schedule["horizon_days"]))


async def exception_rows(db: Db, reader_id: str) -> list[dict[str, Any]]:
    """The reader's exceptions from yesterday on, with their ids (for the reader's own page)."""
    rows = await db.fetch(
        "SELECT id, day, available, start_minute, end_minute FROM reader_schedule_exceptions"
        " WHERE reader_id = $1 AND day >= current_date - 1 ORDER BY day, start_minute NULLS FIRST", reader_id)
    return [{"id": str(r["id"]), "day": r["day"].isoformat(), "available": r["available"],
             "start": r["start_minute"], "end": r["end_minute"]} for r in rows]


async def save(conn: asyncpg.Connection, reader_id: str, availability: Availability) -> None:
    """Replace the reader's time zone, lengths, notice, horizon and weekly hours (exceptions stay)."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO reader_schedules (reader_id, time_zone, lengths, notice_minutes, horizon_days)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (reader_id) DO UPDATE SET time_zone = EXCLUDED.time_zone,"
            " lengths = EXCLUDED.lengths, notice_minutes = EXCLUDED.notice_minutes,"
            " horizon_days = EXCLUDED.horizon_days, updated_at = now()",
            reader_id, availability.time_zone, list(availability.lengths),
            int(availability.notice.total_seconds() // 60), availability.horizon.days)
        await conn.execute("DELETE FROM reader_weekly_hours WHERE reader_id = $1", reader_id)
        await conn.executemany(
            "INSERT INTO reader_weekly_hours (reader_id, weekday, start_minute, end_minute) VALUES ($1, $2, $3, $4)",
            [(reader_id, h.weekday, h.start, h.end) for h in availability.weekly])


async def add_exception(db: Db, reader_id: str, exception: DateException) -> str:
    return str(await db.fetchval(
        "INSERT INTO reader_schedule_exceptions (reader_id, day, available, start_minute, end_minute)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id",
        reader_id, exception.day, exception.available, exception.start, exception.end))


async def delete_exception(db: Db, reader_id: str, exception_id: str) -> bool:
    status = await db.execute("DELETE FROM reader_schedule_exceptions WHERE id = $1 AND reader_id = $2",
                              exception_id, reader_id)
    return bool(status == "DELETE 1")


async def taken(db: Db, reader_id: str, start: datetime, end: datetime) -> list[Interval]:
    """The reader's slots (booked or published) that touch ``start``..``end``: time nobody else can book."""
    rows = await db.fetch(
        "SELECT starts_at, starts_at + make_interval(mins => minutes) AS ends_at FROM reader_slots"
        " WHERE reader_id = $1 AND starts_at < $3 AND starts_at + make_interval(mins => minutes) > $2",
        reader_id, start, end)
    return [(r["starts_at"], r["ends_at"]) for r in rows]


def parse_day(raw: Any) -> date | None:
    """``2030-01-31`` as a date, or None."""
    if not isinstance(raw, str) or len(raw) != 10:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None
