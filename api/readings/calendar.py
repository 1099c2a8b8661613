"""A booked reading as an iCalendar event (RFC 5545), for the ``.ics`` file either participant downloads.

Pure. Times are UTC (``...Z``), so every calendar shows them in its owner's own zone; text values are escaped
(backslash, semicolon, comma, newline) and lines folded at 75 octets as the RFC requires; two alarms match the
platform's own reminders (24 hours and 10 minutes before).
"""

from __future__ import annotations

from datetime import UTC, datetime


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _text(value: str) -> str:
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n"))


def _fold(line: str) -> str:
    """Lines longer than 75 octets continue on the next line after a space (RFC 5545 3.1), never inside a
    UTF-8 character."""
    out: list[str] = []
    current = b""
    for char in line:
        encoded = char.encode()
        if len(current) + len(encoded) > (75 if not out else 74):
            out.append(current.decode())
            current = b""
        current += encoded
    out.append(current.decode())
    return "\r\n ".join(out)


def event(*, uid: str, starts_at: datetime, ends_at: datetime, title: str, description: str, url: str,
          created: datetime) -> str:
    """A VCALENDAR holding one VEVENT with its alarms, CRLF line ends."""
    lines = [
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//SoulSeer//Scheduled readings//EN", "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH", "BEGIN:VEVENT", f"UID:{_text(uid)}", f"DTSTAMP:{_stamp(created)}",
        f"DTSTART:{_stamp(starts_at)}", f"DTEND:{_stamp(ends_at)}", f"SUMMARY:{_text(title)}",
        f"DESCRIPTION:{_text(description)}", f"URL:{url}",
    ]
    for before in ("-PT24H", "-PT10M"):
        lines += ["BEGIN:VALARM", "ACTION:DISPLAY", f"DESCRIPTION:{_text(title)}", f"TRIGGER:{before}", "END:VALARM"]
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return "".join(_fold(line) + "\r\n" for line in lines)
