"""A reader's availability for scheduled readings: weekly hours in their own time zone, exceptions to them, and
the bookable times (offers) that follow.

Pure: no I/O and no clock (``now`` is passed in). Hours are local minutes since midnight, in quarter hours, so
they keep meaning "Monday 9:00 in Lisbon" across daylight-saving changes; each local date's windows are turned
into UTC with the zone's rules for that date. A local time that does not exist (the hour skipped in spring) is
read with the offset before the change, as :mod:`zoneinfo` does with ``fold=0``.

An offer is a start time on the quarter-hour grid (every zone's offset is a whole number of quarter hours, so
it is the local grid too) with room for the whole length inside one window, after the notice and within the
horizon, overlapping no time already taken (the reader's slots, booked or published). Booking one inserts its
slot in the booking's transaction, where the no-overlap trigger of migration 0002 refuses a second booking of
the same time (:func:`api.readings.scheduling.book`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

LENGTHS = (15, 30, 45, 60)
STEP = timedelta(minutes=15)
DAY_MINUTES = 1440

Interval = tuple[datetime, datetime]


class AvailabilityError(ValueError):
    """Hours or exceptions that cannot be used (the message says which)."""


@dataclass(frozen=True)
class Hours:
    """Open from ``start`` to ``end`` local minutes on ``weekday`` (0 is Monday) every week."""

    weekday: int
    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise AvailabilityError("weekday must be 0 (Monday) to 6 (Sunday)")
        check_minutes(self.start, self.end)


@dataclass(frozen=True)
class DateException:
    """One local date unlike the week: time off (``available`` false; all day when ``start`` is None) or extra
    hours (``available`` true, from ``start`` to ``end``)."""

    day: date
    available: bool
    start: int | None = None
    end: int | None = None

    def __post_init__(self) -> None:
        if (self.start is None) != (self.end is None):
            raise AvailabilityError("an exception has both a start and an end, or neither")
        if self.start is not None and self.end is not None:
            check_minutes(self.start, self.end)
        elif self.available:
            raise AvailabilityError("extra hours need a start and an end")


@dataclass(frozen=True)
class Availability:
    """How a reader takes bookings."""

    time_zone: str
    lengths: tuple[int, ...] = (30, 60)
    weekly: tuple[Hours, ...] = ()
    exceptions: tuple[DateException, ...] = ()
    notice: timedelta = timedelta(hours=1)
    horizon: timedelta = timedelta(days=28)
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", zone(self.time_zone))
        if not self.lengths or any(length not in LENGTHS for length in self.lengths):
            raise AvailabilityError(f"lengths must be among {LENGTHS}")


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Lisbon``), or :class:`AvailabilityError`."""
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or name not in _zone_names():
        raise AvailabilityError(f"unknown time zone {str(name)[:64]!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise AvailabilityError(f"unknown time zone {name[:64]!r}") from None


@functools.cache
def _zone_names() -> frozenset[str]:
    """The zones this system knows (read once: listing them walks the zone database)."""
    return frozenset(available_timezones()) | {"UTC"}


def check_minutes(start: int, end: int) -> None:
    for value in (start, end):
        if isinstance(value, bool) or not isinstance(value, int) or value % 15:
            raise AvailabilityError("hours are whole quarter hours (minutes since midnight, a multiple of 15)")
    if not 0 <= start < end <= DAY_MINUTES:
        raise AvailabilityError("hours run from a start before their end, within one day (0 to 1440 minutes)")


# -- windows ---------------------------------------------------------------------------------------------

def _merge(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _subtract(intervals: list[tuple[int, int]], cut: tuple[int, int]) -> list[tuple[int, int]]:
    out = []
    for start, end in intervals:
        if cut[1] <= start or end <= cut[0]:
            out.append((start, end))
            continue
        if start < cut[0]:
            out.append((start, cut[0]))
        if cut[1] < end:
            out.append((cut[1], end))
    return out


def local_hours(availability: Availability, day: date) -> list[tuple[int, int]]:
    """The open local minutes of one date: the week's hours for its weekday, plus extra hours, less time off."""
    exceptions = [e for e in availability.exceptions if e.day == day]
    if any(not e.available and e.start is None for e in exceptions):
        return []
    hours = [(h.start, h.end) for h in availability.weekly if h.weekday == day.weekday()]
    hours += [(e.start, e.end) for e in exceptions if e.available and e.start is not None and e.end is not None]
    open_ = _merge(hours)
    for e in exceptions:
        if not e.available and e.start is not None and e.end is not None:
            open_ = _subtract(open_, (e.start, e.end))
    return open_


def _utc(availability: Availability, day: date, minute: int) -> datetime:
    # Wall-clock arithmetic: midnight of the date plus the minutes, read in the zone, then to UTC.
    local = datetime(day.year, day.month, day.day, tzinfo=availability.zone) + timedelta(minutes=minute)
    return local.astimezone(UTC)


def windows(availability: Availability, start: datetime, end: datetime) -> list[Interval]:
    """The reader's open time between ``start`` and ``end`` (UTC), as sorted, disjoint UTC intervals."""
    found: list[Interval] = []
    day = start.astimezone(availability.zone).date() - timedelta(days=1)
    last = end.astimezone(availability.zone).date() + timedelta(days=1)
    while day <= last:
        for lo, hi in local_hours(availability, day):
            a, b = _utc(availability, day, lo), _utc(availability, day, hi)
            a, b = max(a, start), min(b, end)
            if a < b:
                found.append((a, b))
        day += timedelta(days=1)
    found.sort()
    merged: list[Interval] = []
    for a, b in found:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


# -- offers ----------------------------------------------------------------------------------------------

def overlaps(a: Interval, b: Interval) -> bool:
    """Half-open intervals: one ending as the other starts does not overlap it."""
    return a[0] < b[1] and b[0] < a[1]


def _on_grid(moment: datetime) -> datetime:
    """``moment`` rounded up to the quarter-hour grid (UTC)."""
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    steps = -(-(moment - epoch) // STEP)
    return epoch + steps * STEP


def offers(availability: Availability, minutes: int, *, now: datetime, taken: Sequence[Interval] = (),
           until: datetime | None = None) -> list[datetime]:
    """Every bookable start of a ``minutes``-long reading, earliest first (UTC)."""
    if minutes not in availability.lengths:
        return []
    length = timedelta(minutes=minutes)
    first = now + availability.notice
    last = now + availability.horizon
    if until is not None:
        last = min(last, until)
    busy = sorted(taken)
    out: list[datetime] = []
    for lo, hi in windows(availability, first, last + length):
        start = _on_grid(max(lo, first))
        while start + length <= hi and start <= last:
            candidate = (start, start + length)
            if not any(overlaps(candidate, t) for t in busy):
                out.append(start)
            start += STEP
    return out


def is_offered(availability: Availability, starts_at: datetime, minutes: int, *, now: datetime,
               taken: Sequence[Interval] = ()) -> bool:
    """Whether a ``minutes``-long reading at ``starts_at`` is one of the :func:`offers` now."""
    if minutes not in availability.lengths or _on_grid(starts_at) != starts_at:
        return False
    if not now + availability.notice <= starts_at <= now + availability.horizon:
        return False
    wanted = (starts_at, starts_at + timedelta(minutes=minutes))
    # Open time clipped to the reading itself: all of it, in one piece, or it does not fit.
    return (windows(availability, *wanted) == [wanted]
            and not any(overlaps(wanted, t) for t in taken))
