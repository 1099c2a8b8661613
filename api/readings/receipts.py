"""The mails a reading sends: the receipt of a booking (and the reader's notice of it), the reminders before a
booked reading, and the receipt of a pay-per-minute reading when it ends. Each is queued in the transaction of
what it reports (:func:`api.core.mail.enqueue_to_user`), so nobody is mailed about a payment that rolled back."""

from __future__ import annotations

import asyncpg

from api.core import mail
from api.core.times import iso
from billing.prices import dollars


def duration_words(seconds: int) -> str:
    """``200`` -> ``3 min 20 s``."""
    minutes, rest = divmod(max(0, int(seconds)), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _when(row: asyncpg.Record) -> str:
    return row["scheduled_start"].strftime("%A %d %B %Y, %H:%M UTC")


async def booked(conn: asyncpg.Connection, row: asyncpg.Record, public_url: str) -> None:
    link = f"{public_url}/upcoming"
    await mail.enqueue_to_user(
        conn, str(row["client_id"]), f"Receipt: your reading with {row['reader_name']}",
        f"Your {row['scheduled_minutes']}-minute {row['session_type']} reading with {row['reader_name']} is booked"
        f" for {_when(row)}.\n\nPaid: {dollars(row['charged_cents'])}\nReading: {row['id']}\n\n"
        f"Your upcoming readings, in your own time zone, with the calendar file: {link}")
    await mail.enqueue_to_user(
        conn, str(row["reader_id"]), f"New booking: {row['client_name']}",
        f"{row['client_name']} booked a {row['scheduled_minutes']}-minute {row['session_type']} reading with you"
        f" for {_when(row)}.\n\nYour upcoming readings: {link}")


async def reminder(conn: asyncpg.Connection, row: asyncpg.Record, words: str, public_url: str) -> None:
    link = f"{public_url}/readings/{row['id']}"
    for user_id, other in ((row["client_id"], row["reader_name"]), (row["reader_id"], row["client_name"])):
        await mail.enqueue_to_user(
            conn, str(user_id), f"Reminder: your reading with {other} starts in {words}",
            f"Your {row['session_type']} reading with {other} starts in {words}, at {_when(row)}"
            f" ({iso(row['scheduled_start'])}).\n\nJoin it here: {link}")


async def reading_ended(conn: asyncpg.Connection, row: asyncpg.Record, public_url: str) -> None:
    """The receipt of a pay-per-minute reading that was billed."""
    if row["mode"] != "per_minute" or not row["billable_seconds"]:
        return
    free = f" (the first {row['intro_minutes']} minutes free)" if row["intro_minutes"] else ""
    await mail.enqueue_to_user(
        conn, str(row["client_id"]), f"Receipt: your reading with {row['reader_name']}",
        f"Your {row['session_type']} reading with {row['reader_name']} lasted"
        f" {duration_words(row['billable_seconds'])}{free}.\n\nCharged: {dollars(row['charged_cents'])} at"
        f" {dollars(row['rate_cents'])} a minute\nReading: {row['id']}\n\nDetails: {public_url}/readings/{row['id']}")
