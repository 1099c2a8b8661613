"""How values read on a page: money, durations, times, avatars. Pure functions, used as jinja2 filters."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from api.core.times import iso
from billing.prices import dollars


def money(cents: int | None) -> str:
    """``1234`` → ``$12.34``; integer arithmetic only, never a float (billing's own way of saying a price)."""
    return dollars(int(cents or 0))


def duration(seconds: int | None) -> str:
    """``75`` → ``1:15``; ``3725`` → ``1:02:05``."""
    seconds = max(0, int(seconds or 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def when(value: datetime | None) -> str:
    """A UTC time a person can read; the browser module rewrites it into local time."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%b %-d, %Y %H:%M UTC")


def initials(name: str) -> str:
    """Up to two letters for an avatar: first letters of the first and last words."""
    words = [w for w in name.split() if w[:1].isalnum()]
    if not words:
        return "?"
    if len(words) == 1:
        return words[0][:1].upper()
    return (words[0][:1] + words[-1][:1]).upper()


def avatar_hue(user_id: str) -> int:
    """A stable colour (one of 8 CSS classes ``hue-N``) per user, so an initials avatar looks the same everywhere.

    A class, not an inline style: the Content-Security-Policy allows no inline styles.
    """
    digest = hashlib.sha256(user_id.encode()).digest()
    return digest[0] % 8


FILTERS = {"money": money, "duration": duration, "when": when, "iso": iso, "initials": initials,
           "avatar_hue": avatar_hue}


_NOTIFICATION_TEXT = {
    "session-requested": "{clientName} requested a {sessionType} reading.",
    "session-accepted": "{readerName} accepted your {sessionType} reading.",
    "session-declined": "{readerName} declined your {sessionType} reading request.",
    "session-cancelled": "{clientName} cancelled a {sessionType} reading request.",
    "session-expired": "A {sessionType} reading request expired without an answer.",
    "session-ended": "Your {sessionType} reading has ended.",
    "session-booked": "{clientName} booked a {sessionType} reading.",
    "booking-confirmed": "Your {minutes}-minute {sessionType} reading with {readerName} is booked.",
    "booking-reminder": "Reminder: your {sessionType} reading with {withName} starts in {inWords}.",
    "low-balance": "Your balance is running low.",
    "message": "New message from {fromName}.",
    "message-refund": "A message was not answered in time: it was refunded.",
    "reader-online": "{readerName} is online now.",
    "review-posted": "A client reviewed your reading.",
    "review-reply": "Your reader answered your review.",
    "tip-received": "A client sent you a tip.",
}


class _Blank(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return {"sessionType": "", "clientName": "A client", "readerName": "Your reader",
                "fromName": "someone"}.get(key, "")


def notification(kind: str, payload: dict) -> tuple[str, str | None]:  # type: ignore[type-arg]
    """A sentence for a stored notification, and where it leads (the reading's page, when it names one)."""
    normalized = kind.replace("_", "-")
    template = _NOTIFICATION_TEXT.get(normalized)
    text = payload.get("message") or payload.get("text")
    nested = payload.get("session")
    if not text:
        if template:
            nested_fields = payload.get("session")
            fields = _Blank({**(nested_fields if isinstance(nested_fields, dict) else {}), **payload})
            text = " ".join(template.format_map(fields).split()).replace(" .", ".")
        else:
            text = normalized.replace("-", " ").capitalize() + "."
    session_id = payload.get("sessionId") or (nested.get("id") if isinstance(nested, dict) else None)
    link = f"/readings/{session_id}" if isinstance(session_id, str) and len(session_id) == 36 else None
    url = payload.get("url")
    if link is None and isinstance(url, str) and url.startswith("/readers/") and len(url) == len("/readers/") + 36:
        link = url
    thread_id = payload.get("threadId")
    if link is None and isinstance(thread_id, str) and len(thread_id) == 36:
        link = f"/messages/{thread_id}"
    return str(text), link
