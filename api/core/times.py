"""The one way a time leaves the server: ISO-8601 in UTC with a ``Z``, to the millisecond.

Every REST body, signaling message and page-data block says times this way (docs/design.md: "times are
ISO-8601 UTC strings"), so a browser or a client library parses one format.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso(value: datetime | None) -> str | None:
    """``2026-01-02T03:04:05.678Z``; ``None`` stays ``None``."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    """This moment, in the same format (a chat line's ``at``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
