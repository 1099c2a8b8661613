"""When a client hears that a reader went online: a pure rule, the clock passed in.

A favourite reader going online alerts the client at most once an hour (a reader who comes and goes between
readings must not become noise). "Notify me once" is an explicit ask for one alert, about any reader: it is
always honoured, and then it is used up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

ALERT_GAP = timedelta(hours=1)


@dataclass(frozen=True)
class Interest:
    """One client's interest in one reader who just went online."""

    favourite: bool
    watching: bool  # asked to be notified once
    last_alerted: datetime | None


def should_alert(interest: Interest, now: datetime) -> bool:
    if interest.watching:
        return True
    if not interest.favourite:
        return False
    return interest.last_alerted is None or now - interest.last_alerted >= ALERT_GAP
